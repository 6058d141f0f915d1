/**
 * Runs the model graph (GRAPH_IO) over a slot KV cache: a prefill chunk of one sequence, or one decode step of many
 * sequences together. The cache is one backend buffer per layer for keys and one for values,
 * [slots, numKvHeads, maxLen, headDim], fed as row views (read-only, never copied); each step's new keys and values
 * come back as small outputs and are written into their slots at their positions.
 *
 * The views are laid out with just enough positions per head for the longest sequence held (`KvCacheBuffers.fit`,
 * in steps of POSITION_STEP): attention reads and copies what the view holds, so a step's cost follows the context,
 * not maxLen. Between re-layouts (one every POSITION_STEP positions at most) every step feeds the same view objects.
 */
import type { BackendBufferV1, BackendSessionV1, BackendValue } from '../backend/v1/backend-v1.js';
import { ConfigError } from '../errors.js';
import type { KvDtype } from '../graph/attention.js';
import { GRAPH_IO } from '../graph/io.js';
import type { ModelConfigV1 } from '../model/v1/model-architecture-v1.js';
import type { HostTensor } from '../tensor/dtype.js';

export interface KvCacheLayout {
  /** Sequence slots (the most sequences decoding at once). */
  slots: number;
  /** Positions per slot (the longest sequence, prompt + output). */
  maxLen: number;
  dtype: KvDtype;
}

/** Bytes of a KV cache of this layout for this model. */
export function kvCacheBytes(config: ModelConfigV1, layout: KvCacheLayout): number {
  return 2 * config.numLayers * layout.slots * config.numKvHeads * layout.maxLen * config.headDim * (layout.dtype === 'float16' ? 2 : 4);
}

/** The views' positions per head grow and shrink in steps of this many. */
export const POSITION_STEP = 32;

/** The cache buffers of every layer. */
export class KvCacheBuffers {
  readonly keys: BackendBufferV1[] = [];
  readonly values: BackendBufferV1[] = [];
  /** Positions each slot holds (0 when free). */
  private readonly held: number[];

  constructor(session: BackendSessionV1, config: ModelConfigV1, readonly layout: KvCacheLayout) {
    const shape = [layout.slots, config.numKvHeads, layout.maxLen, config.headDim];
    const dtype = layout.dtype === 'float16' ? 'F16' : 'F32';
    for (let i = 0; i < config.numLayers; i++) {
      this.keys.push(session.allocate(dtype, shape));
      this.values.push(session.allocate(dtype, shape));
    }
    this.held = new Array<number>(layout.slots).fill(0);
    this.layOut(Math.min(layout.maxLen, POSITION_STEP));
  }

  /** Positions per head the views have now. */
  get positions(): number {
    return this.keys[0]?.positions ?? this.layout.maxLen;
  }

  /**
   * Lay the buffers out for a run that reaches `need` positions: grow to the next POSITION_STEP multiple when the
   * view is too short, shrink when what every slot holds fits in half of it.
   */
  fit(need: number): void {
    const want = Math.max(need, ...this.held);
    const size = Math.min(this.layout.maxLen, Math.ceil(want / POSITION_STEP) * POSITION_STEP);
    if (want > this.positions || size <= this.positions / 2) this.layOut(size);
  }

  /** Slot `slot` now holds `length` positions (0: it is free). */
  hold(slot: number, length: number): void {
    this.held[slot] = length;
  }

  /** Copy one slot's first `length` positions into another (n > 1 completions share their prompt). */
  copySlot(src: number, dst: number, length: number): void {
    this.fit(length);
    for (const b of [...this.keys, ...this.values]) b.copyPositions(src, dst, length);
    this.held[dst] = length;
  }

  private layOut(positions: number): void {
    // Only what the slots hold moves (a free slot's stale positions are never read).
    for (const b of [...this.keys, ...this.values]) b.setPositions(positions, this.held);
  }
}

const int64 = (values: ArrayLike<number>, shape: number[]): HostTensor => ({
  dtype: 'I64', shape, data: BigInt64Array.from(Array.from(values, (v) => BigInt(v))),
});
const int32 = (values: ArrayLike<number>, shape: number[]): HostTensor => ({ dtype: 'I32', shape, data: Int32Array.from(values) });

