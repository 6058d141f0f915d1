import type { BackendSessionV1, BackendValue } from '../backend/v1/backend-v1.js';
import { GRAPH_IO } from '../graph/io.js';
import type { ModelConfigV1 } from '../model/v1/model-architecture-v1.js';
import type { HostTensor } from '../tensor/dtype.js';

/** One sequence's KV cache: a backend value per layer for keys and for values. */
export class KvCache {
  keys: BackendValue[] = [];
  values: BackendValue[] = [];
  /** Positions cached so far. */
  length = 0;
}

const int64 = (values: ArrayLike<number>): HostTensor => ({
  dtype: 'I64', shape: [values.length], data: BigInt64Array.from(Array.from(values, (v) => BigInt(v))),
});

/**
 * Runs the architecture's graph (GRAPH_IO) for one sequence at a time: a prefill of many tokens, then one token
 * per step, the KV cache staying with the backend between steps.
 */
export class ModelRunner {
  private readonly emptyKv: HostTensor;

  constructor(
    private readonly session: BackendSessionV1,
    private readonly config: ModelConfigV1,
  ) {
    this.emptyKv = { dtype: 'F32', shape: [1, config.numKvHeads, 0, config.headDim], data: new Float32Array(0) };
  }

  /**
   * Feed `tokenIds` at positions cache.length…, append them to the cache, and return the logits of the rows in
   * `logitRows` (indices into tokenIds) as one Float32Array [rows, vocab].
   */
  async forward(cache: KvCache, tokenIds: readonly number[], logitRows: readonly number[]): Promise<Float32Array> {
    const n = tokenIds.length;
    const feeds: Record<string, HostTensor | BackendValue> = {
      [GRAPH_IO.inputIds]: int64(tokenIds),
      [GRAPH_IO.positions]: int64(Array.from({ length: n }, (_, i) => cache.length + i)),
      [GRAPH_IO.logitsIndices]: int64(logitRows),
    };
    for (let i = 0; i < this.config.numLayers; i++) {
      feeds[GRAPH_IO.pastKey(i)] = cache.keys[i] ?? this.emptyKv;
      feeds[GRAPH_IO.pastValue(i)] = cache.values[i] ?? this.emptyKv;
    }
    const out = await this.session.run(feeds);
    for (let i = 0; i < this.config.numLayers; i++) {
      if (cache.keys[i]) this.session.release(cache.keys[i]!);
      if (cache.values[i]) this.session.release(cache.values[i]!);
      cache.keys[i] = out[GRAPH_IO.presentKey(i)]!;
      cache.values[i] = out[GRAPH_IO.presentValue(i)]!;
    }
    cache.length += n;
    const logits = out[GRAPH_IO.logits]!;
    const host = this.session.toHost(logits);
    return host.data as Float32Array;
  }

  /** Release a finished sequence's cache. */
  free(cache: KvCache): void {
    for (const v of [...cache.keys, ...cache.values]) this.session.release(v);
    cache.keys = [];
    cache.values = [];
    cache.length = 0;
  }
}
