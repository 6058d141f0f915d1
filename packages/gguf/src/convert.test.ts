import { describe, expect, it } from 'vitest';
import { quantizeQ8_0 } from './convert.js';

describe('quantizeQ8_0', () => {
  it("rounds halves away from zero (C's roundf), as ggml's quantize_row_q8_0_ref", () => {
    // max |x| = 127, so d = 1 and q = roundf(x): ±0.5 → ±1, ±63.5 → ±64, 2.5 → 3 (round-half-even would give 0, 64, 2).
    const x = new Float32Array(32);
    x.set([127, -63.5, 63.5, 0.5, -0.5, 2.5, -2.5, 0.49999997, -126.5]);
    const out = quantizeQ8_0(x);
    expect(out).toHaveLength(34);
    expect(new DataView(out.buffer).getUint16(0, true)).toBe(0x3c00); // f16 1.0
    expect(Array.from(new Int8Array(out.buffer, 2, 9))).toEqual([127, -64, 64, 1, -1, 3, -3, 0, -127]);
  });

  it('writes a zero scale and zero values for an all-zero block, one block per 32 values', () => {
    const x = new Float32Array(64);
    x[32] = -0.25;
    const out = quantizeQ8_0(x);
    expect(out).toHaveLength(68);
    expect(Array.from(out.subarray(0, 34))).toEqual(new Array(34).fill(0));
    const view = new DataView(out.buffer);
    // d = 0.25 / 127 in f16; the value itself is -127.
    expect(view.getUint16(34, true)).toBe(0x1808);
    expect(view.getInt8(36)).toBe(-127);
  });

  it('rejects a length that is not whole blocks', () => {
    expect(() => quantizeQ8_0(new Float32Array(33))).toThrow(/not a whole number of 32-blocks/);
  });
});
