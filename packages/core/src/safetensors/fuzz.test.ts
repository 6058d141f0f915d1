// Seeded fuzzing of the safetensors reader: valid files from the writer, mutated (bytes, lengths, header JSON), then
// judged by a small validator written here from the format's rules, independently of header.ts. The reader must
// accept exactly the files the validator calls valid, and reject every other one with a CheckpointError naming it.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError } from '../errors.js';
import { DTYPE_BYTES, DTYPES, type DType } from '../tensor/dtype.js';
import { MAX_HEADER_BYTES } from './format.js';
import { SafetensorsFile } from './reader.js';
import { writeSafetensors, type TensorEntry } from './writer.js';
import { prng } from '../__fixtures__/prng.js';

/** Fixed, so failures reproduce; QLLM_FUZZ_SEED explores others. */
const SEED = process.env.QLLM_FUZZ_SEED ? Number(process.env.QLLM_FUZZ_SEED) : 20_251_130;
const CASES = 1200;
/** No single case may take longer than this (a hang or a quadratic blow-up shows here first). */
const CASE_BUDGET_MS = 2000;


// ---------------------------------------------------------------------------------------------------------------
// The validator: the rules of the format (huggingface/safetensors), plus qllm's documented limits (its dtypes,
// sizes below 2^53). Deliberately plain: a strict JSON parser that only admits what a valid header can hold.
// ---------------------------------------------------------------------------------------------------------------

class Invalid extends Error {}

type Json = { obj: [string, Json][] } | { arr: Json[] } | { str: string } | { int: bigint };

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * Strict JSON for a safetensors header: no duplicate keys, no lone surrogates, numbers only as non-negative
 * integer literals below 2^53, no true/false/null, containers at most 3 deep (header → entry → shape). Anything
 * else either is not JSON or cannot appear in a valid header, so it throws Invalid either way.
 */
function parseStrict(text: string): Json {
  let i = 0;
  const space = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const expectChar = (c: string) => {
    if (text[i] !== c) throw new Invalid(`expected ${c} at ${i}`);
    i++;
  };
  const string = (): string => {
    expectChar('"');
    let out = '';
    for (;;) {
      const c = text[i];
      if (c === undefined) throw new Invalid('unterminated string');
      if (c === '"') {
        i++;
        break;
      }
      if (c === '\\') {
        const e = text[i + 1];
        const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
        if (e === 'u') {
          const hex = text.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw new Invalid('bad \\u escape');
          out += String.fromCharCode(parseInt(hex, 16));
          i += 6;
        } else if (e !== undefined && e in simple) {
          out += simple[e];
          i += 2;
        } else {
          throw new Invalid('bad escape');
        }
      } else {
        if (c.charCodeAt(0) < 0x20) throw new Invalid('control character in a string');
        out += c;
        i++;
      }
    }
    for (let k = 0; k < out.length; k++) {
      const u = out.charCodeAt(k);
      if (u >= 0xd800 && u <= 0xdbff) {
        const next = out.charCodeAt(k + 1);
        if (!(next >= 0xdc00 && next <= 0xdfff)) throw new Invalid('lone high surrogate');
        k++;
      } else if (u >= 0xdc00 && u <= 0xdfff) {
        throw new Invalid('lone low surrogate');
      }
    }
    return out;
  };
  const value = (depth: number): Json => {
    space();
    const c = text[i];
    if (c === '{' || c === '[') {
      if (depth > 3) throw new Invalid('nested too deep for a header');
      i++;
      const close = c === '{' ? '}' : ']';
      const obj: [string, Json][] = [];
      const arr: Json[] = [];
      const seen = new Set<string>();
      space();
      if (text[i] === close) {
        i++;
      } else {
        for (;;) {
          space();
          if (c === '{') {
            const key = string();
            if (seen.has(key)) throw new Invalid(`duplicate key ${key}`);
            seen.add(key);
            space();
            expectChar(':');
            obj.push([key, value(depth + 1)]);
          } else {
            arr.push(value(depth + 1));
          }
          space();
          if (text[i] === ',') {
            i++;
            continue;
          }
          expectChar(close);
          break;
        }
      }
      return c === '{' ? { obj } : { arr };
    }
    if (c === '"') return { str: string() };
    const literal = /^[-+.eE0-9]+/.exec(text.slice(i, i + 400))?.[0];
    if (literal === undefined || !/^(0|[1-9][0-9]*)$/.test(literal)) throw new Invalid(`not a non-negative integer at ${i}`);
    i += literal.length;
    const n = BigInt(literal);
    if (n > MAX_SAFE) throw new Invalid('integer of 2^53 or more');
    return { int: n };
  };
  const v = value(1);
  space();
  if (i !== text.length) throw new Invalid('text after the JSON value');
  return v;
}

