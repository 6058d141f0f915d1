import path from 'node:path';
import { ConfigError } from '../errors.js';
import { samplingFieldProblem, type SamplingParamsInit } from '../llm/sampling-params.js';
import { pathExists, readJsonFile } from './config.js';

/** A model's default generation settings (from generation_config.json, else config.json). */
export interface GenerationDefaults {
  /** Generation stops on any of these (deduplicated, file order kept). */
  eosTokenIds: number[];
  bosTokenId?: number;
  padTokenId?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  minP?: number;
  repetitionPenalty?: number;
  maxNewTokens?: number;
  doSample?: boolean;
}

/**
 * Reads `dir/generation_config.json` if present. Token ids it lacks (eos, bos, pad) fall back to `config`
 * (the normalized config.json); without the file, only those ids are set. The sampling fields (temperature, top_p,
 * top_k, min_p, repetition_penalty, max_new_tokens) are checked by the SamplingParams rule of the field they become,
 * so a bad value is reported here, naming the file and its snake_case key, not later as a SamplingParams field.
 */
export async function readGenerationConfig(dir: string, config: Record<string, unknown>): Promise<GenerationDefaults> {
  const configFile = path.join(dir, 'config.json');
  const genFile = path.join(dir, 'generation_config.json');
  const gen = (await pathExists(genFile)) ? await readJsonFile(genFile, 'generation config') : {};
  const pick = <T>(key: string, read: Reader<T>): T | undefined =>
    field(gen, key, genFile, read) ?? field(config, key, configFile, read);
  const defaults: GenerationDefaults = {
    eosTokenIds: [...new Set(pick('eos_token_id', tokenIds) ?? [])],
    bosTokenId: pick('bos_token_id', nonNegativeInt),
    padTokenId: pick('pad_token_id', nonNegativeInt),
    temperature: field(gen, 'temperature', genFile, sampling('temperature')),
    topP: field(gen, 'top_p', genFile, sampling('topP')),
    topK: field(gen, 'top_k', genFile, sampling('topK')),
    minP: field(gen, 'min_p', genFile, sampling('minP')),
    repetitionPenalty: field(gen, 'repetition_penalty', genFile, sampling('repetitionPenalty')),
    maxNewTokens: field(gen, 'max_new_tokens', genFile, sampling('maxTokens')),
    doSample: field(gen, 'do_sample', genFile, boolean),
  };
  return Object.fromEntries(Object.entries(defaults).filter(([, v]) => v !== undefined)) as GenerationDefaults;
}

type Reader<T> = (v: unknown, file: string, key: string) => T;

/** `obj[key]` checked by `read`; undefined when absent or null. */
function field<T>(obj: Record<string, unknown>, key: string, file: string, read: Reader<T>): T | undefined {
  const v = obj[key];
  return v === undefined || v === null ? undefined : read(v, file, key);
}

function tokenIds(v: unknown, file: string, key: string): number[] {
  return Array.isArray(v) ? v.map((x) => nonNegativeInt(x, file, key)) : [nonNegativeInt(v, file, key)];
}

function nonNegativeInt(v: unknown, file: string, key: string): number {
  if (Number.isSafeInteger(v) && (v as number) >= 0) return v as number;
  throw new ConfigError(`${file}: '${key}' must be a non-negative integer, got ${JSON.stringify(v)}`);
}

/** A value that becomes the SamplingParams field `target`, checked by that field's rule. */
function sampling(target: keyof SamplingParamsInit): Reader<number> {
  return (v, file, key) => {
    const problem = samplingFieldProblem(target, v);
    if (problem) throw new ConfigError(`${file}: '${key}' ${problem}`);
    return v as number;
  };
}

function boolean(v: unknown, file: string, key: string): boolean {
  if (typeof v === 'boolean') return v;
  throw new ConfigError(`${file}: '${key}' must be true or false, got ${JSON.stringify(v)}`);
}
