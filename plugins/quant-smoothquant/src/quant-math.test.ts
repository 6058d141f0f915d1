import { describe, expect, it } from 'vitest';
import {
  columnAbsMax, fakeQuantPerToken, fakeQuantStatic, quantizeWeightPerChannel, roundHalfEven, smoothingFactors, staticActivationParams,
} from './quant-math.js';

/** Deterministic values in [lo, hi). */
function pseudoRandom(n: number, lo: number, hi: number, seed = 1): Float32Array {
  let state = seed;
  return Float32Array.from({ length: n }, () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return lo + ((hi - lo) * state) / 2 ** 31;
  });
}

describe('roundHalfEven', () => {
  it('sends ties to the even neighbour and everything else to the nearest integer', () => {
    const cases: Array<[number, number]> = [
      [0.5, 0], [1.5, 2], [2.5, 2], [3.5, 4], [-0.5, 0], [-1.5, -2], [-2.5, -2], [-3.5, -4],
      [2.4999, 2], [2.5001, 3], [-2.5001, -3], [7, 7], [-7, -7], [127.5, 128], [-127.5, -128], [2 ** 53, 2 ** 53],
    ];
    for (const [x, expected] of cases) expect(roundHalfEven(x) + 0, `round(${x})`).toBe(expected);
  });
});

describe('columnAbsMax', () => {
  it('takes max |w| over the output rows of each input column', () => {
    expect(Array.from(columnAbsMax(Float32Array.of(1, -3, 0, -2, 0.5, 0), 2, 3))).toEqual([2, 3, 0]);
    expect(() => columnAbsMax(new Float32Array(5), 2, 3)).toThrow(RangeError);
  });
});

describe('smoothingFactors', () => {
  it('is act_max^α / w_max^(1−α)', () => {
    expect(Array.from(smoothingFactors([4, 9, 1], [1, 4, 16], 0.5))).toEqual([2, 1.5, 0.25]);
    expect(smoothingFactors([8], [2], 0.75)[0]).toBeCloseTo(8 ** 0.75 / 2 ** 0.25, 6);
  });

  it('clamps at 1e-5 and is 1 where either side is 0', () => {
    const s = smoothingFactors([1e-6, 0, 5, 0], [1e6, 3, 0, 0], 0.5);
    expect(Array.from(s)).toEqual([Math.fround(1e-5), 1, 1, 1]);
  });

  it('follows pow at the ends of alpha (0^0 = 1)', () => {
    expect(Array.from(smoothingFactors([0, 3], [4, 4], 0))).toEqual([0.25, 0.25]); // act_max^0 = 1
    expect(Array.from(smoothingFactors([3, 0], [0, 5], 1))).toEqual([3, 1]); // w_max^0 = 1; act_max 0 → 1
    expect(() => smoothingFactors([1], [1], 1.5)).toThrow(RangeError);
    expect(() => smoothingFactors([1, 2], [1], 0.5)).toThrow(RangeError);
  });
});

describe('quantizeWeightPerChannel', () => {
  it('uses scale 2·absmax/255, rounds half to even, and clamps the absmax element to 127', () => {
    const w = Float32Array.of(
      127.5, -127.5, 2.5, 3.5, -0.5, 1.4, // absmax 127.5 → scale exactly 1
      0, 0, 0, 0, 0, 0, // zero row
      -2.55, 1.275, 0, 0.01, 2.55, -0.005, // absmax 2.55
    );
    const { q, scale } = quantizeWeightPerChannel(w, 3, 6);
    expect(Array.from(scale)).toEqual([1, 1, Math.fround((2 * w[12]! * -1) / 255)]);
    expect(scale[2]).toBeCloseTo(0.02, 8);
    expect(Array.from(q.subarray(0, 6))).toEqual([127, -128, 2, 4, 0, 1]);
    expect(Array.from(q.subarray(6, 12))).toEqual([0, 0, 0, 0, 0, 0]);
    const row2 = Array.from(q.subarray(12));
    expect(row2[4]).toBe(127); // +absmax: 127.5 → clamped
    expect([-128, -127]).toContain(row2[0]); // −absmax: −127.5 → −128 (or −127 after the float32 scale rounding)
    expect(row2.slice(1, 4)).toEqual([64, 0, 0]); // 63.75 → 64, 0.5 → 0
  });

  // The clamped +absmax element is off by 127.5·(2·absmax/255 − scale) more: the float32 rounding of the scale, ≤ 255·2⁻²⁴ of scale/2.
  it('reconstructs every weight within scale/2 (up to the float32 rounding of the scale)', () => {
    const rows = 16;
    const cols = 64;
    const w = pseudoRandom(rows * cols, -3, 3, 7);
    w[5] = 40; // an outlier in row 0
    const { q, scale } = quantizeWeightPerChannel(w, rows, cols);
    for (let n = 0; n < rows; n++) {
      for (let k = 0; k < cols; k++) {
        expect(Math.abs(q[n * cols + k]! * scale[n]! - w[n * cols + k]!)).toBeLessThanOrEqual((scale[n]! / 2) * (1 + 255 * 2 ** -24));
      }
    }
    expect(() => quantizeWeightPerChannel(w, rows, cols + 1)).toThrow(RangeError);
  });
});

