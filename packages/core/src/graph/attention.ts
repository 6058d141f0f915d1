/**
 * Attention over the engine's KV cache (GRAPH_IO), lowered two ways:
 *  - fused: com.microsoft GroupQueryAttention with do_rotary and the cache bound as both past and present, so a step
 *    writes only its own positions (onnxruntime-genai's past_present_share_buffer);
 *  - plain ONNX ops, for a backend without it: positions from seqlens_k, RoPE, ScatterElements into the cache,
 *    a masked softmax over the first total_sequence_length positions.
 * In a single layer's graph (LAYER_IO, calibration) there is no cache: one sequence at positions 0…S−1.
 */
import { f32ToF16 } from '../tensor/dtype.js';
import type { AttentionSpecV1 } from '../model/v1/graph-context-v1.js';
import type { GraphBuilder } from './graph-builder.js';
import { GRAPH_IO } from './io.js';
import { applyRope } from './layers.js';

export type KvDtype = 'float32' | 'float16';

const TO_FLOAT = 1;
const TO_FLOAT16 = 10;
const TO_INT64 = 7;
const TO_INT32 = 6;

/** The per-graph values attention needs, made once and shared by every layer. */
export interface AttentionInputs {
  /** int64 [B, S] token ids (model mode), or undefined in a layer graph. */
  inputIds?: string;
  /** The layer graph's hidden states [S, hidden] (layer mode). */
  hidden?: string;
}

export interface AttentionLoweringOptions {
  g: GraphBuilder;
  fused: boolean;
  kvDtype: KvDtype;
  /** Rotary tables cover positions 0…maxLen−1. */
  maxLen: number;
  numLayers: number;
}

/** Emits attention for every layer of one graph; holds the values the layers share. */
export class AttentionLowering {
  private readonly g: GraphBuilder;
  private shared?: { bs: string; seqlensK: string; total: string };
  private positionsValue?: string;
  private readonly ropeCache = new Map<string, { cos: string; sin: string }>();
  /** The present outputs each layer produced (model mode). */
  readonly presents: Array<{ key: string; value: string }> = [];

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
    const cast = (x: string) => (this.o.kvDtype === 'float16' ? g.op('Cast', [x], { to: TO_FLOAT16 }) : x);
    const toRows = (x: string, width: number) => g.op('Reshape', [x, g.op('Concat', [shared.bs, g.ints([width])], { axis: 0 })]);

    // onnxruntime's GroupQueryAttention needs head_size % 16 == 0; other shapes take the plain ops.
    if (this.o.fused && hd % 16 === 0) {
      const rope = this.ropeTables(spec, 'half');
      const past = model ? [GRAPH_IO.pastKey(layer), GRAPH_IO.pastValue(layer)].map((name) => this.pastInput(name, spec)) : ['', ''];
      const [out, presentKey, presentValue] = g.node(
        'GroupQueryAttention',
        [cast(toRows(q, H * hd)), cast(toRows(k, K * hd)), cast(toRows(v, K * hd)), past[0]!, past[1]!, shared.seqlensK, shared.total, rope.cos, rope.sin],
        { num_heads: H, kv_num_heads: K, do_rotary: 1, scale: { float: scale } },
        { domain: 'com.microsoft', outputs: 3, name: 'GroupQueryAttention' },
      ) as [string, string, string];
      if (model) this.presents[layer] = { key: presentKey, value: presentValue };
      const y = this.o.kvDtype === 'float16' ? g.op('Cast', [out], { to: TO_FLOAT }) : out;
      return g.op('Reshape', [y, g.ints([-1, H * hd])]);
    }

