import { CheckpointError, showJson } from '../errors.js';
import { DTYPE_BYTES, DTYPES, type DType } from '../tensor/dtype.js';
import type { TensorInfo } from '../tensor/tensor-source.js';
import { isUnicode } from './format.js';

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

type Fail = (message: string, tensor?: string) => CheckpointError;

/** The fields of a tensor entry, all required, no others allowed. */
const ENTRY_FIELDS = ['dtype', 'shape', 'data_offsets'] as const;

/**
 * Parses and validates a safetensors JSON header (`bytes`, the N bytes after the length) against a data buffer
 * of `dataBytes` bytes, by the rules of the reference implementation (huggingface/safetensors):
 * - UTF-8 JSON starting with '{' (no byte order mark, no leading whitespace), whitespace allowed after it;
 * - an object of tensor entries `{dtype, shape, data_offsets: [begin, end]}` (exactly these fields) plus an
 *   optional `__metadata__` string → string map; no key twice in any object; shape and offsets are
 *   non-negative integer literals (`1.0`, `1e0`, `-0` are not);
 * - end - begin = numel(shape) × dtype size, and sorted by offset the tensors tile the data buffer exactly:
 *   the first begins at 0, each begins where the previous ends, the last ends at the end of the file.
 * Every error names `file`, and the tensor where there is one.
 */
export function parseHeader(file: string, bytes: Uint8Array, dataBytes: number): ParsedHeader {
  const fail: Fail = (message, tensor) => new CheckpointError(`${file}: ${message}`, file, tensor);
  if (bytes[0] !== 0x7b) {
    const bom = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
    throw fail(`header does not start with '{'${bom ? ' (it starts with a UTF-8 byte order mark)' : ''} (not a safetensors file?)`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw fail('header is not valid UTF-8');
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(raw)) throw fail('header is not a JSON object');
  const lexical = scanJson(text);
  if (lexical.duplicate) throw duplicateError(lexical.duplicate, fail);

  let metadata: Record<string, string> = {};
  const tensors = new Map<string, StoredTensor>();
  for (const [name, entry] of Object.entries(raw)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(entry, fail);
      continue;
    }
    tensors.set(name, parseEntry(name, entry, dataBytes, bytes.length, file, fail));
  }
  if (lexical.badNumber) {
    const { literal, tensor } = lexical.badNumber;
    throw fail(`${tensor === undefined ? 'header' : `tensor '${tensor}'`}: number ${literal} is not a non-negative integer`, tensor);
  }
  checkTiling([...tensors.values()], dataBytes, fail);
  return { metadata, tensors };
}

function parseMetadata(entry: unknown, fail: Fail): Record<string, string> {
  if (!isObject(entry) || !Object.values(entry).every((v) => typeof v === 'string')) {
    throw fail(`__metadata__ must be a map of strings to strings`);
  }
  for (const [key, value] of Object.entries(entry)) {
    if (!isUnicode(key) || !isUnicode(value as string)) throw fail(`__metadata__ entry ${quoted(key)} is not valid Unicode (a lone surrogate escape)`);
  }
  return entry as Record<string, string>;
}

function parseEntry(name: string, entry: unknown, dataBytes: number, headerBytes: number, file: string, fail: Fail): StoredTensor {
  if (!isUnicode(name)) throw fail(`tensor name ${quoted(name)} is not valid Unicode (a lone surrogate escape)`, name);
  if (!isObject(entry)) throw fail(`tensor '${name}': header entry is not an object`, name);
  for (const key of Object.keys(entry)) {
    if (!(ENTRY_FIELDS as readonly string[]).includes(key)) {
      throw fail(`tensor '${name}': unknown field ${quoted(key)} in its header entry (allowed: ${ENTRY_FIELDS.join(', ')})`, name);
    }
  }
  for (const key of ENTRY_FIELDS) if (!Object.hasOwn(entry, key)) throw fail(`tensor '${name}': header entry lacks '${key}'`, name);
  const { dtype, shape, data_offsets: offsets } = entry;
  if (typeof dtype !== 'string' || !(DTYPES as readonly string[]).includes(dtype)) {
    throw fail(`tensor '${name}' has unknown dtype ${typeof dtype === 'string' ? quoted(dtype) : showJson(dtype)} (supported: ${DTYPES.join(', ')})`, name);
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw fail(`tensor '${name}': shape ${showJson(shape)} is not an array of non-negative integers`, name);
  }
  const pair = offsetPair(offsets);
  if (!pair) {
    throw fail(`tensor '${name}': data_offsets ${showJson(offsets)} is not a [begin, end] pair with begin <= end`, name);
  }
  const [begin, end] = pair;
  const count = checkedNumel(shape);
  if (count === undefined) {
    throw fail(`tensor '${name}': shape [${shape.join(', ')}] overflows (a running product of 2^53 or more elements)`, name);
  }
  const expected = count * DTYPE_BYTES[dtype as DType];
  if (end - begin !== expected) {
    throw fail(
      `tensor '${name}': data_offsets [${begin}, ${end}] span ${end - begin} bytes, ` +
        `but ${dtype} shape [${shape.join(', ')}] needs ${expected}`,
      name,
    );
  }
  if (end > dataBytes) {
    // A common writer bug: offsets counted from the start of the file, not from the data buffer at byte 8+N.
    const dataStart = 8 + headerBytes;
    const absolute = begin >= dataStart && end <= dataStart + dataBytes;
    throw fail(
      `tensor '${name}': data_offsets [${begin}, ${end}] run past the end of the data (${dataBytes} bytes); ` +
        (absolute
          ? `they look counted from the start of the file, but safetensors offsets start at the data buffer (byte ${dataStart})`
          : `the file is truncated`),
      name,
    );
  }
  return { info: { name, dtype: dtype as DType, shape: [...shape], file }, begin, end };
}

