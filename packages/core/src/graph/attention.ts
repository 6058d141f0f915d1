/**
 * Attention over the engine's KV cache (GRAPH_IO). The cache is a read-only input: attention reads each row's first
 * past positions from it, and the step's rotated keys and values come out as small outputs (new_key / new_value) that
 * the engine writes into the cache. (onnxruntime-node copies every fetched output into a fresh JavaScript buffer,
 * so a cache bound as an output — GroupQueryAttention's shared past/present buffer — would be copied whole every
 * step; an input is not.) Two lowerings:
 *  - fused: RotaryEmbedding on q and k, then com.microsoft GroupQueryAttention over the used part of the cache;
 *  - plain ONNX ops, for a backend without them (or head_dim % 16 != 0): RoPE, the cached and new keys
 *    concatenated, a masked softmax.
 * In a single layer's graph (LAYER_IO, calibration) there is no cache: one sequence at positions 0…S−1.
 */
import type { AttentionSpecV1 } from '../model/v1/graph-context-v1.js';
import type { GraphBuilder } from './graph-builder.js';
import { GRAPH_IO } from './io.js';
import { applyRope } from './layers.js';

export type KvDtype = 'float32' | 'float16';

const TO_FLOAT = 1;
const TO_FLOAT16 = 10;
const TO_INT64 = 7;
const TO_INT32 = 6;
const MS = { domain: 'com.microsoft' };

/** The per-graph values attention needs, made once and shared by every layer. */
export interface AttentionInputs {
  /** int64 [B, S] token ids (model mode), or undefined in a layer graph. */
  inputIds?: string;
  /** The layer graph's hidden states [S, hidden] (layer mode). */
  hidden?: string;
}

export interface AttentionLoweringOptions {
  g: GraphBuilder;
  /** Which com.microsoft ops the backend runs. */
  supports: (op: string) => boolean;
  kvDtype: KvDtype;
  /** Rotary tables cover positions 0…maxLen−1. */
  maxLen: number;
}

/** Emits attention for every layer of one graph; holds the values the layers share. */
export class AttentionLowering {
  private readonly g: GraphBuilder;
  private shared?: { bs: string; S: string; seqlensK: string; total: string; pastLen: string };
  private positionsValue?: string;
  private readonly ropeCache = new Map<string, { cos: string; sin: string }>();
  /** The new keys and values each layer produced (model mode), [B, numKvHeads, S, headDim] in the KV dtype. */
  readonly newKv: Array<{ key: string; value: string }> = [];

  constructor(private readonly o: AttentionLoweringOptions, private readonly io: AttentionInputs) {
    this.g = o.g;
  }

