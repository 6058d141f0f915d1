/**
 * A completion's stop conditions and its incremental text, shared by the local engine's Sequence and the remote
 * backend's sequence: after each appended token, vLLM's order — EOS, stop token ids, stop strings (on the detokenized
 * tail), then length — and the text a stop token leaves out unless includeStopStrInOutput.
 */
import type { QllmTokenizer } from '../loading/index.js';
import type { SamplingParams } from '../llm/sampling-params.js';
import { IncrementalDetokenizer } from './detokenizer.js';

/** Why a completion ended (vLLM's finish_reason). */
export type FinishReason = 'stop' | 'length' | 'abort';

export interface StopEnv {
  tokenizer?: QllmTokenizer;
  eosTokenIds: readonly number[];
}

export interface Finish {
  reason: FinishReason;
  /** The stop token id or stop string that ended it (vLLM's stop_reason); null for EOS and length. */
  stop: number | string | null;
}

export class StopChecker {
  private readonly stopIds: ReadonlySet<number>;
  private readonly eos: ReadonlySet<number>;
  private readonly detokenizer?: IncrementalDetokenizer;

  constructor(promptTokenIds: readonly number[], private readonly params: SamplingParams, env: StopEnv) {
    this.stopIds = new Set(params.stopTokenIds);
    this.eos = new Set(params.ignoreEos ? [] : env.eosTokenIds);
    if (env.tokenizer) {
      this.detokenizer = new IncrementalDetokenizer(env.tokenizer, promptTokenIds, {
        skipSpecialTokens: params.skipSpecialTokens,
        stop: params.stop,
        includeStopStrInOutput: params.includeStopStrInOutput,
      });
    }
  }

  /**
   * `token` was just appended as output token number `n`; `atLimit` says the sequence reached maxTokens or the
   * model's length. Returns how it finished, or null to go on.
   */
  check(token: number, n: number, atLimit: boolean): Finish | null {
    const mayStop = n >= this.params.minTokens;
    let finish: Finish | null = null;
    if (mayStop && this.eos.has(token)) finish = { reason: 'stop', stop: null };
    else if (mayStop && this.stopIds.has(token)) finish = { reason: 'stop', stop: token };
    // vLLM V1 leaves a stop token's text out of the output unless includeStopStrInOutput.
    if (this.detokenizer && !(finish && !this.params.includeStopStrInOutput)) {
      const hit = this.detokenizer.update([token]);
      if (hit !== undefined && mayStop && !finish) finish = { reason: 'stop', stop: hit };
    }
    return finish ?? (atLimit ? { reason: 'length', stop: null } : null);
  }

  /** The text so far, or (delta) what earlier calls did not return; '' without a tokenizer. */
  text(finished: boolean, delta: boolean): string {
    return this.detokenizer ? this.detokenizer.getNextOutputText(finished, delta) : '';
  }
}
