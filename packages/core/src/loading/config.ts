import { readFile, stat } from 'node:fs/promises';
import { ConfigError, showJson } from '../errors.js';

/**
 * Reads a JSON file that must hold an object. `what` describes it in errors ("model config", ...).
 * Missing file → ConfigError "PATH: file not found"; bad JSON → ConfigError naming the path and the parse error.
 */
export async function readJsonFile(path: string, what: string): Promise<Record<string, unknown>> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ConfigError(`${path}: file not found`, { cause: e });
    throw new ConfigError(`${path}: cannot read the ${what} (${(e as Error).message})`, { cause: e });
  }
  // As Python's json and Rust's serde_json (transformers, tokenizers): invalid UTF-8 and a byte order mark are
  // errors, not silently replaced or skipped.
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (e) {
    throw new ConfigError(`${path}: the ${what} is not valid UTF-8`, { cause: e });
  }
  if (text.startsWith('\uFEFF')) throw new ConfigError(`${path}: the ${what} starts with a byte order mark, which JSON does not allow`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${path}: the ${what} is not valid JSON (${(e as Error).message})`, { cause: e });
  }
  if (!isPlainObject(value)) throw new ConfigError(`${path}: the ${what} must be a JSON object`);
  return value;
}

/**
 * Smooths over config.json schema drift between transformers versions. Returns a copy where:
 * - `torch_dtype` (≤4.55) and `dtype` (≥4.56) are both set when either is;
 * - `rope_theta` is taken from `rope_parameters.rope_theta` (transformers 5) when absent, and `rope_scaling`
 *   from `rope_parameters` (minus `rope_theta`) when absent and its `rope_type` is not 'default'.
 * Every other key is kept as it is.
 */
export function normalizeHfConfig(raw: Record<string, unknown>, file: string): Record<string, unknown> {
  const config = { ...raw };
  if (config.torch_dtype === undefined && config.dtype !== undefined) config.torch_dtype = config.dtype;
  if (config.dtype === undefined && config.torch_dtype !== undefined) config.dtype = config.torch_dtype;

  const rope = config.rope_parameters;
  if (rope === undefined || rope === null) return config;
  if (!isPlainObject(rope)) {
    throw new ConfigError(`${file}: 'rope_parameters' must be an object, got ${showJson(rope)}`);
  }
  if (config.rope_theta === undefined && rope.rope_theta !== undefined) config.rope_theta = rope.rope_theta;
  const scaled = rope.rope_type !== undefined && rope.rope_type !== 'default';
  if (scaled && (config.rope_scaling === undefined || config.rope_scaling === null)) {
    const scaling = { ...rope };
    delete scaling.rope_theta;
    config.rope_scaling = scaling;
  }
  return config;
}

/** True when `path` exists (file or folder). */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
