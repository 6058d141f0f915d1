import { Command, Option } from 'commander';
import cliProgress from 'cli-progress';
import { MAX_BACKEND_THREADS, quantize } from 'qllm';
import { collect, int, num, positiveInt } from './options.js';
import { describeEnvironment, environmentLine } from './env.js';

export function quantizeCommand(): Command {
  return new Command('quantize')
    .description("quantize a float checkpoint with SmoothQuant A8W8: compressed-tensors W8A8 for backend 'cpu', Golden Stick's MindFormers layout for 'ascend'")
    .requiredOption('--model <dir>', 'float model folder (Hugging Face layout)')
    .requiredOption('--output <dir>', 'where to write the quantized folder')
    .option('--method <name>', 'quantization method', 'SmoothQuant')
    .option('--config <file.json>', 'PTQ config as JSON (Golden Stick field names, camelCase or snake_case)')
    .option('--calibration <file>', 'calibration text (.txt: paragraphs; .jsonl: {"text": ...} per line); repeatable', collect)
    .option('--ceval <dir>', 'a CEval split folder (e.g. ceval/dev) with {subject}_{split}.csv files')
    .option('--num-samples <n>', 'calibration samples', positiveInt('num-samples'), 200)
    .option('--max-seq-len <n>', 'tokens per sample at most', positiveInt('max-seq-len'), 512)
    .option('--alpha <a>', 'SmoothQuant migration strength α in [0, 1]', num('alpha', (a) => a >= 0 && a <= 1, 'a number in [0, 1]'))
    .addOption(new Option('--outliers-suppression <kind>', 'smooth or none').choices(['smooth', 'none']))
    .addOption(new Option('--act-granularity <g>', 'activation quantization of the global config').choices(['per_tensor', 'per_token']))
    .addOption(new Option('--backend <target>', "where the checkpoint will run (PTQ config backend): 'cpu' writes compressed-tensors W8A8, 'ascend' Golden Stick's MindFormers layout for vLLM-MindSpore").choices(['cpu', 'ascend']))
    .option('--threads <n>', `backend threads, 1 to ${MAX_BACKEND_THREADS} (default: all cores)`, int('threads', 1, MAX_BACKEND_THREADS))
    .option('--overwrite', 'replace an existing output folder')
    .action(async (opts) => {
      if (!opts.calibration?.length && !opts.ceval) throw new Error('give calibration data: --calibration FILE and/or --ceval DIR');
      process.stderr.write(`${environmentLine(await describeEnvironment('cpu'))}\n`);
      const { readPtqConfigFile, defaultSmoothQuantPreset } = await import('@qllm/quant-smoothquant');
      const base = opts.config ? await readPtqConfigFile(opts.config) : defaultSmoothQuantPreset();
      const config = {
        ...base,
        ...(opts.alpha !== undefined && { algoArgs: { ...base.algoArgs, alpha: opts.alpha } }),
        ...(opts.outliersSuppression && { outliersSuppression: opts.outliersSuppression }),
        ...(opts.actGranularity && { actQuantGranularity: opts.actGranularity }),
        ...(opts.backend && { backend: opts.backend }),
      };
      const bar = new cliProgress.SingleBar(
        { stream: process.stderr, format: 'calibrating |{bar}| layer {layer}/{layers} · sample {sample}/{samples} · {eta_formatted}', hideCursor: true, noTTYOutput: true, notTTYSchedule: 5000 },
        cliProgress.Presets.shades_classic,
      );
      let started = false;
      const result = await quantize({
        method: opts.method,
        model: opts.model,
        output: opts.output,
        config,
        calibration: { files: opts.calibration, ceval: opts.ceval },
        numSamples: opts.numSamples,
        maxSeqLen: opts.maxSeqLen,
        overwrite: Boolean(opts.overwrite),
        threads: opts.threads,
        log: (m) => {
          if (!started) process.stderr.write(`${m}\n`);
        },
        onProgress: ({ layer, numLayers, sample, numSamples }) => {
          if (!started) {
            bar.start(numLayers * numSamples, 0, { layer: 1, layers: numLayers, sample: 0, samples: numSamples });
            started = true;
          }
          bar.update(layer * numSamples + sample, { layer: layer + 1, layers: numLayers, sample, samples: numSamples });
        },
      }).finally(() => bar.stop());
      for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
      process.stdout.write(`${result.summary}\nwrote ${result.output} (fidelity report: fidelity.json)\n`);
    });
}