/** True when `bytes` is a valid safetensors file (by the rules above), independently of the reader. */
function isValidSafetensors(bytes: Uint8Array): boolean {
  try {
    if (bytes.length < 8) return false;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const n = view.getBigUint64(0, true);
    if (n > BigInt(MAX_HEADER_BYTES) || 8n + n > BigInt(bytes.length)) return false;
    const header = bytes.subarray(8, 8 + Number(n));
    if (header[0] !== '{'.charCodeAt(0)) return false;
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(header);
    } catch {
      return false;
    }
    const root = parseStrict(text);
    if (!('obj' in root)) return false;
    const dataLength = BigInt(bytes.length) - 8n - n;
    const ranges: [bigint, bigint][] = [];
    for (const [name, entry] of root.obj) {
      if (!('obj' in entry)) return false;
      if (name === '__metadata__') {
        if (!entry.obj.every(([, v]) => 'str' in v)) return false;
        continue;
      }
      const fields = new Map(entry.obj);
      if (fields.size !== 3) return false;
      const dtype = fields.get('dtype');
      const shape = fields.get('shape');
      const offsets = fields.get('data_offsets');
      if (!dtype || !('str' in dtype) || !(DTYPES as readonly string[]).includes(dtype.str)) return false;
      if (!shape || !('arr' in shape) || !offsets || !('arr' in offsets) || offsets.arr.length !== 2) return false;
      let count = 1n;
      for (const d of shape.arr) {
        if (!('int' in d)) return false;
        count *= d.int;
        if (count > MAX_SAFE) return false;
      }
      const [b, e] = offsets.arr;
      if (!b || !e || !('int' in b) || !('int' in e) || b.int > e.int) return false;
      if (e.int - b.int !== count * BigInt(DTYPE_BYTES[dtype.str as DType])) return false;
      ranges.push([b.int, e.int]);
    }
    ranges.sort((x, y) => (x[0] !== y[0] ? (x[0] < y[0] ? -1 : 1) : x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0));
    let at = 0n;
    for (const [b, e] of ranges) {
      if (b !== at) return false;
      at = e;
    }
    return at === dataLength;
  } catch (e) {
    if (e instanceof Invalid) return false;
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------------------------------------------

interface Base {
  bytes: Buffer;
  /** The header JSON without its padding. */
  json: string;
  data: Buffer;
}

function split(bytes: Buffer): Base {
  const n = Number(bytes.readBigUInt64LE(0));
  return { bytes, json: bytes.subarray(8, 8 + n).toString('utf8').trimEnd(), data: bytes.subarray(8 + n) };
}

/** A file from header text (or bytes) and data; the length prefix is the header's true length unless given. */
function assemble(header: string | Buffer, data: Uint8Array, headerLength?: bigint): Buffer {
  const h = typeof header === 'string' ? Buffer.from(header, 'utf8') : header;
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(headerLength ?? BigInt(h.length));
  return Buffer.concat([prefix, h, data]);
}

type Rand = () => number;
const int = (r: Rand, n: number) => Math.floor(r() * n);
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[int(r, xs.length)]!;

/** Garbage JSON text, nested up to `depth`. */
function garbage(r: Rand, depth: number): string {
  const leaf = () =>
    pick(r, ['null', 'true', 'false', '0', '-1', '1.5', '1e400', '123456789012345678901234567890', '""', '"x"', '"\\ud800"', '{}', '[]']);
  if (depth <= 0 || r() < 0.3) return leaf();
  const n = 1 + int(r, 3);
  const items = Array.from({ length: n }, () => garbage(r, depth - 1));
  return r() < 0.5 ? `[${items.join(',')}]` : `{${items.map((v, k) => `"k${k}":${v}`).join(',')}}`;
}

/** The padding after the JSON: none, spaces to 8-byte alignment as writers do, or other whitespace. */
function pad(r: Rand, json: string): string {
  const k = int(r, 4);
  if (k === 0) return json;
  if (k === 1) return json + ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  if (k === 2) return `${json}${' '.repeat(int(r, 20))}`;
  return `${json}${pick(r, [' \n', '\t', '\r\n', '\n\n  '])}`;
}

const ENTRY_FIELDS = ['dtype', 'shape', 'data_offsets'];

/** Edits of the parsed header (serialized back by JSON.stringify). */
function editObject(r: Rand, header: Record<string, Record<string, unknown>>, base: Base): string {
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const t = pick(r, names);
  const entry = header[t]!;
  const [begin, end] = entry.data_offsets as [number, number];
  const shape = entry.shape as number[];
  const kind = int(r, 13);
  switch (kind) {
    case 0:
      entry.dtype = pick(r, [...DTYPES, 'F8_E4M3', 'U32', 'f32', '', 'BF16 ', 123, null, ['F32'], { t: 'F32' }]);
      break;
    case 1:
      entry.shape = pick(r, [
        [], [0], [1], [end - begin], [...shape, 1], [1, ...shape], shape.slice(1), [...shape].reverse(),
        shape.map((d) => d + 1), [-1], [1.5], ['2'], null, 7, [[2]], [2 ** 53], [2 ** 40, 2 ** 20, 0], [2 ** 50, 2 ** 50, 0], [0, 2 ** 60],
      ]);
      break;
    case 2: {
      const d = pick(r, [-8, -2, -1, 1, 2, 8, 100]);
      entry.data_offsets = pick(r, [
        [begin + d, end + d], [begin, end + d], [begin + d, end], [end, begin], [begin], [begin, end, end], [],
        [-1, end], [begin, 1e20], [String(begin), end], null, { begin, end }, [begin + 0.5, end + 0.5],
      ]);
      break;
    }
    case 3:
      entry[pick(r, ['offsets', 'name', 'DTYPE', 'data_offsets ', 'extra'])] = JSON.parse(garbage(r, 2));
      break;
    case 4:
      delete entry[pick(r, ENTRY_FIELDS)];
      break;
    case 5: {
      // A new tensor: sometimes a valid empty one at the end, usually something that breaks the tiling.
      const at = pick(r, [base.data.length, 0, begin, end, base.data.length + 4]);
      header[`extra.${int(r, 100)}`] = pick(r, [
        { dtype: 'U8', shape: [0], data_offsets: [at, at] },
        { dtype: 'U8', shape: [4], data_offsets: [at, at + 4] },
        { dtype: 'F32', shape: [], data_offsets: [at, at + 4] },
      ]);
      break;
    }
    case 6:
      delete header[t];
      break;
    case 7:
      header.__metadata__ = pick(r, [{ format: 1 }, [], 'pt', null, { a: {} }, {}, { k: 'v', format: 'pt' }, { '': '' }]) as never;
      break;
    case 8:
      header[pick(r, ['g', '__meta__', t + '.x'])] = JSON.parse(garbage(r, 3));
      break;
    case 9: {
      // Swap two tensors' offsets: still valid when the sizes agree.
      const other = header[pick(r, names)]!;
      [entry.data_offsets, other.data_offsets] = [other.data_offsets, entry.data_offsets];
      break;
    }
    case 10: {
      // Offsets counted from the start of the file, a real writer bug.
      const shift = 8 + Buffer.byteLength(base.json) + int(r, 8);
      for (const n of names) {
        const o = header[n]!.data_offsets as [number, number];
        header[n]!.data_offsets = [o[0] + shift, o[1] + shift];
      }
      break;
    }
    case 11: {
      // Another key order (valid).
      const entries = Object.entries(header).reverse();
      for (const k of Object.keys(header)) delete header[k];
      Object.assign(header, Object.fromEntries(entries));
      break;
    }
    default: {
      const renamed = pick(r, ['', 'weight', 'a b', 'Ω≈ç', '😀', '__metadata__', 'model.norm.weight', t]);
      const entries = Object.entries(header).map(([k, v]) => [k === t ? renamed : k, v] as const);
      for (const k of Object.keys(header)) delete header[k];
      for (const [k, v] of entries) header[k] = v;
      break;
    }
  }
  return r() < 0.2 ? JSON.stringify(header, null, int(r, 3) + 1) : JSON.stringify(header);
}

/** Integer literals in compact JSON: after '[' or ',' and before ']' or ','. */
const NUMBER = /(?<=[[,])\d+(?=[\],])/g;

/** Edits of the header text. */
function editText(r: Rand, json: string, header: Record<string, Record<string, unknown>>): string | Buffer {
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const t = pick(r, names);
  const kind = int(r, 12);
  switch (kind) {
    case 0: // a tensor twice
      return `{${JSON.stringify(t)}:${JSON.stringify(header[t])},${json.slice(1)}`;
    case 1: {
      // a field twice in one entry, or the same key spelt with an escape
      const field = pick(r, ENTRY_FIELDS);
      const at = json.indexOf(`"${field}":`);
      const copy = `"${field}":${JSON.stringify(header[names[0]!]![field])},`;
      const spelt = copy.replace(field[0]!, `\\u00${field.charCodeAt(0).toString(16)}`);
      return json.slice(0, at) + (r() < 0.5 ? copy : spelt) + json.slice(at);
    }
    case 2: {
      // one integer written another way
      const matches = [...json.matchAll(NUMBER)];
      const m = pick(r, matches);
      const n = m[0];
      const other = pick(r, [`${n}.0`, `${n}e0`, `${n}E+0`, '-0', `-${n}`, `${n}.5`, `0${n}`, '1e400', '123456789012345678901234567890', ` ${n} `, '9007199254740993', '0x10']);
      return json.slice(0, m.index) + other + json.slice(m.index! + n.length);
    }
    case 3:
      return pick(r, ['\uFEFF', ' ', '\n', '\t']) + json;
    case 4:
      return json + pick(r, ['x', '}', ',', '\0', ' \t\n\r', '  ', '{}', ']']);
    case 5: // a tensor name with a lone surrogate escape
      return json.replace(JSON.stringify(t), `"${pick(r, ['\\ud800', '\\udc00x', 'a\\ud83d', '\\ud83d\\ude00'])}"`);
    case 6: {
      // bytes that are not UTF-8 (or a UTF-8 BOM) somewhere in the header
      const bytes = Buffer.from(json, 'utf8');
      const bad = Buffer.from(pick(r, [[0xff], [0xc0, 0x80], [0x80], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xef, 0xbb, 0xbf], [0xf4, 0x90, 0x80, 0x80]]));
      const at = int(r, bytes.length + 1);
      return Buffer.concat([bytes.subarray(0, at), bad, bytes.subarray(at)]);
    }
    case 7: {
      // a shape nested deeply
      const depth = pick(r, [4, 50, 5_000, 100_000]);
      return json.replace(/"shape":\[[^\]]*\]/, `"shape":${'['.repeat(depth)}${']'.repeat(depth)}`);
    }
    case 8: // a raw control character inside a string
      return json.replace(`"${t}"`, `"${t}\n"`);
    case 9: // whitespace between tokens (valid)
      return json.replace(/([:,])/g, `$1${pick(r, [' ', '\n', '\t', '\r\n '])}`);
    case 10: // a structural character removed or doubled
    {
      const at = int(r, json.length);
      return r() < 0.5 ? json.slice(0, at) + json.slice(at + 1) : json.slice(0, at) + json[at] + json.slice(at);
    }
    default: // nested garbage as a field value
      return json.replace(/"dtype":"[^"]*"/, `"dtype":${garbage(r, 4)}`);
  }
}

