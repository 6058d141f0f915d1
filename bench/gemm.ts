/**
 * `node --conditions=source --import tsx bench/gemm.ts`: onnxruntime's fp32 GEMV at decode shape, alone: L independent
 * [1, K] × [K, N] products (Gemm with transB on [N, K] weights, as qllm's float linear emits them, and MatMul on
 * [K, N]), with the weights larger than the caches, to compare with the in-model rate in BENCHMARKS.md.
 */
import os from 'node:os';
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from 'qllm';

async function bench(kind: 'Gemm transB' | 'MatMul', K: number, N: number, L: number): Promise<void> {
  const g = new GraphBuilder('gemm');
  const x = g.input('x', 'float32', ['n', K]);
  for (let l = 0; l < L; l++) {
    const w = Float32Array.from({ length: K * N }, (_, i) => ((i * 2654435761) % 1000) / 1e5);
    const y = kind === 'MatMul'
      ? g.op('MatMul', [x, g.initializer(`w${l}`, 'float32', [K, N], w)])
      : g.op('Gemm', [x, g.initializer(`w${l}`, 'float32', [N, K], w)], { transB: 1 });
    g.output(y, `y${l}`, 'float32', ['n', N]);
  }
  const built = await g.build();
  const session = await ort.InferenceSession.create(built.model, { intraOpNumThreads: os.availableParallelism(), externalData: built.externalData });
  const feeds = { x: new ort.Tensor('float32', new Float32Array(K).fill(0.1), [1, K]) };
  await session.run(feeds);
  const t = performance.now();
  for (let i = 0; i < 10; i++) await session.run(feeds);
  const ms = (performance.now() - t) / 10;
  console.log(`${kind} [1, ${K}] × [${K}, ${N}] × ${L}: ${ms.toFixed(2)} ms, ${((K * N * 4 * L) / (ms / 1000) / 1e9).toFixed(1)} GB/s`);
  await session.release();
}

await bench('Gemm transB', 1024, 3072, 100);
await bench('MatMul', 1024, 3072, 100);
await bench('Gemm transB', 1024, 151936, 1);
await bench('Gemm transB', 1024, 9496, 16);
