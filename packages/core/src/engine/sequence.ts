/**
 * One completion being generated: its sampling state (logits processors, sampler, generator), its output tokens and
 * logprobs, its incremental detokenizer and stop checks, and where it lives in the KV cache. A Request owns n of
 * them, forked after one prefill.
 */
import type { QllmTokenizer } from '../loading/index.js';
import type { Logprob } from '../llm/outputs.js';
import type { SamplingParams } from '../llm/sampling-params.js';
import { buildLogitsProcessors, getSampler, topLogprobs, type LogitsProcessor, type Rng, type Sampler } from '../sampling/index.js';
import { CompletionState } from './completion-state.js';

export type { FinishReason } from './stop-checker.js';

export interface SequenceEnv {
  tokenizer?: QllmTokenizer;
  eosTokenIds: readonly number[];
  maxModelLen: number;
}

export class Sequence extends CompletionState {
  /** The KV cache slot; -1 when it holds none. */
  slot = -1;
  /** Positions of this sequence in its slot's cache. */
  numComputed = 0;
  private readonly processors: LogitsProcessor[];
  private readonly sampler: Sampler;

  constructor(index: number, promptTokenIds: readonly number[], params: SamplingParams, private readonly rng: Rng, env: SequenceEnv) {
    super(index, promptTokenIds, params, env);
    this.processors = buildLogitsProcessors(params, env.eosTokenIds);
    this.sampler = getSampler(params);
  }

  /** The tokens the cache must hold before this sequence's next decode step: the prompt and all output but the last. */
  get numTokens(): number {
    return this.promptTokenIds.length + this.outputIds.length;
  }

  get lastToken(): number {
    return this.outputIds.at(-1) ?? this.promptTokenIds.at(-1)!;
  }

  /**
   * Sample the next token from `logits` (this sequence's own row: processors change it in place), append it and
   * check the stop conditions in vLLM's order: EOS, stop token ids, stop strings, then length.
   */
  accept(logits: Float32Array): void {
    const raw = this.logprobs ? logits.slice() : undefined;
    const state = { promptTokenIds: this.promptTokenIds, outputTokenIds: this.outputIds };
    for (const p of this.processors) p(logits, state);
    const token = this.sampler.sample(logits, this.rng);
    if (!raw) {
      this.append(token, undefined, 0);
      return;
    }
    const lp = topLogprobs(raw, this.params.logprobs!, token);
    const entry: Record<number, Logprob> = {};
    for (const [id, logprob, rank] of lp.top) entry[id] = { logprob, rank };
    this.append(token, entry, lp.chosenLogprob);
  }
}
