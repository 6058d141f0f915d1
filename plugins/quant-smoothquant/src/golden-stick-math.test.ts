/** Golden Stick's deploy-time numerics: the float16 / bf16 roundings and the static layer's parameters (reference §2). */
import { describe, expect, it } from 'vitest';
import { f16ToF32, f32ToF16 } from '@qllm/core';
import { goldenStickInputScale, goldenStickStatic, quantizeWeightGoldenStick, toBf16, toFp16 } from './golden-stick-math.js';

describe('float16 and bfloat16 rounding', () => {
  it('toFp16 agrees with the float16 bit conversion, subnormals and overflow included', () => {
    const values = [1, -1, 0.1, 1 / 3, 65504, 65519, 65520, 1e5, 6.1e-5, 5.96e-8, 3e-8, 2.9e-8, 1e-9, 1234.567, -0.000123];
    for (const v of values) expect(toFp16(v), String(v)).toBe(f16ToF32(f32ToF16([v]))[0]);
    expect(toFp16(65520)).toBe(Infinity);
    expect(toFp16(1 + 2 ** -11)).toBe(1); // a tie goes to even
    expect(toFp16(1 + 3 * 2 ** -11)).toBe(1 + 2 ** -9);
  });

  it('toBf16 keeps 8 significant bits', () => {
    expect(toBf16(1 + 2 ** -8)).toBe(1); // tie to even
    expect(toBf16(1 + 3 * 2 ** -8)).toBe(1 + 2 ** -6);
  });
});

describe('a static Golden Stick linear', () => {
  it('input_scale = fp16(x_scale)/fp16(1/s) in float16, stored bf16; a float16 overflow of 1/s falls back to float64', () => {
    const { inputScale, fp16Fallback } = goldenStickInputScale(0.0123, [1, 2.5, 0.37, 1e-6], 4);
    expect(inputScale[0]).toBe(toBf16(toFp16(0.0123)));
    expect(inputScale[1]).toBe(toBf16(toFp16(toFp16(0.0123) / toFp16(1 / 2.5))));
    expect(inputScale[2]).toBe(toBf16(toFp16(toFp16(0.0123) / toFp16(1 / 0.37))));
    expect(inputScale[3]).toBe(toBf16(0.0123e-6)); // 1/1e-6 overflows float16
    expect(fp16Fallback).toBe(1);
  });

  it('quant_bias is −x_zp·Σ_k qW rounded through bf16; dequant_scale = fp32(x_scale)·fp32(w_scale)', () => {
    const w = Float32Array.from([0.5, -0.25, 0.125, 1, 0.3, -0.7, 0.05, 0.2]);
    const { q, scale } = quantizeWeightGoldenStick(w, 2, 4);
    expect(scale[0]).toBe((2 * 1) / 255); // float64, 2·absmax/255
    expect(Array.from(q.subarray(0, 4))).toEqual([64, -32, 16, 127]); // 127.5 → 128 → clamped
    const act = { scale: 0.02, zeroPoint: -7 };
    const p = goldenStickStatic(q, scale, 2, 4, act, undefined);
    for (let n = 0; n < 2; n++) {
      const sum = Array.from(q.subarray(n * 4, n * 4 + 4)).reduce((a, b) => a + b, 0);
      const deq = act.scale * scale[n]!;
      expect(p.quantBias[n]).toBe(Math.round(toBf16(7 * sum * deq) / Math.fround(deq)));
      expect(p.dequantScale[n]).toBe(Math.fround(Math.fround(0.02) * Math.fround(scale[n]!)));
    }
    // bf16 has 8 significant bits: the bias is not exactly −x_zp·Σ qW (Golden Stick's "align precision").
    expect(p.quantBias[0]).not.toBe(7 * (64 - 32 + 16 + 127));
    expect(Array.from(p.inputZp)).toEqual([-7, -7, -7, -7]);
  });
});
