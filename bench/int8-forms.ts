/**
 * `node --conditions=source --import tsx bench/int8-forms.ts [--json FILE]`: the int8 GEMM of a W8A8 linear
 * (QuantizeLinear → MatMulIntegerToFloat, as `emitInt8MatMul` lowers a static layer) in each integer form the CPU
 * backend can choose, at the linear shapes of Qwen3-0.6B and Qwen3-8B. Decode (M=1) reports the weight stream in
 * GB/s with L layers of weights (≥ ~200 MB, past the caches); prefill (M=128) reports GFLOP/s. A form the probe
 * finds inexact on this CPU is listed as such and not timed (its numbers would be for wrong answers).
 */
import { writeFileSync } from 'node:fs';
import { createCpuBackend } from '@qllm/backend-cpu';
import { emitInt8MatMul, GraphBuilder, INT8_GEMM_FORMS, type Int8GemmForm } from 'qllm';
import { describeEnvironment, environmentLine } from '@qllm/cli';

const SHAPES = [
  { model: '0.6B', layer: 'gate/up', K: 1024, N: 3072, L: 64 },
  { model: '0.6B', layer: 'down', K: 3072, N: 1024, L: 64 },
  { model: '8B', layer: 'q/o', K: 4096, N: 4096, L: 12 },
  { model: '8B', layer: 'gate/up', K: 4096, N: 12288, L: 4 },
  { model: '8B', layer: 'down', K: 12288, N: 4096, L: 4 },
];

async function time(run: () => Promise<unknown>, reps: number): Promise<number> {
  await run();
  const samples: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await run();
    samples.push(performance.now() - t);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!; // median ms
}

const rows: Array<Record<string, unknown>> = [];
const auto = await createCpuBackend().int8GemmForm!();
console.log(environmentLine(await describeEnvironment('cpu')));
console.log('| form | model | layer [K→N] | M=1 GB/s | M=1 µs/layer | M=128 GFLOP/s | M=128 µs/layer |');
console.log('|---|---|---|---:|---:|---:|---:|');
for (const form of INT8_GEMM_FORMS as readonly Int8GemmForm[]) {
  if (!auto.exact[form]) {
    console.log(`| ${form} | — | — | inexact on this CPU | | | |`);
    continue;
  }
  const backend = createCpuBackend({ int8Form: form });
  for (const s of SHAPES) {
    const g = new GraphBuilder('int8');
    const x = g.input('x', 'float32', ['m', s.K]);
    const scale = g.scalar(0.02);
    const wScale = g.constant('float32', [s.N], new Array<number>(s.N).fill(0.01));
    for (let l = 0; l < s.L; l++) {
      const y = emitInt8MatMul(g, form, {
        x,
        activation: { scale, zeroPoint: { name: `zp${l}`, value: async () => 3 } },
        weight: { name: `w${l}`, shape: [s.K, s.N], data: async () => Int8Array.from({ length: s.K * s.N }, (_, i) => (((i + l * 7919) * 2654435761) >>> 24) - 128) },
        weightScale: wScale,
      });
      g.output(y, `y${l}`, 'float32', ['m', s.N]);
    }
    const session = await backend.createSession(await g.build());
    const result: Record<string, number> = {};
    for (const M of [1, 128]) {
      const xs = Float32Array.from({ length: M * s.K }, (_, i) => Math.sin(i) * 2);
      const ms = await time(() => session.run({ x: { dtype: 'F32', shape: [M, s.K], data: xs } }), M === 1 ? 15 : 5);
      result[M] = ms;
    }
    await session.dispose();
    const gbs = (s.K * s.N * s.L) / (result[1]! / 1000) / 1e9;
    const gflops = (2 * 128 * s.K * s.N * s.L) / (result[128]! / 1000) / 1e9;
    const us1 = (result[1]! * 1000) / s.L;
    const us128 = (result[128]! * 1000) / s.L;
    console.log(`| ${form} | ${s.model} | ${s.layer} [${s.K}→${s.N}] | ${gbs.toFixed(1)} | ${us1.toFixed(0)} | ${gflops.toFixed(0)} | ${us128.toFixed(0)} |`);
    rows.push({ engine: 'qllm', form, model: s.model, layer: s.layer, K: s.K, N: s.N, m1GBs: gbs, m128GFlops: gflops });
  }
}
const jsonAt = process.argv.indexOf('--json');
if (jsonAt > 0) writeFileSync(process.argv[jsonAt + 1]!, JSON.stringify(rows, null, 2));
