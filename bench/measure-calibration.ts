/**
 * Calibration throughput of SmoothQuant: `node --conditions=source --import tsx bench/measure-calibration.ts --model DIR
 * [--samples 200] [--tokens 160]`. Quantizes DIR with `samples` calibration texts of about `tokens` tokens (CEval's
 * length; windows of examples/data/calibration.txt, each a different offset), then measures onnxruntime's float32
 * GEMM rate at the same shapes (one decoder layer's linears at M = tokens) in the same process. Prints JSON: wall
 * time, calibration tokens/s, the tokens/s the float32 GEMM rate allows for the decoder layers' float forward
 * (2 · decoder parameters FLOPs a token), and the ratio (issue 8's target: ≥ 0.5).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createCpuBackend } from '@qllm/backend-cpu';
import { GraphBuilder, QllmTokenizer, quantize } from 'qllm';

const { values } = parseArgs({ options: { model: { type: 'string' }, samples: { type: 'string', default: '200' }, tokens: { type: 'string', default: '160' } } });
const here = path.dirname(fileURLToPath(import.meta.url));
const model = values.model!;
const nSamples = Number(values.samples);
const nTokens = Number(values.tokens);
const config = JSON.parse(fs.readFileSync(path.join(model, 'config.json'), 'utf8')) as Record<string, number>;
const { hidden_size: D, intermediate_size: I, num_attention_heads: H, num_key_value_heads: KV, head_dim: hd, num_hidden_layers: L } = config as Record<string, number>;

// Texts of about nTokens tokens: windows of the calibration text at different offsets.
const tokenizer = await QllmTokenizer.fromFolder(model);
const ids = tokenizer!.encode(fs.readFileSync(path.join(here, '..', 'examples', 'data', 'calibration.txt'), 'utf8').replace(/\n+/g, ' '));
const texts = Array.from({ length: nSamples }, (_, s) => {
  const start = (s * 37) % Math.max(1, ids.length - nTokens);
  return tokenizer!.decode(ids.slice(start, start + nTokens - 2));
});

const output = fs.mkdtempSync(path.join(os.tmpdir(), 'qllm-calib-'));
const t0 = performance.now();
// Each layer's finish time on stderr, so a run cut short still tells its pace.
let lastLayer = -1;
const onProgress = (p: { layer: number; numLayers: number }) => {
  if (p.layer === lastLayer) return;
  if (lastLayer >= 0) console.error(`layer ${lastLayer + 1}/${p.numLayers} done at ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  lastLayer = p.layer;
};
const result = await quantize({ model, output: path.join(output, 'q'), calibration: { texts }, numSamples: nSamples, maxSeqLen: nTokens, onProgress });
const wallS = (performance.now() - t0) / 1000;
fs.rmSync(output, { recursive: true, force: true });
const report = result.report as { calibrationTokens: number; evalTokens: number };

// onnxruntime's float32 GEMM rate on one decoder layer's linears at M = nTokens.
const shapes: Array<[number, number]> = [[D, H * hd], [D, KV * hd], [D, KV * hd], [H * hd, D], [D, I], [D, I], [I, D]];
const g = new GraphBuilder('gemm');
const x = g.input('x', 'float32', ['m', Math.max(...shapes.map(([k]) => k))]);
shapes.forEach(([K, N], i) => {
  const xi = g.op('Slice', [x, g.ints([0]), g.ints([K]), g.ints([1])]);
  const w = g.initializer(`w${i}`, 'float32', [N, K], Float32Array.from({ length: K * N }, (_, j) => ((j * 2654435761) % 1000) / 1e5));
  g.output(g.op('Gemm', [xi, w], { transB: 1 }), `y${i}`, 'float32', ['m', N]);
});
const session = await createCpuBackend().createSession(await g.build());
const feed = { x: { dtype: 'F32' as const, shape: [nTokens, Math.max(...shapes.map(([k]) => k))], data: new Float32Array(nTokens * Math.max(...shapes.map(([k]) => k))).fill(0.01) } };
await session.run(feed);
const reps = 5;
const t1 = performance.now();
for (let r = 0; r < reps; r++) await session.run(feed);
const layerS = (performance.now() - t1) / 1000 / reps;
await session.dispose();
const layerFlops = 2 * nTokens * shapes.reduce((a, [K, N]) => a + K * N, 0);
const gflops = layerFlops / layerS / 1e9;
const tokens = report.calibrationTokens + report.evalTokens;
const tokPerS = tokens / wallS;
const gemmTokPerS = (gflops * 1e9) / (2 * L * shapes.reduce((a, [K, N]) => a + K * N, 0));
console.log(JSON.stringify({
  model, layers: L, samples: nSamples, calibrationTokens: report.calibrationTokens, evalTokens: report.evalTokens,
  wallS: +wallS.toFixed(1), peakRssGiB: +(process.resourceUsage().maxRSS / 2 ** 20).toFixed(2),
  tokPerS: +tokPerS.toFixed(1), fp32GemmGflops: +gflops.toFixed(0), gemmBoundTokPerS: +gemmTokPerS.toFixed(1), ratio: +(tokPerS / gemmTokPerS).toFixed(3),
}));
