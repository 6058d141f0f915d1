/**
 * What one completion has produced so far — output tokens, logprobs, finish and stop reason — and its output as
 * vLLM's CompletionOutput (whole or delta). Shared by the local engine's Sequence (which samples the tokens) and the
 * remote backend's sequence (which receives them from a server); both append through `append`, so the stop checks
 * and the text are the same code.
 */
import type { CompletionOutput, Logprob } from '../llm/outputs.js';
import type { SamplingParams } from '../llm/sampling-params.js';
import { StopChecker, type FinishReason, type StopEnv } from './stop-checker.js';

export interface CompletionEnv extends StopEnv {
  /** Prompt + output tokens at most (the model's length); undefined: no such bound here. */
  maxModelLen?: number;
}

export class CompletionState {
  readonly outputIds: number[] = [];
  readonly logprobs: Array<Record<number, Logprob>> | null;
  cumulativeLogprob = 0;
  finishReason: FinishReason | null = null;
  stopReason: number | string | null = null;
  /** How much of the output earlier delta outputs already carried. */
  sentTokens = 0;
  private readonly stops: StopChecker;

  constructor(
    readonly index: number,
    readonly promptTokenIds: readonly number[],
    readonly params: SamplingParams,
    private readonly completionEnv: CompletionEnv,
  ) {
    this.logprobs = params.logprobs !== undefined ? [] : null;
    this.stops = new StopChecker(promptTokenIds, params, completionEnv);
  }

  get finished(): boolean {
    return this.finishReason !== null;
  }

  /**
   * Append one output token (with its logprobs entry and the chosen token's logprob, kept when logprobs were asked
   * for) and check the stop conditions in vLLM's order: EOS, stop token ids, stop strings, then length.
   */
  protected append(token: number, entry: Record<number, Logprob> | undefined, chosenLogprob: number): void {
    this.outputIds.push(token);
    if (this.logprobs) {
      this.logprobs.push(entry ?? {});
      this.cumulativeLogprob += chosenLogprob;
    }
    const n = this.outputIds.length;
    const maxLen = this.completionEnv.maxModelLen;
    const finish = this.stops.check(token, n, n >= this.params.maxTokens || (maxLen !== undefined && this.promptTokenIds.length + n >= maxLen));
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