/** Sorted by (begin, end), the tensors must cover [0, dataBytes) exactly: no gap, no overlap, nothing after. */
function checkTiling(tensors: StoredTensor[], dataBytes: number, fail: Fail): void {
  const sorted = [...tensors].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  let prev: StoredTensor | undefined;
  for (const cur of sorted) {
    const name = cur.info.name;
    if (prev && cur.begin < at) {
      throw fail(`tensors '${prev.info.name}' [${prev.begin}, ${prev.end}] and '${name}' [${cur.begin}, ${cur.end}] overlap`, name);
    }
    if (cur.begin > at) {
      const where = prev ? `between tensors '${prev.info.name}' and '${name}'` : `before tensor '${name}', the first`;
      throw fail(`bytes [${at}, ${cur.begin}) of the data belong to no tensor (${where}); the data buffer must have no gaps`, name);
    }
    at = cur.end;
    prev = cur;
  }
  if (at === dataBytes) return;
  if (!prev) {
    throw fail(`the header lists no tensors, but ${dataBytes} bytes of data follow it (trailing bytes, or a wrong header length)`);
  }
  const extra = dataBytes - at;
  throw fail(
    `${extra} byte${extra === 1 ? '' : 's'} after the end of tensor '${prev.info.name}' belong to no tensor: the data ` +
      `buffer is ${dataBytes} bytes but its tensors end at ${at} (trailing bytes, or a wrong header length)`,
    prev.info.name,
  );
}

interface Duplicate {
  key: string;
  /** The top-level key whose value holds the object with the duplicate; undefined for a top-level duplicate. */
  within?: string;
}

/**
 * What JSON.parse lets through and the reference reader (serde) does not, found in one linear pass over `json`
 * (already parsed, so well-formed): the first key that appears twice in one object (JSON.parse keeps the last),
 * and the first number that is not a plain non-negative integer literal (JSON.parse reads `1.0`, `1e0` and `-0`
 * as integers). Every number in a valid header is a shape dimension or an offset.
 */
function scanJson(json: string): { duplicate?: Duplicate; badNumber?: { literal: string; tensor?: string } } {
  // One entry per open object (its keys so far) or array (undefined).
  const open: (Set<string> | undefined)[] = [];
  let topKey: string | undefined;
  let badNumber: { literal: string; tensor?: string } | undefined;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (c === QUOTE) {
      const start = i;
      for (i++; json.charCodeAt(i) !== QUOTE; i++) if (json.charCodeAt(i) === BACKSLASH) i++;
      const keys = open[open.length - 1];
      if (!keys) continue;
      let j = i + 1;
      while (isJsonSpace(json.charCodeAt(j))) j++;
      if (json.charCodeAt(j) !== COLON) continue; // a value, not a key
      const key = JSON.parse(json.slice(start, i + 1)) as string;
      if (keys.has(key)) return { duplicate: { key, within: open.length === 1 ? undefined : topKey } };
      keys.add(key);
      if (open.length === 1) topKey = key;
    } else if (c === OPEN_BRACE) open.push(new Set());
    else if (c === OPEN_BRACKET) open.push(undefined);
    else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) open.pop();
    else if (c === MINUS || (c >= DIGIT_0 && c <= DIGIT_9)) {
      let j = i + 1;
      while (j < json.length && isNumberChar(json.charCodeAt(j))) j++;
      const literal = json.slice(i, j);
      if (!badNumber && !/^(0|[1-9][0-9]*)$/.test(literal)) {
        const inEntry = open.length > 1 && topKey !== '__metadata__';
        badNumber = { literal: clip(literal), tensor: inEntry ? topKey : undefined };
      }
      i = j - 1;
    }
  }
  return { badNumber };
}

function duplicateError({ key, within }: Duplicate, fail: Fail): CheckpointError {
  if (within === undefined) return fail(`tensor '${key}' appears twice in the header`, key);
  if (within === '__metadata__') return fail(`__metadata__: key ${quoted(key)} appears twice`);
  return fail(`tensor '${within}': key ${quoted(key)} appears twice in its header entry`, within);
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const MINUS = 0x2d;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

function isJsonSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/** Characters of a JSON number after its first: digits, '.', 'e', 'E', '+', '-'. */
function isNumberChar(c: number): boolean {
  return (c >= DIGIT_0 && c <= DIGIT_9) || c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === MINUS;
}

/** A header string (a key, a dtype) in single quotes for an error message, cut short if long. */
function quoted(s: string): string {
  return `'${clip(s)}'`;
}

function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/**
 * The element count, or undefined when the product overflows along the way, as the Rust reader's checked
 * multiplication does (there at 2^64; here at 2^53, past which doubles are inexact): [2^50, 2^50, 0] is not 0.
 */
function checkedNumel(shape: readonly number[]): number | undefined {
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (n > Number.MAX_SAFE_INTEGER) return undefined;
  }
  return n;
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
