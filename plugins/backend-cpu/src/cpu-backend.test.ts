import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '@qllm/core';
import * as ort from 'onnxruntime-node';
import { createCpuBackend } from './cpu-backend.js';

describe('cpu backend', () => {
  it('runs a graph with external-data weights and feeds its outputs back in', async () => {
    const g = new GraphBuilder('t');
    const x = g.input('x', 'float32', ['n', 1200]);
    const past = g.input('past', 'float32', [1, 'p', 3]);
    // 1200x3 weights = 14.4 KB: goes to external data
    const wData = Float32Array.from({ length: 3 * 1200 }, (_, i) => ((i % 7) - 3) / 10);
    const w = g.initializer('w', 'float32', [3, 1200], () => wData);
    const y = g.op('Gemm', [x, w], { transB: 1 });
    const present = g.op('Concat', [past, g.op('Unsqueeze', [y, g.ints([0])])], { axis: 1 });
    g.output(y, 'y', 'float32', ['n', 3]);
    g.output(present, 'present', 'float32', [1, 'q', 3]);
    const built = await g.build();
    expect(built.externalData.length).toBe(1);

    const backend = createCpuBackend({ threads: 1 });
    expect((await backend.isAvailable()).available).toBe(true);
    const session = await backend.createSession(built);
    const xs = Float32Array.from({ length: 2 * 1200 }, (_, i) => Math.sin(i));
    let out = await session.run({
      x: { dtype: 'F32', shape: [2, 1200], data: xs },
      past: { dtype: 'F32', shape: [1, 0, 3], data: new Float32Array(0) },
    });
    const yHost = session.toHost(out.y!);
    expect(yHost.shape).toEqual([2, 3]);
    for (let r = 0; r < 2; r++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let k = 0; k < 1200; k++) s += xs[r * 1200 + k]! * wData[c * 1200 + k]!;
        expect((yHost.data as Float32Array)[r * 3 + c]).toBeCloseTo(s, 3);
      }
    }
    out = await session.run({ x: { dtype: 'F32', shape: [1, 1200], data: xs.subarray(0, 1200) }, past: out.present! });
    expect(session.toHost(out.present!).shape).toEqual([1, 3, 3]);
    await session.dispose();
  });

  it('re-lays a buffer\'s rows in place: growing and shrinking keep each head\'s first positions, and views follow', async () => {
    const g = new GraphBuilder('t');
    g.output(g.op('Identity', [g.input('x', 'float32', [1])]), 'y', 'float32', [1]);
    const session = await createCpuBackend({ threads: 1 }).createSession(await g.build());
    const [rows, heads, width] = [3, 2, 4];
    const buf = session.allocate('F32', [rows, heads, 8, width]);
    expect(buf.positions).toBe(8);
    buf.setPositions(3);
    // Row r, head h, position p, lane w holds r·1000 + h·100 + p·10 + w.
    const value = (r: number, h: number, p: number, w: number) => r * 1000 + h * 100 + p * 10 + w;
    for (let r = 0; r < rows; r++) {
      const block = Float32Array.from({ length: heads * 3 * width }, (_, i) => value(r, Math.floor(i / (3 * width)), Math.floor(i / width) % 3, i % width));
      buf.writePositions(r, 0, new ort.Tensor('float32', block, [1, heads, 3, width]), 0);
    }
    const check = (positions: number, kept: number) => {
      const view = buf.rows(0, rows) as ort.Tensor;
      expect(view.dims).toEqual([rows, heads, positions, width]);
      const data = view.data as Float32Array;
      for (let r = 0; r < rows; r++) {
        for (let h = 0; h < heads; h++) {
          for (let p = 0; p < kept; p++) {
            for (let w = 0; w < width; w++) expect(data[((r * heads + h) * positions + p) * width + w]).toBe(value(r, h, p, w));
          }
        }
      }
    };
    check(3, 3);
    const before = buf.rows(1, 2);
    buf.setPositions(7); // grow: blocks move up, last first
    check(7, 3);
    expect(buf.rows(1, 2)).not.toBe(before); // views of the old layout are not handed out again
    expect(buf.rows(1, 2)).toBe(buf.rows(1, 2));
    buf.setPositions(2); // shrink: blocks move down, first first
    check(2, 2);
    expect(() => buf.setPositions(9)).toThrow(/capacity 8/);
    expect(() => buf.writePositions(0, 2, new ort.Tensor('float32', new Float32Array(heads * width), [1, heads, 1, width]), 0)).toThrow(/cannot write/);
    buf.setPositions(6, [2, 0, 2]); // row 1 holds nothing: it is not moved (its positions are stale)
    check(6, 0);
    const data = (buf.rows(0, rows) as ort.Tensor).data as Float32Array;
    for (const r of [0, 2]) for (let h = 0; h < heads; h++) for (let p = 0; p < 2; p++) expect(data[((r * heads + h) * 6 + p) * width]).toBe(value(r, h, p, 0));
    await session.dispose();
  });
});
