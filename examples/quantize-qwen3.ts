/**
 * The seed document's quantization script (MindSpore Golden Stick, SmoothQuant A8W8 for Qwen3-8B), in TypeScript,
 * step for step. Usage:
 *   pnpm tsx examples/quantize-qwen3.ts <bf16 model dir> <ceval split dir, e.g. ceval/dev> <output dir> [num samples]
 */
import { loadModelFolder, quantize } from 'qllm';
import { loadCeval } from '@qllm/quant-smoothquant';

const [modelDir, cevalDir, outputDir, numSamples = '200'] = process.argv.slice(2);
if (!modelDir || !cevalDir || !outputDir) {
  console.error('usage: quantize-qwen3.ts <bf16 model dir> <ceval split dir> <output dir> [num samples]');
  process.exit(2);
}

// 1. The bf16 network (Golden Stick: the MindFormers Qwen3 network built from its yaml and checkpoint).
const network = await loadModelFolder(modelDir);
console.log(`loaded ${network.config.architectures} from ${modelDir}`);
await network.checkpoint.close();

// 2. The calibration dataset: CEval, prompt + answer per row, 200 samples ("train" mode of create_ceval_dataset).
const ds = await loadCeval(cevalDir, { numSamples: Number(numSamples) });
console.log(`CEval: ${ds.length} calibration samples from ${new Set(ds.map((s) => s.subject)).size} subjects`);

// 3. The PTQ config: smooth outliers, int8 weights and activations, lm_head left in float…
const cfg = {
  mode: 'quantize',
  backend: 'cpu', // Golden Stick's example targets 'ascend'; the CPU target writes compressed-tensors W8A8
  opnameBlacklist: ['lm_head'],
  weightQuantDtype: 'int8',
  actQuantDtype: 'int8',
  outliersSuppression: 'smooth',
};
// …and for the FFN's second linear (Golden Stick's w2, Hugging Face's down_proj): per-token activations, no smoothing.
const w2Config = {
  weightQuantDtype: 'int8',
  actQuantDtype: 'int8',
  actQuantGranularity: 'per_token',
  outliersSuppression: 'none',
};
const layerPolicies = { '.*down_proj.*': w2Config };

// 4. apply (calibrate layer by layer, smooth, quantize), convert (to the deployable int8 layout) and save.
const result = await quantize({
  method: 'SmoothQuant',
  model: modelDir,
  config: cfg,
  layerPolicies,
  calibration: { texts: ds.map((s) => s.text) },
  numSamples: ds.length,
  output: outputDir,
  overwrite: true,
  log: (m) => console.error(m),
});
console.log(result.summary);
console.log(`saved ${result.output}`);
