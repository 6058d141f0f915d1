/**
 * Attention over the engine's KV cache (GRAPH_IO). The cache is a read-only input: attention reads each row's first
 * past positions from it, and the step's rotated keys and values come out as small outputs (new_key / new_value) that
 * the engine writes into the cache. (onnxruntime-node copies every fetched output into a fresh JavaScript buffer,
 * so a cache bound as an output — GroupQueryAttention's shared past/present buffer — would be copied whole every
 * step; an input is not.) RoPE is com.microsoft RotaryEmbedding where the backend has it (plain ops otherwise). Over
 * the cache, attention is plain ops that read the cache view in place (the engine lays the view out just longer than
 * the longest sequence, so it is what the sequences hold): scores against the view and against the step's new keys,
 * one masked softmax, probabilities × values from each; FusedMatMul (transB) where the backend has it, so no
 * transposed copy of the keys is made. In a single layer's graph (LAYER_IO, calibration) there is no cache: one
 * sequence at positions 0…S−1, through com.microsoft GroupQueryAttention where the backend has it.
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
  private shared?: { bs: string; S: string; seqlensK: string; total: string };
  private positionsValue?: string;
  private readonly ropeCache = new Map<string, { cos: string; sin: string }>();
  private readonly masks = new Map<string, string>();
  private readonly shapes = new Map<string, string>();
  private viewLen?: string;
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
    const shape = (...tail: number[]) => this.shapeOf(tail);

    // A layer graph (calibration: no cache) takes onnxruntime's GroupQueryAttention where it runs (head_size % 16 == 0).
    // Over a cache it does not: it zero-fills a fresh present buffer and copies each row's past into it (once per
    // query head) on every call, which at 16 sequences × 160 positions cost 6 ms a layer against 1 for the plain
    // ops below; with one sequence the two are level at 128+ positions (bench/profile-step.ts).
    if (!model && this.o.supports('GroupQueryAttention') && this.o.supports('RotaryEmbedding') && hd % 16 === 0) {
      const t = this.ropeTables(spec, 'half');
      const rotate = (x: string, n: number) => g.op('RotaryEmbedding', [g.op('Reshape', [x, shape(n * hd)]), positions, t.cos, t.sin], { interleaved: 0, num_heads: n }, MS);
      const [out] = g.node('GroupQueryAttention', [rotate(q, H), rotate(k, K), g.op('Reshape', [v, shape(K * hd)]), '', '', shared.seqlensK, shared.total],
        { num_heads: H, kv_num_heads: K, scale: { float: scale } }, { ...MS, outputs: 3, name: 'GroupQueryAttention' });
      return g.op('Reshape', [out!, g.ints([-1, H * hd])]);
    }

    // Plain ops that read the cache view in place. Heads first, [B, n, S, hd], rotated in that layout; the new keys
    // and values are the step's cache entries as they are. Query rows are grouped by KV head, [B, K, rep·S, hd] (row
    // r·S + s is token s of query head k·rep + r), so each KV head's keys and values are read once for all its query
    // heads. (Queries laid out [rep, B, K, S, hd], broadcast against the cache with M = 1 GEMMs that MLAS streams
    // without packing, measured slower: every key is then read rep times.)
    const byHead = (x: string, n: number) => g.op('Transpose', [g.op('Reshape', [x, shape(n, hd)])], { perm: [0, 2, 1, 3] });
    const qh = this.rotate(byHead(q, H), spec);
    const kNew = this.rotate(byHead(k, K), spec);
    const vNew = byHead(v, K);
    if (model) this.newKv[layer] = { key: toKv(kNew), value: toKv(vNew) };
    const rep = H / K;
    const q4 = g.op('Reshape', [qh, g.ints([0, K, -1, hd])]);
    const scoresNew = this.scaledMatMulT(q4, kNew, scale); // [B, K, rep·S, S]
    let ctx: string;
    if (model) {
      // Scores against the cached positions and the new ones, one masked softmax over both, probabilities × values
      // from each.
      const pastKey = fromKv(this.pastInput(GRAPH_IO.pastKey(layer), spec));
      const pastValue = fromKv(this.pastInput(GRAPH_IO.pastValue(layer), spec));
      // [1]: the view's positions (every layer's view has the same length).
      this.viewLen ??= g.op('Slice', [g.op('Shape', [pastKey]), g.ints([2]), g.ints([3])]);
      const viewLen = this.viewLen;
      const scores = g.op('Concat', [this.scaledMatMulT(q4, pastKey, scale), scoresNew], { axis: -1 }); // [B, K, rep·S, P + S]
      const probs = g.op('Softmax', [g.op('Add', [scores, this.mask(rep, viewLen)])], { axis: -1 });
      const fromCache = g.op('MatMul', [g.op('Slice', [probs, g.ints([0]), viewLen, g.ints([3])]), pastValue]);
      const fromNew = g.op('MatMul', [g.op('Slice', [probs, viewLen, g.ints([2 ** 31 - 1]), g.ints([3])]), vNew]);
      ctx = g.op('Add', [fromCache, fromNew]);
    } else {
      ctx = g.op('MatMul', [g.op('Softmax', [g.op('Add', [scoresNew, this.mask(rep)])], { axis: -1 }), vNew]);
    }
    const tokens = g.op('Transpose', [g.op('Reshape', [ctx, g.ints([0, H, -1, hd])])], { perm: [0, 2, 1, 3] }); // [B, S, H, hd]
    return g.op('Reshape', [tokens, g.ints([-1, H * hd])]);
  }

  /** x [B, n, S, hd] rotated at its tokens' positions. */
  private rotate(x: string, spec: AttentionSpecV1): string {
    const { g } = this;
    const positions = this.positions();
    if (this.o.supports('RotaryEmbedding')) {
      const t = this.ropeTables(spec, 'half');
      return g.op('RotaryEmbedding', [x, positions, t.cos, t.sin], { interleaved: 0 }, MS);
    }
    const t = this.ropeTables(spec, 'full');
    const at = (table: string) => g.op('Unsqueeze', [g.op('Gather', [table, positions], { axis: 0 }), g.ints([1])]); // [B, 1, S, hd]
    return applyRope(g, x, { cos: at(t.cos), sin: at(t.sin) }, spec.headDim);
  }

  /** [B, S, ...tail], made once per graph. */
  private shapeOf(tail: number[]): string {
    const key = tail.join(',');
    let value = this.shapes.get(key);
    if (!value) {
      value = this.g.op('Concat', [this.sharedValues().bs, this.g.ints(tail)], { axis: 0 });
      this.shapes.set(key, value);
    }
    return value;
  }

  /** alpha · a · bᵀ over the last two axes, without materializing bᵀ where the backend has FusedMatMul. */
  private scaledMatMulT(a: string, b: string, alpha: number): string {
    const { g } = this;
    if (this.o.supports('FusedMatMul')) return g.op('FusedMatMul', [a, b], { transB: 1, alpha: { float: alpha } }, MS);
    return g.op('Mul', [g.op('MatMul', [a, g.op('Transpose', [b], { perm: [0, 1, 3, 2] })]), g.scalar(alpha)]);
  }

  /**
   * The additive mask of the plain lowering (made once per graph), [B, 1, rep·S, P + S] over a cache view of P
   * positions ([rep·S, S] without a cache): query row m (token s = m mod S) of row b sees cached position j when
   * j < past_b (the view may hold stale positions beyond), and new token t when t ≤ s.
   */
  private mask(rep: number, viewLen?: string): string {
    const key = `${rep}:${viewLen ?? ''}`;
    const made = this.masks.get(key);
    if (made) return made;
    const { g } = this;
    const { S, seqlensK } = this.sharedValues();
    const s = g.op('Squeeze', [S, g.ints([0])]);
    const rows = g.op('Range', [g.ints(0), g.op('Mul', [s, g.ints(rep)]), g.ints(1)]);
    const tokenOfRow = g.op('Unsqueeze', [g.op('Mod', [rows, s]), g.ints([1])]); // [rep·S, 1]
    let visible = g.op('LessOrEqual', [g.op('Range', [g.ints(0), s, g.ints(1)]), tokenOfRow]); // [rep·S, S]
    if (viewLen !== undefined) {
      const batch = g.op('Slice', [g.op('Shape', [seqlensK]), g.ints([0]), g.ints([1])]);
      const j = g.op('Range', [g.ints(0), g.op('Squeeze', [viewLen, g.ints([0])]), g.ints(1)]); // [P]
      const pastB = g.op('Unsqueeze', [g.op('Sub', [g.op('Add', [g.op('Cast', [seqlensK], { to: TO_INT64 }), g.ints(1)]), S]), g.ints([1, 2, 3])]); // [B,1,1,1]
      const rowsN = g.op('Mul', [S, g.ints([rep])]);
      const fromCache = g.op('Expand', [g.op('Less', [j, pastB]), g.op('Concat', [batch, g.ints([1]), rowsN, viewLen], { axis: 0 })]);
      const fromNew = g.op('Expand', [visible, g.op('Concat', [batch, g.ints([1]), rowsN, S], { axis: 0 })]);
      visible = g.op('Concat', [fromCache, fromNew], { axis: -1 });
    }
    const mask = g.op('Where', [visible, g.scalar(0), g.scalar(-3.0e38)]);
    this.masks.set(key, mask);
    return mask;
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
      this.shared = { bs, S, seqlensK, total };
    } else {
      // One sequence of S tokens at positions 0…S−1, no cache.
      const S = g.op('Slice', [g.op('Shape', [this.io.hidden!]), g.ints([0]), g.ints([1])]); // [1] int64
      const bs = g.op('Concat', [g.ints([1]), S], { axis: 0 });
      const seqlensK = g.op('Cast', [g.op('Sub', [S, g.ints(1)])], { to: TO_INT32 });
      const total = g.op('Cast', [S], { to: TO_INT32 });
      this.shared = { bs, S, seqlensK, total };
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

  /** cos/sin tables [maxLen, hd/2] ('half', RotaryEmbedding's cos_cache) or [maxLen, hd] ('full', rotate_half form). */
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