    // Plain ops. Positions [B, S]; q, k rotated as [B, S, heads, hd].
    const positions = this.positions();
    const rope = this.ropeTables(spec, 'full');
    const cosAt = g.op('Unsqueeze', [g.op('Gather', [rope.cos, positions], { axis: 0 }), g.ints([2])]); // [B, S, 1, hd]
    const sinAt = g.op('Unsqueeze', [g.op('Gather', [rope.sin, positions], { axis: 0 }), g.ints([2])]);
    const heads = (x: string, n: number) => g.op('Reshape', [x, g.op('Concat', [shared.bs, g.ints([n, hd])], { axis: 0 })]);
    const qr = applyRope(g, heads(q, H), { cos: cosAt, sin: sinAt }, hd);
    const kr = applyRope(g, heads(k, K), { cos: cosAt, sin: sinAt }, hd);
    const byHead = (x: string) => g.op('Transpose', [x], { perm: [0, 2, 1, 3] }); // [B, heads, S, hd]
    let keys = byHead(kr);
    let values = byHead(heads(v, K));
    if (model) {
      // Write the step's keys and values at their positions, then attend over the first `total` positions.
      const index = g.op('Expand', [g.op('Unsqueeze', [positions, g.ints([1, 3])]), g.op('Shape', [keys])]);
      const write = (name: string, x: string) => g.op('ScatterElements', [this.pastInput(name, spec), index, cast(x)], { axis: 2 });
      const presentKey = write(GRAPH_IO.pastKey(layer), keys);
      const presentValue = write(GRAPH_IO.pastValue(layer), values);
      this.presents[layer] = { key: presentKey, value: presentValue };
      const upTo = (x: string) => {
        const s = g.op('Slice', [x, g.ints([0]), g.op('Cast', [shared.total], { to: TO_INT64 }), g.ints([2])]);
        return this.o.kvDtype === 'float16' ? g.op('Cast', [s], { to: TO_FLOAT }) : s;
      };
      keys = upTo(presentKey);
      values = upTo(presentValue);
    }
    const rep = H / K;
    const q5 = g.op('Reshape', [byHead(qr), g.op('Concat', [g.op('Slice', [shared.bs, g.ints([0]), g.ints([1])]), g.ints([K, rep, -1, hd])], { axis: 0 })]);
    const k5 = g.op('Unsqueeze', [keys, g.ints([2])]); // [B, K, 1, T, hd]
    const v5 = g.op('Unsqueeze', [values, g.ints([2])]);
    const scores = g.op('Mul', [g.op('MatMul', [q5, g.op('Transpose', [k5], { perm: [0, 1, 2, 4, 3] })]), g.scalar(scale)]); // [B, K, rep, S, T]
    const keyPos = g.op('Range', [g.ints(0), g.op('Gather', [g.op('Shape', [keys]), g.ints(2)], { axis: 0 }), g.ints(1)]); // [T]
    const queryPos = g.op('Unsqueeze', [positions, g.ints([1, 2, 4])]); // [B, 1, 1, S, 1]
    const mask = g.op('Where', [g.op('Greater', [keyPos, queryPos]), g.scalar(-3.0e38), g.scalar(0)]);
    const probs = g.op('Softmax', [g.op('Add', [scores, mask])], { axis: -1 });
    const ctx = g.op('MatMul', [probs, v5]); // [B, K, rep, S, hd]
    const merged = g.op('Reshape', [ctx, g.op('Concat', [g.op('Slice', [shared.bs, g.ints([0]), g.ints([1])]), g.ints([H, -1, hd])], { axis: 0 })]);
    return g.op('Reshape', [g.op('Transpose', [merged], { perm: [0, 2, 1, 3] }), g.ints([-1, H * hd])]);
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
      const seqlensK = g.input(GRAPH_IO.seqlensK, 'int32', ['batch']);
      const total = g.input(GRAPH_IO.totalSequenceLength, 'int32', [1]);
      this.shared = { bs, seqlensK, total };
    } else {
      // One sequence of S tokens at positions 0…S−1, no cache.
      const S = g.op('Slice', [g.op('Shape', [this.io.hidden!]), g.ints([0]), g.ints([1])]); // [1] int64
      const bs = g.op('Concat', [g.ints([1]), S], { axis: 0 });
      const seqlensK = g.op('Cast', [g.op('Sub', [S, g.ints(1)])], { to: TO_INT32 });
      const total = g.op('Cast', [S], { to: TO_INT32 });
      this.shared = { bs, seqlensK, total };
    }
    return this.shared;
  }

  /** int64 [B, S]: row b's tokens sit at seqlens_k[b] + 1 − S + (0…S−1). */
  private positions(): string {
    if (this.positionsValue) return this.positionsValue;
    const { g } = this;
    const { bs, seqlensK } = this.sharedValues();
    const S = g.op('Slice', [bs, g.ints([1]), g.ints([2])]);
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
    const fused = form === 'half' && this.o.kvDtype === 'float16';
    const make = (name: string, data: Float32Array) => fused
      ? this.g.initializer(`${name}.${key}`, 'float16', [n, width], () => f32ToF16(data))
      : this.g.initializer(`${name}.${key}`, 'float32', [n, width], data);
    tables = { cos: make('rope_cos', cos), sin: make('rope_sin', sin) };
    this.ropeCache.set(key, tables);
    return tables;
  }
}
