/**
 * Shared layers that architectures compose. Tokens are rows: hidden states are [tokens, hidden];
 * attention works per sequence with the KV cache layout [1, kvHeads, positions, headDim] of GRAPH_IO.
 */
import type { GraphBuilder } from './graph-builder.js';
import { float } from './graph-builder.js';

/** RMSNorm over the last axis: x / sqrt(mean(x²) + eps) · weight (weight used as is, not 1 + w). */
export function rmsNorm(g: GraphBuilder, x: string, weight: string, eps: number): string {
  return g.op('SimplifiedLayerNormalization', [x, weight], { axis: -1, epsilon: float(eps), stash_type: 1 });
}

/** SwiGLU: silu(gate) · up. */
export function swiglu(g: GraphBuilder, gate: string, up: string): string {
  return g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
}

/** cos and sin tables [tokens, headDim] for non-interleaved (rotate_half) RoPE at the given positions. */
export function ropeTables(g: GraphBuilder, positions: string, headDim: number, theta: number): { cos: string; sin: string } {
  const half = headDim / 2;
  const invFreq = Float32Array.from({ length: half }, (_, i) => 1 / theta ** ((2 * i) / headDim));
  const pos = g.op('Unsqueeze', [g.op('Cast', [positions], { to: 1 }), g.ints([1])]); // [S, 1] float32
  const freqs = g.op('Mul', [pos, g.constant('float32', [half], invFreq, 'inv_freq')]); // [S, half]
  const emb = g.op('Concat', [freqs, freqs], { axis: -1 }); // [S, headDim]
  return { cos: g.op('Cos', [emb]), sin: g.op('Sin', [emb]) };
}

/** x·cos + rotate_half(x)·sin, where rotate_half(x) = [-x2, x1] over the two halves of the last axis. */
export function applyRope(g: GraphBuilder, x: string, rope: { cos: string; sin: string }, headDim: number): string {
  const half = g.ints([headDim / 2, headDim / 2]);
  const [x1, x2] = g.node('Split', [x, half], { axis: -1 }, { outputs: 2 }) as [string, string];
  const rotated = g.op('Concat', [g.op('Neg', [x2]), x1], { axis: -1 });
  return g.op('Add', [g.op('Mul', [x, rope.cos]), g.op('Mul', [rotated, rope.sin])]);
}

/** Key positions 0…past+S-1 of a sequence whose cache holds `pastKey` [1, Hkv, P, hd] and gets `inputIds` [S] more. */
export function keyPositions(g: GraphBuilder, pastKey: string, inputIds: string): string {
  const past = g.op('Shape', [pastKey], { start: 2, end: 3 });
  const total = g.op('Squeeze', [g.op('Add', [past, g.op('Shape', [inputIds])]), g.ints([0])]);
  return g.op('Range', [g.ints(0), total, g.ints(1)]);
}

/** Additive causal mask [S, T]: 0 where key position ≤ the query's position, a large negative elsewhere. */
export function causalMask(g: GraphBuilder, positions: string, keys: string): string {
  const k = g.op('Unsqueeze', [keys, g.ints([0])]); // [1, T]
  const q = g.op('Unsqueeze', [positions, g.ints([1])]); // [S, 1]
  return g.op('Where', [g.op('Greater', [k, q]), g.scalar(-3.0e38), g.scalar(0)]);
}

export interface AttentionShape {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
}

/**
 * Grouped-query attention for one sequence. q [H, S, hd]; k, v [Hkv, S, hd]; past (optional) [1, Hkv, P, hd].
 * Query head h uses KV head floor(h / (H / Hkv)). Returns the attention output [S, H·hd] and the new caches.
 */
export function groupedQueryAttention(
  g: GraphBuilder,
  q: string, k: string, v: string,
  past: { key: string; value: string } | undefined,
  mask: string,
  shape: AttentionShape,
): { out: string; presentKey: string; presentValue: string } {
  const { numHeads: H, numKvHeads: K, headDim: hd } = shape;
  const rep = H / K;
  const append = (cache: string | undefined, x: string) => {
    const fresh = g.op('Unsqueeze', [x, g.ints([0])]);
    return cache ? g.op('Concat', [cache, fresh], { axis: 2 }) : fresh;
  };
  const presentKey = append(past?.key, k);
  const presentValue = append(past?.value, v);
  const kvShape = g.ints([K, 1, -1, hd]);
  const keys = g.op('Reshape', [presentKey, kvShape]); // [K, 1, T, hd]
  const values = g.op('Reshape', [presentValue, kvShape]);
  const queries = g.op('Reshape', [q, g.ints([K, rep, -1, hd])]); // [K, rep, S, hd]
  const scores = g.op('Mul', [g.op('MatMul', [queries, g.op('Transpose', [keys], { perm: [0, 1, 3, 2] })]), g.scalar(hd ** -0.5)]);
  const probs = g.op('Softmax', [g.op('Add', [scores, mask])], { axis: -1 }); // [K, rep, S, T]
  const ctx = g.op('Reshape', [g.op('MatMul', [probs, values]), g.ints([H, -1, hd])]); // [H, S, hd]
  const out = g.op('Reshape', [g.op('Transpose', [ctx], { perm: [1, 0, 2] }), g.ints([-1, H * hd])]);
  return { out, presentKey, presentValue };
}

/** [S, heads·hd] → [heads, S, hd]. */
export function splitHeads(g: GraphBuilder, x: string, heads: number, headDim: number): string {
  return g.op('Transpose', [g.op('Reshape', [x, g.ints([-1, heads, headDim])])], { perm: [1, 0, 2] });
}
