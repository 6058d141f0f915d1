import { CheckpointError } from '../errors.js';
import { DTYPE_BYTES, DTYPES, numel, type DType } from '../tensor/dtype.js';
import type { TensorInfo } from '../tensor/tensor-source.js';

/** One tensor of a safetensors header: its info and its byte range in the data buffer (end exclusive). */
export interface StoredTensor {
  info: TensorInfo;
  begin: number;
  end: number;
}

export interface ParsedHeader {
  metadata: Record<string, string>;
  /** In header order. */
  tensors: Map<string, StoredTensor>;
}

/**
 * Parses and validates a safetensors JSON header: dtypes, shapes, byte lengths, offsets within the
 * `dataBytes`-long data buffer, no overlaps, no duplicate names. Every error names `file` and the tensor.
 */
export function parseHeader(file: string, bytes: Uint8Array, dataBytes: number): ParsedHeader {
  const fail = (message: string, tensor?: string) => new CheckpointError(`${file}: ${message}`, file, tensor);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw fail('header is not valid UTF-8');
  }
  if (!text.startsWith('{')) throw fail(`header does not start with '{' (not a safetensors file?)`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(raw)) throw fail('header is not a JSON object');
  const duplicate = firstDuplicateKey(text);
  if (duplicate !== undefined) throw fail(`tensor '${duplicate}' appears twice in the header`, duplicate);

  let metadata: Record<string, string> = {};
  const tensors = new Map<string, StoredTensor>();
  for (const [name, entry] of Object.entries(raw)) {
    if (name === '__metadata__') {
      if (!isObject(entry) || !Object.values(entry).every((v) => typeof v === 'string')) {
        throw fail(`__metadata__ must be a map of strings to strings`);
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    tensors.set(name, parseEntry(name, entry, dataBytes, file, fail));
  }
  checkOverlaps([...tensors.values()], fail);
  return { metadata, tensors };
}

function parseEntry(
  name: string,
  entry: unknown,
  dataBytes: number,
  file: string,
  fail: (message: string, tensor?: string) => CheckpointError,
): StoredTensor {
  if (!isObject(entry)) throw fail(`tensor '${name}': header entry is not an object`, name);
  const { dtype, shape, data_offsets: offsets } = entry;
  if (typeof dtype !== 'string' || !(DTYPES as readonly string[]).includes(dtype)) {
    throw fail(`tensor '${name}' has unknown dtype '${String(dtype)}' (supported: ${DTYPES.join(', ')})`, name);
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw fail(`tensor '${name}': shape ${JSON.stringify(shape)} is not an array of non-negative integers`, name);
  }
  const pair = offsetPair(offsets);
  if (!pair) {
    throw fail(`tensor '${name}': data_offsets ${JSON.stringify(offsets)} is not a [begin, end] pair with begin <= end`, name);
  }
  const [begin, end] = pair;
  const expected = numel(shape) * DTYPE_BYTES[dtype as DType];
  if (end - begin !== expected) {
    throw fail(
      `tensor '${name}': data_offsets [${begin}, ${end}] span ${end - begin} bytes, ` +
        `but ${dtype} shape [${shape.join(', ')}] needs ${expected}`,
      name,
    );
  }
  if (end > dataBytes) {
    throw fail(
      `tensor '${name}': data_offsets [${begin}, ${end}] run past the end of the data (${dataBytes} bytes); ` +
        `the file is truncated`,
      name,
    );
  }
  return { info: { name, dtype: dtype as DType, shape: [...shape], file }, begin, end };
}

function checkOverlaps(tensors: StoredTensor[], fail: (message: string, tensor?: string) => CheckpointError): void {
  const sorted = tensors.filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if (cur.begin < prev.end) {
      throw fail(
        `tensors '${prev.info.name}' [${prev.begin}, ${prev.end}] and '${cur.info.name}' [${cur.begin}, ${cur.end}] overlap`,
        cur.info.name,
      );
    }
  }
}

/**
 * JSON.parse silently keeps the last of duplicate keys, so scan the (already valid) JSON text for the keys of
 * the top-level object and return the first one seen twice.
 */
function firstDuplicateKey(json: string): string | undefined {
  const seen = new Set<string>();
  let depth = 0;
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === '"') {
      const start = i;
      for (i++; json[i] !== '"'; i++) if (json[i] === '\\') i++;
      if (depth !== 1) continue;
      let j = i + 1;
      while (/\s/.test(json[j]!)) j++;
      if (json[j] !== ':') continue;
      const key = JSON.parse(json.slice(start, i + 1)) as string;
      if (seen.has(key)) return key;
      seen.add(key);
    } else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
  }
  return undefined;
}

function offsetPair(v: unknown): [number, number] | undefined {
  if (!Array.isArray(v) || v.length !== 2) return undefined;
  const [begin, end] = v as unknown[];
  return isCount(begin) && isCount(end) && begin <= end ? [begin, end] : undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}