/** One mutated file from `base`, and a name for the kind of mutation. */
function mutate(r: Rand, base: Base): { kind: string; bytes: Buffer } {
  const header = JSON.parse(base.json) as Record<string, Record<string, unknown>>;
  const { bytes, data } = base;
  const n = bytes.length - 8 - data.length;
  const kind = pick(r, ['flip', 'flipData', 'truncate', 'append', 'headerLength', 'object', 'object', 'object', 'text', 'text', 'text', 'dataLength']);
  switch (kind) {
    case 'flip': {
      const out = Buffer.from(bytes);
      for (let k = 1 + int(r, 3); k > 0; k--) out[int(r, out.length)]! ^= 1 << int(r, 8);
      return { kind, bytes: out };
    }
    case 'flipData': {
      const out = Buffer.from(bytes);
      out[8 + n + int(r, data.length)]! ^= 1 + int(r, 255);
      return { kind, bytes: out };
    }
    case 'truncate':
      return { kind, bytes: bytes.subarray(0, int(r, bytes.length)) };
    case 'append':
      return { kind, bytes: Buffer.concat([bytes, Buffer.from(Array.from({ length: 1 + int(r, 16) }, () => int(r, 256)))]) };
    case 'headerLength': {
      const length = pick(r, [
        BigInt(n - 1), BigInt(n + 1), BigInt(n - 8), BigInt(n + 8), BigInt(n - 1 - int(r, 64)), BigInt(n + 1 + int(r, 64)), 0n, 1n,
        2n ** 40n, 2n ** 63n, 2n ** 64n - 1n, BigInt(MAX_HEADER_BYTES) + 1n, BigInt(bytes.length - 8), BigInt(bytes.length - 7),
      ]);
      const out = Buffer.from(bytes);
      out.writeBigUInt64LE(length < 0n ? 0n : length);
      return { kind, bytes: out };
    }
    case 'object':
      return { kind, bytes: assemble(pad(r, editObject(r, header, base)), data) };
    case 'text': {
      const text = editText(r, base.json, header);
      return { kind, bytes: assemble(typeof text === 'string' ? pad(r, text) : text, data) };
    }
    default: {
      // the data buffer a little longer or shorter than the header says
      const d = pick(r, [-4, -2, -1, 1, 2, 4]);
      const longer = Buffer.concat([data, Buffer.alloc(Math.max(d, 0))]);
      return { kind, bytes: assemble(pad(r, base.json), d < 0 ? data.subarray(0, data.length + d) : longer) };
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------

let dir: string;
const bases: Base[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'qllm-st-fuzz-'));
  const r = prng(SEED);
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => int(r, 256));
  const sets: [TensorEntry[], Record<string, string>?][] = [
    [
      [
        { name: 'a', dtype: 'F32', shape: [2, 3], data: new Float32Array(bytes(24).buffer) },
        { name: 'b', dtype: 'BF16', shape: [4], data: new Uint16Array(bytes(8).buffer) },
        { name: 'c', dtype: 'I64', shape: [2], data: new BigInt64Array(bytes(16).buffer) },
        { name: 'd', dtype: 'U8', shape: [3], data: bytes(3) },
        { name: 'e', dtype: 'BOOL', shape: [1], data: Uint8Array.from([1]) },
      ],
      { format: 'pt' },
    ],
    [
      [
        { name: 's', dtype: 'F32', shape: [], data: new Float32Array(bytes(4).buffer) },
        { name: 'z', dtype: 'BF16', shape: [0, 4], data: new Uint16Array(0) },
        { name: 'x', dtype: 'I8', shape: [5], data: new Int8Array(bytes(5).buffer) },
        { name: 'y', dtype: 'F16', shape: [1, 1, 2], data: new Uint16Array(bytes(4).buffer) },
      ],
    ],
    [[{ name: 'model.embed_tokens.weight', dtype: 'BF16', shape: [8, 4], data: new Uint16Array(bytes(64).buffer) }], { format: 'pt', note: 'ü' }],
  ];
  for (const [k, [entries, metadata]] of sets.entries()) {
    const file = path.join(dir, `base${k}.safetensors`);
    await writeSafetensors(file, entries, metadata);
    bases.push(split(await readFile(file)));
  }
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('safetensors reader fuzz', () => {
  it('the validator accepts what the writer writes and rejects a few known-bad files', () => {
    for (const base of bases) expect(isValidSafetensors(base.bytes)).toBe(true);
    const data = Buffer.alloc(4);
    const entry = '"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}';
    expect(isValidSafetensors(assemble(`{${entry}}`, data))).toBe(true);
    expect(isValidSafetensors(assemble(`{${entry}}  \n`, data))).toBe(true);
    for (const bad of [`{${entry},${entry}}`, `\uFEFF{${entry}}`, ` {${entry}}`, '{}', `{${entry.replace('[0,4]', '[0,4.0]')}}`]) {
      expect(isValidSafetensors(assemble(bad, data)), bad).toBe(false);
    }
    expect(isValidSafetensors(assemble(`{${entry}}`, Buffer.alloc(5)))).toBe(false);
  });

  it(`${CASES} seeded mutations: no crash, no hang, accepted exactly when valid, every rejection names the file`, async () => {
    const r = prng(SEED + 1);
    const failures: string[] = [];
    const stats = { cases: 0, accepted: 0, rejected: 0, valid: 0 };
    const kinds = new Map<string, { accepted: number; rejected: number }>();
    let slowest = 0;
    const started = performance.now();
    for (let c = 0; c < CASES; c++) {
      const base = bases[c % bases.length]!;
      const { kind, bytes } = mutate(r, base);
      const file = path.join(dir, `case${c}.safetensors`);
      await writeFile(file, bytes);
      const valid = isValidSafetensors(bytes);
      const label = `case ${c} (${kind}, ${valid ? 'valid' : 'invalid'})`;
      const t0 = performance.now();
      let st: SafetensorsFile | undefined;
      try {
        st = await SafetensorsFile.open(file);
      } catch (e) {
        if (!(e instanceof CheckpointError)) failures.push(`${label}: crashed with ${(e as Error)?.name}: ${(e as Error)?.message}`);
        else if (!e.message.includes(file) || e.file !== file) failures.push(`${label}: the error does not name the file: ${e.message}`);
        else if (valid) failures.push(`${label}: a valid file was rejected: ${e.message}`);
      }
      const accepted = st !== undefined;
      if (st) {
        try {
          // Accepted: every tensor reads back exactly its bytes of the data buffer.
          const n = Number(bytes.readBigUInt64LE(0));
          const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { data_offsets: [number, number] }>;
          for (const info of st.tensors()) {
            const t = await st.read(info.name);
            const [begin, end] = header[info.name]!.data_offsets;
            const want = bytes.subarray(8 + n + begin, 8 + n + end);
            if (!Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).equals(want)) {
              failures.push(`${label}: tensor '${info.name}' read the wrong bytes`);
            }
          }
        } finally {
          await st.close();
        }
        if (!valid) failures.push(`${label}: a corrupt file was accepted`);
      }
      const ms = performance.now() - t0;
      slowest = Math.max(slowest, ms);
      if (ms > CASE_BUDGET_MS) failures.push(`${label}: took ${ms.toFixed(0)} ms`);
      stats.cases++;
      stats.valid += valid ? 1 : 0;
      stats[accepted ? 'accepted' : 'rejected']++;
      const k = kinds.get(kind) ?? { accepted: 0, rejected: 0 };
      k[accepted ? 'accepted' : 'rejected']++;
      kinds.set(kind, k);
      await rm(file);
    }
    const byKind = [...kinds].map(([k, v]) => `${k} ${v.accepted}/${v.rejected}`).join(', ');
    console.log(
      `safetensors fuzz: ${stats.cases} cases, ${stats.accepted} accepted, ${stats.rejected} rejected ` +
        `(${stats.valid} valid per the rules; accepted/rejected by kind: ${byKind}; slowest case ${slowest.toFixed(0)} ms, ` +
        `all ${((performance.now() - started) / 1000).toFixed(1)} s)`,
    );
    expect(failures).toEqual([]);
    expect(stats.rejected).toBeGreaterThanOrEqual(300);
    expect(stats.accepted).toBeGreaterThan(50);
  });
});