describe('staticActivationParams', () => {
  it('is scale (max − min)/255 and zero point round(−128 − min/scale)', () => {
    const p = staticActivationParams(-1, 1.55);
    expect(p.scale).toBe(Math.fround(0.01));
    expect(p.zeroPoint).toBe(-28);
  });

  it('rounds the zero point half to even', () => {
    expect(staticActivationParams(-0.5, 254.5)).toEqual({ scale: 1, zeroPoint: -128 }); // −127.5 → −128
    expect(staticActivationParams(-1.5, 253.5)).toEqual({ scale: 1, zeroPoint: -126 }); // −126.5 → −126
  });

  it('widens the range to contain 0, so the zero point fits int8', () => {
    expect(staticActivationParams(2, 6)).toEqual({ scale: Math.fround(6 / 255), zeroPoint: -128 });
    expect(staticActivationParams(-6, -2)).toEqual({ scale: Math.fround(6 / 255), zeroPoint: 127 });
    expect(staticActivationParams(3, 3)).toEqual({ scale: Math.fround(3 / 255), zeroPoint: -128 });
    expect(staticActivationParams(0, 0)).toEqual({ scale: 1, zeroPoint: 0 });
  });

  it('rejects a non-range', () => {
    expect(() => staticActivationParams(1, -1)).toThrow(RangeError);
    expect(() => staticActivationParams(Number.NaN, 1)).toThrow(RangeError);
    expect(() => staticActivationParams(0, Infinity)).toThrow(RangeError);
  });
});

describe('fakeQuantStatic', () => {
  it('quantizes, clamps and dequantizes by hand', () => {
    // scale 1, zp −128: the representable values are 0.0 … 255.0 shifted by the zero point.
    expect(Array.from(fakeQuantStatic(Float64Array.of(2.5, 3.5, -0.4, 0, 300, -3), 1, -128))).toEqual([2, 4, 0, 0, 255, 0]);
  });

  it('keeps 0 exact and stays within scale/2 over the calibrated range', () => {
    const min = -1.3;
    const max = 4.2;
    const { scale, zeroPoint } = staticActivationParams(min, max);
    const x = pseudoRandom(2000, min, max, 3);
    const y = fakeQuantStatic(x, scale, zeroPoint);
    for (let i = 0; i < x.length; i++) expect(Math.abs(y[i]! - x[i]!)).toBeLessThanOrEqual((scale / 2) * (1 + 1e-9));
    expect(fakeQuantStatic(Float32Array.of(0, min, max), scale, zeroPoint)[0]).toBe(0);
  });
});

describe('fakeQuantPerToken', () => {
  it('is symmetric per row with s = max|x|/127, and a zero row stays zero', () => {
    // s = 1, then 0 (zero row), then s = 2: 0.5 → 0, 1.5 → 2, −63.5 → −64.
    const y = fakeQuantPerToken(Float32Array.of(127, -63.5, 0.5, 0, 0, 0, -254, 1, 3), 3, 3);
    expect(Array.from(y)).toEqual([127, -64, 0, 0, 0, 0, -254, 0, 4]);
  });

  it('stays within s_t/2 per row', () => {
    const rows = 8;
    const cols = 100;
    const x = pseudoRandom(rows * cols, -5, 5, 11);
    const y = fakeQuantPerToken(x, rows, cols);
    for (let t = 0; t < rows; t++) {
      const s = Math.max(...x.subarray(t * cols, (t + 1) * cols).map(Math.abs)) / 127;
      for (let k = 0; k < cols; k++) expect(Math.abs(y[t * cols + k]! - x[t * cols + k]!)).toBeLessThanOrEqual((s / 2) * (1 + 1e-9));
    }
    expect(() => fakeQuantPerToken(x, rows, cols - 1)).toThrow(RangeError);
  });
});
