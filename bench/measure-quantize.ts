/** One SmoothQuant run in its own process: wall time and peak RSS. Prints JSON. */
import { parseArgs } from 'node:util';
import { quantize } from 'qllm';

const { values } = parseArgs({ options: { model: { type: 'string' }, output: { type: 'string' }, calibration: { type: 'string' }, threads: { type: 'string' } } });
const t = performance.now();
const result = await quantize({
  model: values.model!, output: values.output!, overwrite: true, calibration: { files: [values.calibration!] },
  threads: values.threads ? Number(values.threads) : undefined,
});
const report = result.report as { calibrationSamples: number; calibrationTokens: number; meanKl: number; top1Agreement: number };
console.log(JSON.stringify({
  wallS: +((performance.now() - t) / 1000).toFixed(1),
  peakRssGiB: +(process.resourceUsage().maxRSS / 2 ** 20).toFixed(2),
  calibrationSamples: report.calibrationSamples,
  calibrationTokens: report.calibrationTokens,
  meanKl: report.meanKl,
  top1Agreement: report.top1Agreement,
}));
