import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '@qllm/core';
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
});