  /** q [T, H·hd], k/v [T, Hkv·hd] → [T, H·hd]. */
  emit(layer: number, q: string, k: string, v: string, spec: AttentionSpecV1): string {
    const { g } = this;
    const { numHeads: H, numKvHeads: K, headDim: hd } = spec;
    const scale = spec.scale ?? hd ** -0.5;
    const model = this.io.inputIds !== undefined;
    const shared = this.sharedValues();
    const positions = this.positions();
    const toKv = (x: string) => (this.o.kvDtype === 'float16' ? g.op('Cast', [x], { to: TO_FLOAT16 }) : x);
    const fromKv = (x: string) => (this.o.kvDtype === 'float16' ? g.op('Cast', [x], { to: TO_FLOAT }) : x);
    const shape = (...tail: number[]) => g.op('Concat', [shared.bs, g.ints(tail)], { axis: 0 });
    const byHead = (x: string) => g.op('Transpose', [x], { perm: [0, 2, 1, 3] }); // [B, S, n, hd] ↔ [B, n, S, hd]

    // Rotate q and k at their positions: [B, S, n·hd].
    const rotate = (x: string, n: number): string => {
      const rows = g.op('Reshape', [x, shape(n * hd)]);
      if (this.o.supports('RotaryEmbedding')) {
        const t = this.ropeTables(spec, 'half');
        return g.op('RotaryEmbedding', [rows, positions, t.cos, t.sin], { interleaved: 0, num_heads: n }, MS);
      }
      const t = this.ropeTables(spec, 'full');
      const at = (table: string) => g.op('Unsqueeze', [g.op('Gather', [table, positions], { axis: 0 }), g.ints([2])]); // [B, S, 1, hd]
      return g.op('Reshape', [applyRope(g, g.op('Reshape', [x, shape(n, hd)]), { cos: at(t.cos), sin: at(t.sin) }, hd), shape(n * hd)]);
    };
    const qr = rotate(q, H);
    const kr = rotate(k, K);
    const vr = g.op('Reshape', [v, shape(K * hd)]);
    const kNew = byHead(g.op('Reshape', [kr, shape(K, hd)])); // [B, K, S, hd]
    const vNew = byHead(g.op('Reshape', [vr, shape(K, hd)]));
    if (model) this.newKv[layer] = { key: toKv(kNew), value: toKv(vNew) };
    // The cached positions every row may read: the first `pastLen` (= total − S) of each slot.
    const cached = (name: string) => fromKv(g.op('Slice', [this.pastInput(name, spec), g.ints([0]), shared.pastLen, g.ints([2])]));

    // onnxruntime's GroupQueryAttention needs head_size % 16 == 0; other shapes take the plain ops.
    if (this.o.supports('GroupQueryAttention') && hd % 16 === 0) {
      const past = model ? [cached(GRAPH_IO.pastKey(layer)), cached(GRAPH_IO.pastValue(layer))] : ['', ''];
      const [out] = g.node('GroupQueryAttention', [qr, kr, vr, past[0]!, past[1]!, shared.seqlensK, shared.total],
        { num_heads: H, kv_num_heads: K, scale: { float: scale } }, { ...MS, outputs: 3, name: 'GroupQueryAttention' });
      return g.op('Reshape', [out!, g.ints([-1, H * hd])]);
    }

    // Plain ops: keys = [cached | new] along positions, masked per row; q as [B, K, rep, S, hd].
    const keys = model ? g.op('Concat', [cached(GRAPH_IO.pastKey(layer)), kNew], { axis: 2 }) : kNew;
    const values = model ? g.op('Concat', [cached(GRAPH_IO.pastValue(layer)), vNew], { axis: 2 }) : vNew;
    const rep = H / K;
    const batch = g.op('Slice', [shared.bs, g.ints([0]), g.ints([1])]);
    const q5 = g.op('Reshape', [byHead(g.op('Reshape', [qr, shape(H, hd)])), g.op('Concat', [batch, g.ints([K, rep, -1, hd])], { axis: 0 })]);
    const k5 = g.op('Unsqueeze', [keys, g.ints([2])]); // [B, K, 1, T, hd]
    const v5 = g.op('Unsqueeze', [values, g.ints([2])]);
    const scores = g.op('Mul', [g.op('MatMul', [q5, g.op('Transpose', [k5], { perm: [0, 1, 2, 4, 3] })]), g.scalar(scale)]); // [B, K, rep, S, T]
    const probs = g.op('Softmax', [g.op('Add', [scores, this.mask()])], { axis: -1 });
    const ctx = g.op('MatMul', [probs, v5]); // [B, K, rep, S, hd]
    const merged = g.op('Reshape', [ctx, g.op('Concat', [batch, g.ints([H, -1, hd])], { axis: 0 })]);
    return g.op('Reshape', [byHead(merged), g.ints([-1, H * hd])]);
  }

  /**
   * The additive mask [B, 1, 1, S, pastLen + S] of the plain lowering: row b's token s sees cached position j when
   * j < past_b (its own cached positions; the slot may hold stale ones beyond), and new token t when t ≤ s.
   */
  private mask(): string {
    const { g } = this;
    const { S, seqlensK, pastLen } = this.sharedValues();
    const s = g.op('Squeeze', [S, g.ints([0])]);
    const T = g.op('Add', [g.op('Squeeze', [pastLen, g.ints([0])]), s]);
    const j = g.op('Range', [g.ints(0), T, g.ints(1)]); // [T]
    const t = g.op('Unsqueeze', [g.op('Range', [g.ints(0), s, g.ints(1)]), g.ints([1])]); // [S, 1]
    const pastB = g.op('Unsqueeze', [g.op('Sub', [g.op('Add', [g.op('Cast', [seqlensK], { to: TO_INT64 }), g.ints(1)]), S]), g.ints([1, 2, 3, 4])]); // [B,1,1,1,1]
    const fromCache = g.op('Less', [j, pastB]); // [B,1,1,1,T]
    const newIndex = g.op('Sub', [j, pastLen]); // index among the new tokens (negative for cached positions)
    const fromNew = g.op('And', [g.op('GreaterOrEqual', [newIndex, g.ints(0)]), g.op('LessOrEqual', [newIndex, t])]); // [S, T]
    return g.op('Where', [g.op('Or', [fromCache, fromNew]), g.scalar(0), g.scalar(-3.0e38)]);
  }

