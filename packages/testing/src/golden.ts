import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** This package's root (this file is packages/testing/{src,dist}/…). */
const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The Qwen3 golden vectors (golden-a, golden-b), shipped inside this package (`vectors/qwen3-golden`, 1.1 MB, a copy
 * of the project's shared vectors) so that no test depends on a folder beside the repository.
 */
export const QWEN3_GOLDEN_DIR = path.resolve(PACKAGE_ROOT, 'vectors/qwen3-golden');

export type GoldenName = 'golden-a' | 'golden-b';
export const GOLDEN_NAMES: readonly GoldenName[] = ['golden-a', 'golden-b'];

/** One prompt of a golden `expected.json`. Log-probabilities are natural-log, float64. */
export interface GoldenPrompt {
  prompt_token_ids: number[];
  /** positions_top8[t] = the 8 most likely next tokens [id, logprob] given tokens 0..t. */
  positions_top8: [number, number][][];
  /** Greedy steps after the prompt; gap = top-1 minus top-2 logprob. */
  greedy: { token_id: number; top5: [number, number][]; gap: number }[];
}

/** True when the golden folder and both golden checkpoints are present. */
export function goldenAvailable(): boolean {
  return GOLDEN_NAMES.every((n) => existsSync(path.join(QWEN3_GOLDEN_DIR, n, 'expected.json')));
}

/** The folder of one golden checkpoint (HF layout: config.json, safetensors, expected.json). */
export function goldenDir(name: GoldenName): string {
  return path.join(QWEN3_GOLDEN_DIR, name);
}

/** Parsed `expected.json` of one golden checkpoint. */
export function readGoldenExpected(name: GoldenName): GoldenPrompt[] {
  return JSON.parse(readFileSync(path.join(goldenDir(name), 'expected.json'), 'utf8')) as GoldenPrompt[];
}
