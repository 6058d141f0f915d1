import { Command, Option } from 'commander';
import { LLM, SamplingParams, toVllmJson, type PromptInput } from 'qllm';
import { collect, int, num } from './options.js';

export function parseTokenIds(value: string): number[] {
  const ids = value.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  if (!ids.length || ids.some((x) => !Number.isInteger(x) || x < 0)) {
    throw new Error(`--prompt-token-ids expects comma-separated non-negative integers, got '${value}'`);
  }
  return ids;
}

export function generateCommand(): Command {
  return new Command('generate')
    .description('generate completions for prompts (vLLM-style offline inference)')
    .requiredOption('--model <dir>', 'model folder (Hugging Face layout)')
    .option('--quantization <name>', 'quantization method (detected from config.json when omitted)')
    .option('--backend <name>', 'backend (default: best available)')
    .option('--prompt <text>', 'a text prompt (repeatable)', collect)
    .option('--prompt-token-ids <ids>', 'a prompt as comma-separated token ids (repeatable)', collect)
    .option('--max-tokens <n>', 'tokens to generate per prompt', int('max-tokens'), 16)
    .option('--temperature <t>', 'sampling temperature (0 = greedy; default from generation_config.json)', num('temperature'))
    .option('--top-p <p>', 'nucleus sampling mass', num('top-p'))
    .option('--top-k <k>', 'top-k sampling (0 = off)', int('top-k'))
    .option('--seed <s>', 'sampling seed', int('seed'))
    .option('--logprobs <k>', 'return the top-k log-probabilities of every generated token', int('logprobs'))
    .option('--ignore-eos', 'keep generating after EOS')
    .option('--threads <n>', 'backend threads', int('threads'))
    .addOption(new Option('--json', 'print one JSON array (vLLM RequestOutput shape, snake_case) to stdout'))
    .action(async (opts) => {
      const prompts: PromptInput[] = [
        ...((opts.prompt as string[] | undefined) ?? []),
        ...((opts.promptTokenIds as string[] | undefined) ?? []).map((s) => ({ promptTokenIds: parseTokenIds(s) })),
      ];
      if (!prompts.length) throw new Error('give at least one --prompt or --prompt-token-ids');
      const t0 = performance.now();
      const llm = new LLM({ model: opts.model, quantization: opts.quantization, backend: opts.backend, threads: opts.threads });
      const loaded = await llm.ready();
      process.stderr.write(`loaded ${opts.model} (${loaded.config.architecture}, backend ${loaded.backend.name}` +
        `${loaded.quantization ? `, ${loaded.quantization.name}` : ''}) in ${(performance.now() - t0).toFixed(0)} ms\n`);
      const defaults = await llm.getDefaultSamplingParams();
      const params = new SamplingParams({
        ...defaults,
        maxTokens: opts.maxTokens,
        ...(opts.temperature !== undefined && { temperature: opts.temperature }),
        ...(opts.topP !== undefined && { topP: opts.topP }),
        ...(opts.topK !== undefined && { topK: opts.topK }),
        ...(opts.seed !== undefined && { seed: opts.seed }),
        ...(opts.logprobs !== undefined && { logprobs: opts.logprobs }),
        ...(opts.ignoreEos && { ignoreEos: true }),
      });
      const t1 = performance.now();
      const outputs = await llm.generate(prompts, params);
      const tokens = outputs.reduce((a, o) => a + o.outputs[0]!.tokenIds.length, 0);
      process.stderr.write(`generated ${tokens} tokens in ${(performance.now() - t1).toFixed(0)} ms\n`);
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(outputs.map(toVllmJson))}\n`);
      } else {
        for (const o of outputs) process.stdout.write(`Prompt: ${JSON.stringify(o.prompt ?? o.promptTokenIds)}, Generated text: ${JSON.stringify(o.outputs[0]!.text)}\n`);
      }
      await llm.close();
    });
}
