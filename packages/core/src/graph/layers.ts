/**
 * Shared layers that architectures compose (attention and norms are the graph context's: `ctx.attention`,
 * `ctx.rmsNorm`). Tokens are rows: hidden states are [tokens, hidden].
 */
import type { GraphOpsV1 } from '../model/v1/graph-context-v1.js';

/** SwiGLU: silu(gate) · up. */
export function swiglu(g: GraphOpsV1, gate: string, up: string): string {
  return g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
}

/** x·cos + rotate_half(x)·sin, where rotate_half(x) = [-x2, x1] over the two halves of the last axis. */
export function applyRope(g: GraphOpsV1, x: string, rope: { cos: string; sin: string }, headDim: number): string {
  const half = g.ints([headDim / 2, headDim / 2]);
  const [x1, x2] = g.node('Split', [x, half], { axis: -1 }, { outputs: 2 }) as [string, string];
  const rotated = g.op('Concat', [g.op('Neg', [x2]), x1], { axis: -1 });
  return g.op('Add', [g.op('Mul', [x, rope.cos]), g.op('Mul', [rotated, rope.sin])]);
}