  /** The cache input of one layer (declared on first use). */
  private pastInput(name: string, spec: AttentionSpecV1): string {
    return this.g.input(name, this.o.kvDtype, ['batch', spec.numKvHeads, 'max_len', spec.headDim]);
  }

  private sharedValues() {
    if (this.shared) return this.shared;
    const { g } = this;
    if (this.io.inputIds !== undefined) {
      const bs = g.op('Shape', [this.io.inputIds]); // [B, S]
      const S = g.op('Slice', [bs, g.ints([1]), g.ints([2])]); // [1]
      const seqlensK = g.input(GRAPH_IO.seqlensK, 'int32', ['batch']);
      const total = g.input(GRAPH_IO.totalSequenceLength, 'int32', [1]);
      const pastLen = g.op('Sub', [g.op('Cast', [total], { to: TO_INT64 }), S]);
      this.shared = { bs, S, seqlensK, total, pastLen };
    } else {
      // One sequence of S tokens at positions 0…S−1, no cache.
      const S = g.op('Slice', [g.op('Shape', [this.io.hidden!]), g.ints([0]), g.ints([1])]); // [1] int64
      const bs = g.op('Concat', [g.ints([1]), S], { axis: 0 });
      const seqlensK = g.op('Cast', [g.op('Sub', [S, g.ints(1)])], { to: TO_INT32 });
      const total = g.op('Cast', [S], { to: TO_INT32 });
      this.shared = { bs, S, seqlensK, total, pastLen: g.ints([0]) };
    }
    return this.shared;
  }

  /** int64 [B, S]: row b's tokens sit at seqlens_k[b] + 1 − S + (0…S−1). */
  private positions(): string {
    if (this.positionsValue) return this.positionsValue;
    const { g } = this;
    const { S, seqlensK } = this.sharedValues();
    const first = g.op('Sub', [g.op('Add', [g.op('Cast', [seqlensK], { to: TO_INT64 }), g.ints(1)]), S]);
    const steps = g.op('Range', [g.ints(0), g.op('Squeeze', [S, g.ints([0])]), g.ints(1)]);
    this.positionsValue = g.op('Add', [g.op('Unsqueeze', [first, g.ints([1])]), g.op('Unsqueeze', [steps, g.ints([0])])]);
    return this.positionsValue;
  }

  /** cos/sin tables [maxLen, hd/2] ('half', GroupQueryAttention's cos_cache) or [maxLen, hd] ('full', rotate_half form). */
  private ropeTables(spec: AttentionSpecV1, form: 'half' | 'full'): { cos: string; sin: string } {
    const key = `${spec.headDim}:${spec.ropeTheta}:${form}`;
    let tables = this.ropeCache.get(key);
    if (tables) return tables;
    const half = spec.headDim / 2;
    const width = form === 'half' ? half : spec.headDim;
    const n = this.o.maxLen;
    const cos = new Float32Array(n * width);
    const sin = new Float32Array(n * width);
    for (let p = 0; p < n; p++) {
      for (let i = 0; i < half; i++) {
        // Angles in float64 (the reference's); only the table entries are rounded to float32.
        const angle = p / spec.ropeTheta ** ((2 * i) / spec.headDim);
        for (const j of form === 'half' ? [i] : [i, i + half]) {
          cos[p * width + j] = Math.cos(angle);
          sin[p * width + j] = Math.sin(angle);
        }
      }
    }
    const make = (name: string, data: Float32Array) => this.g.initializer(`${name}.${key}`, 'float32', [n, width], data);
    tables = { cos: make('rope_cos', cos), sin: make('rope_sin', sin) };
    this.ropeCache.set(key, tables);
    return tables;
  }
}
