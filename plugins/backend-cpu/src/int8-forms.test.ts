// Every int8 lowering (static per-tensor with a zero point, dynamic per-token) in every integer form the backend
// may choose equals the exact integer dot product times the scales, on extreme inputs — whatever CPU runs it.
// A form the probe finds inexact on this CPU must be refused when forced and never chosen.
import { describe, expect, it } from 'vitest';
import { emitInt8MatMul, GraphBuilder, INT8_GEMM_FORMS, Rng, type Int8GemmForm } from '@qllm/core';
import { createCpuBackend } from './cpu-backend.js';

const cases = [
  { M: 1, K: 1024, N: 48 },
  { M: 7, K: 2048, N: 40 },
];

describe.each(INT8_GEMM_FORMS)('int8 GEMM form %s', (form: Int8GemmForm) => {
  const backend = createCpuBackend({ int8Form: form, threads: 2 });
  const auto = createCpuBackend({ threads: 2 });

  it.each(cases)('is exact on extreme inputs (M=$M, K=$K, N=$N), or refused when this CPU cannot run it exactly', async ({ M, K, N }) => {
    const choice = await auto.int8GemmForm!();
    if (!choice.exact[form]) {
      await expect(backend.int8GemmForm!()).rejects.toThrow(new RegExp(`form '${form}'.*not exact on this CPU`));
      expect(choice.form).not.toBe(form);
      return;
    }
    expect((await backend.int8GemmForm!()).form).toBe(form);
    const generator = new Rng(K * 31 + M);
    const rand = () => generator.next();
    // Weights at ±127/−128 (most of them), per-column scales; static activation scale and zero point.
    const wT = new Int8Array(K * N); // [K, N]
    for (let i = 0; i < wT.length; i++) {
      const r = rand();
      wT[i] = r < 0.4 ? 127 : r < 0.8 ? -127 : r < 0.85 ? -128 : Math.floor(rand() * 256) - 128;
    }
    const wScale = Float32Array.from({ length: N }, () => 0.001 + rand() * 0.01);
    const aScale = 0.0371;
    const zp = -5;
    // Activations: float values that quantize to both ends of the range (and beyond, to test the clamp).
    const xs = new Float32Array(M * K);
    for (let i = 0; i < xs.length; i++) {
      const r = rand();
      xs[i] = r < 0.35 ? 200 * aScale : r < 0.7 ? -200 * aScale : (rand() * 256 - 128) * aScale;
    }
    const g = new GraphBuilder('t');
    const x = g.input('x', 'float32', ['m', K]);
    const weightScale = g.initializer('w_scale', 'float32', [N], wScale);
    const y1 = emitInt8MatMul(g, form, {
      x,
      activation: { scale: g.scalar(aScale), zeroPoint: { name: 'zp', value: async () => zp } },
      weight: { name: 'w1', shape: [K, N], data: async () => wT.slice() },
      weightScale,
    });
    const y2 = emitInt8MatMul(g, form, { x, activation: 'per-token', weight: { name: 'w2', shape: [K, N], data: async () => wT.slice() }, weightScale });
    g.output(y1, 'y_static', 'float32', ['m', N]);
    g.output(y2, 'y_token', 'float32', ['m', N]);
    const session = await backend.createSession(await g.build());
    const out = await session.run({ x: { dtype: 'F32', shape: [M, K], data: xs } });
    const yStatic = session.toHost(out.y_static!).data as Float32Array;
    const yToken = session.toHost(out.y_token!).data as Float32Array;
    await session.dispose();

    // The exact math, in float64 over exact integers.
    const f32 = Math.fround;
    const roundEven = (v: number) => {
      const r = Math.round(v);
      return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
    };
    let saturatingPairs = 0;
    for (let m = 0; m < M; m++) {
      const row = xs.subarray(m * K, (m + 1) * K);
      const qs = Array.from(row, (v) => Math.min(127, Math.max(-128, roundEven(f32(v / aScale)) + zp)));
      let absMax = 0;
      for (const v of row) absMax = Math.max(absMax, Math.abs(v));
      const tScale = Math.max(f32(absMax / 127), 1e-30);
      const qt = Array.from(row, (v) => roundEven(f32(v / f32(tScale))));
      for (let n = 0; n < N; n++) {
        let sStatic = 0;
        let sToken = 0;
        for (let k = 0; k < K; k++) {
          const w = wT[k * N + n]!;
          sStatic += (qs[k]! - zp) * w;
          sToken += qt[k]! * w;
          if (k % 2 === 1 && Math.abs((qs[k]! + 128) * w + (qs[k - 1]! + 128) * wT[(k - 1) * N + n]!) > 32767) saturatingPairs++;
        }
        const expectStatic = sStatic * aScale * wScale[n]!;
        const expectToken = sToken * tScale * wScale[n]!;
        // float32 rounding of the int32 sum's conversion and of the two scale products.
        expect(Math.abs(yStatic[m * N + n]! - expectStatic)).toBeLessThanOrEqual(Math.abs(expectStatic) * 4e-7 + 1e-6);
        expect(Math.abs(yToken[m * N + n]! - expectToken)).toBeLessThanOrEqual(Math.abs(expectToken) * 4e-7 + 1e-6);
      }
    }
    // The inputs really are the ones that break a saturating u8×s8 kernel.
    expect(saturatingPairs).toBeGreaterThan(M * N * 10);
  });
});

describe('int8 GEMM form choice', () => {
  it('picks an exact form, says why, and refuses an unknown QLLM_INT8_FORM', async () => {
    const choice = await createCpuBackend().int8GemmForm!();
    expect(choice.exact[choice.form]).toBe(true);
    expect(choice.reason).toMatch(/exact|inexact|forced/);
    const saved = process.env.QLLM_INT8_FORM;
    process.env.QLLM_INT8_FORM = 'u4s4';
    try {
      await expect(createCpuBackend().int8GemmForm!()).rejects.toThrow(/QLLM_INT8_FORM='u4s4'.*u8s8, u8u8, s8s8/);
    } finally {
      if (saved === undefined) delete process.env.QLLM_INT8_FORM;
      else process.env.QLLM_INT8_FORM = saved;
    }
  });
});