/** One row of a decode step: the sequence in `slot`, its cache holding `past` positions, feeding `token`. */
export interface DecodeRow {
  slot: number;
  token: number;
  past: number;
}

export class StepRunner {
  constructor(
    private readonly session: BackendSessionV1,
    private readonly config: ModelConfigV1,
    readonly cache: KvCacheBuffers,
  ) {}

  /**
   * Feed `tokens` of the sequence in `slot` at positions past…past+S−1 (its cache holds `past` positions) and return
   * the logits of `logitRows` (indices into tokens) as [rows, vocab].
   */
  async prefill(slot: number, tokens: readonly number[], past: number, logitRows: readonly number[]): Promise<Float32Array> {
    const S = tokens.length;
    if (past + S > this.cache.layout.maxLen) throw new ConfigError(`slot ${slot}: ${past} + ${S} positions exceed the cache's ${this.cache.layout.maxLen}`);
    return this.run(1, slot, [{ slot, past }], S, {
      [GRAPH_IO.inputIds]: int64(tokens, [1, S]),
      [GRAPH_IO.seqlensK]: int32([past + S - 1], [1]),
      [GRAPH_IO.totalSequenceLength]: int32([past + S], [1]),
      [GRAPH_IO.logitsIndices]: int64(logitRows, [logitRows.length]),
    });
  }

  /**
   * One token for each row, batched over slots 0…max(slot) (a slot no row names runs a throw-away token at position
   * 0, reading nothing from the cache and writing nothing to it). Returns the logits [rows, vocab] in `rows` order.
   */
  async decode(rows: readonly DecodeRow[]): Promise<Float32Array> {
    const batch = Math.max(...rows.map((r) => r.slot)) + 1;
    const ids = new Array<number>(batch).fill(0);
    const seqlens = new Array<number>(batch).fill(0);
    let total = 1;
    for (const r of rows) {
      if (r.past + 1 > this.cache.layout.maxLen) throw new ConfigError(`slot ${r.slot}: position ${r.past} is past the cache's ${this.cache.layout.maxLen}`);
      ids[r.slot] = r.token;
      seqlens[r.slot] = r.past;
      total = Math.max(total, r.past + 1);
    }
    return this.run(batch, 0, rows, 1, {
      [GRAPH_IO.inputIds]: int64(ids, [batch, 1]),
      [GRAPH_IO.seqlensK]: int32(seqlens, [batch]),
      [GRAPH_IO.totalSequenceLength]: int32([total], [1]),
      [GRAPH_IO.logitsIndices]: int64(rows.map((r) => r.slot), [rows.length]),
    });
  }

  /**
   * Run rows [first, first + batch) of the cache; write each listed row's new keys and values into its slot at its
   * `past` (the throw-away rows of free slots are not written).
   */
  private async run(
    batch: number, first: number, written: ReadonlyArray<{ slot: number; past: number }>, S: number, feeds: Record<string, HostTensor | BackendValue>,
  ): Promise<Float32Array> {
    this.cache.fit(Math.max(...written.map((r) => r.past + S)));
    // Held from now on: a sequence aborted while the run is in flight frees its slot (hold 0) after this.
    for (const r of written) this.cache.hold(r.slot, r.past + S);
    for (let i = 0; i < this.config.numLayers; i++) {
      feeds[GRAPH_IO.pastKey(i)] = this.cache.keys[i]!.rows(first, batch);
      feeds[GRAPH_IO.pastValue(i)] = this.cache.values[i]!.rows(first, batch);
    }
    const out = await this.session.run(feeds);
    for (let i = 0; i < this.config.numLayers; i++) {
      for (const [name, buffer] of [[GRAPH_IO.newKey(i), this.cache.keys[i]!], [GRAPH_IO.newValue(i), this.cache.values[i]!]] as const) {
        const fresh = out[name]!;
        for (const r of written) buffer.writePositions(r.slot, r.past, fresh, r.slot - first);
        this.session.release(fresh);
      }
    }
    const logits = out[GRAPH_IO.logits]!;
    const host = this.session.toHost(logits).data as Float32Array;
    this.session.release(logits);
    return host;
  }
}
