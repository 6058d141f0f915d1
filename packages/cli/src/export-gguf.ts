import { Command, Option } from 'commander';
import cliProgress from 'cli-progress';

/** `qllm export-gguf`: a float Qwen3 folder as one GGUF file for llama.cpp / Ollama. Progress on stderr, the result on stdout. */
export function exportGgufCommand(): Command {
  return new Command('export-gguf')
    .description('write a float Qwen3 checkpoint as a GGUF file for llama.cpp / Ollama (F16 or Q8_0)')
    .requiredOption('--model <dir>', 'float model folder (Hugging Face layout: config.json, safetensors, tokenizer.json)')
    .requiredOption('--output <file>', 'the .gguf file to write (written to a temporary file beside it, then renamed)')
    .addOption(new Option('--type <type>', 'weight type of the matrices (norms stay F32)').choices(['f16', 'q8_0']).default('f16'))
    .option('--name <name>', 'general.name in the file (default: the model folder\'s name)')
    .option('--overwrite', 'replace an existing output file')
    .action(async (opts) => {
      const { exportGguf } = await import('@qllm/gguf');
      const bar = new cliProgress.SingleBar(
        { stream: process.stderr, format: 'exporting |{bar}| {percentage}% · tensor {index}/{count} {tensor}', hideCursor: true, noTTYOutput: true, notTTYSchedule: 5000 },
        cliProgress.Presets.shades_classic,
      );
      let started = false;
      const t0 = performance.now();
      const result = await exportGguf({
        model: opts.model,
        output: opts.output,
        type: opts.type,
        name: opts.name,
        overwrite: Boolean(opts.overwrite),
        onProgress: ({ tensor, index, count, bytesWritten, totalBytes }) => {
          if (!started) {
            bar.start(totalBytes, 0, { index: 0, count, tensor: '' });
            started = true;
          }
          bar.update(bytesWritten, { index: index + 1, count, tensor });
        },
      }).finally(() => bar.stop());
      for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
      const seconds = ((performance.now() - t0) / 1000).toFixed(1);
      process.stdout.write(
        `wrote ${result.output} (${result.type.toUpperCase()}, ${result.tensors.length} tensors, ` +
          `${(result.bytes / 2 ** 20).toFixed(1)} MiB) in ${seconds} s\n`,
      );
    });
}
