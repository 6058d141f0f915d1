/**
 * One completion being generated: its sampling state (logits processors, sampler, generator), its output tokens and
 * logprobs, its incremental detokenizer and stop checks, and where it lives in the KV cache. A Request owns n of
 * them, forked after one prefill.
 */
import type { QllmTokenizer } from '../loading/index.js';
import type { CompletionOutput, Logprob } from '../llm/outputs.js';
import type { SamplingParams } from '../llm/sampling-params.js';
import { buildLogitsProcessors, getSampler, topLogprobs, type LogitsProcessor, type Rng, type Sampler } from '../sampling/index.js';
import { StopChecker, type FinishReason } from './stop-checker.js';

export type { FinishReason } from './stop-checker.js';

export interface SequenceEnv {
  tokenizer?: QllmTokenizer;
  eosTokenIds: readonly number[];
  maxModelLen: number;
}

export class Sequence {
  /** The KV cache slot; -1 when it holds none. */
  slot = -1;
  /** Positions of this sequence in its slot's cache. */
  numComputed = 0;
  readonly outputIds: number[] = [];
  readonly logprobs: Array<Record<number, Logprob>> | null;
  cumulativeLogprob = 0;
  finishReason: FinishReason | null = null;
  stopReason: number | string | null = null;
  /** How much of the output earlier delta outputs already carried. */
  sentTokens = 0;
  private readonly processors: LogitsProcessor[];
  private readonly sampler: Sampler;
  private readonly stops: StopChecker;

  constructor(
    readonly index: number,
    readonly promptTokenIds: readonly number[],
    readonly params: SamplingParams,
    private readonly rng: Rng,
    private readonly env: SequenceEnv,
  ) {
    this.processors = buildLogitsProcessors(params, env.eosTokenIds);
    this.sampler = getSampler(params);
    this.logprobs = params.logprobs !== undefined ? [] : null;
    this.stops = new StopChecker(promptTokenIds, params, env);
  }

  get finished(): boolean {
    return this.finishReason !== null;
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
    this.outputIds.push(token);
    if (raw) {
      const lp = topLogprobs(raw, this.params.logprobs!, token);
      this.cumulativeLogprob += lp.chosenLogprob;
      const entry: Record<number, Logprob> = {};
      for (const [id, logprob, rank] of lp.top) entry[id] = { logprob, rank };
      this.logprobs!.push(entry);
    }
    const n = this.outputIds.length;
    const finish = this.stops.check(token, n, n >= this.params.maxTokens || this.numTokens >= this.env.maxModelLen);
    if (finish) {
      this.finishReason = finish.reason;
      this.stopReason = finish.stop;
    }
  }

  abort(): void {
    if (!this.finished) this.finishReason = 'abort';
  }

  /** The completion so far: all of it, or (delta) what earlier delta outputs did not carry. */
  output(delta: boolean): CompletionOutput {
    const from = delta ? this.sentTokens : 0;
    const text = this.stops.text(this.finished, delta);
    if (delta) this.sentTokens = this.outputIds.length;
    return {
      index: this.index,
      text,
      tokenIds: this.outputIds.slice(from),
      cumulativeLogprob: this.logprobs ? this.cumulativeLogprob : null,
      logprobs: this.logprobs ? this.logprobs.slice(from) : null,
      finishReason: this.finishReason,
      stopReason: this.stopReason,
    };
  }
}
