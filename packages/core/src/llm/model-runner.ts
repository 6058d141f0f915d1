import type { BackendSessionV1 } from '../backend/v1/backend-v1.js';
import { KvCacheBuffers, StepRunner } from '../engine/step-runner.js';
import type { KvDtype } from '../graph/attention.js';
import type { ModelConfigV1 } from '../model/v1/model-architecture-v1.js';

/** One sequence's cache for ModelRunner: a one-slot KV cache, allocated on first use. */
export class KvCache {
  /** Positions cached so far. */
  length = 0;
  /** @internal */
  runner?: StepRunner;
}

/**
 * Runs a model one sequence at a time (tools and tests; serving goes through the batching Engine): a prefill of
 * many tokens, then one token per step, each sequence in its own one-slot cache of `maxLen` positions.
 */
export class ModelRunner {
  private readonly maxLen: number;
  private readonly kvDtype: KvDtype;

  constructor(
    private readonly session: BackendSessionV1,
    private readonly config: ModelConfigV1,
    options: { maxLen?: number; kvDtype?: KvDtype } = {},
  ) {
    this.maxLen = options.maxLen ?? Math.min(config.maxPositionEmbeddings, 2048);
    this.kvDtype = options.kvDtype ?? 'float32';
  }

  /**
   * Feed `tokenIds` at positions cache.length…, append them to the cache, and return the logits of the rows in
   * `logitRows` (indices into tokenIds) as one Float32Array [rows, vocab].
   */
  async forward(cache: KvCache, tokenIds: readonly number[], logitRows: readonly number[]): Promise<Float32Array> {
    cache.runner ??= new StepRunner(this.session, this.config, new KvCacheBuffers(this.session, this.config, { slots: 1, maxLen: this.maxLen, dtype: this.kvDtype }));
    const logits = await cache.runner.prefill(0, tokenIds, cache.length, logitRows);
    cache.length += tokenIds.length;
    return logits;
  }

  /** Release a finished sequence's cache. */
  free(cache: KvCache): void {
    cache.runner = undefined;
    cache.length = 0;
  }
}
