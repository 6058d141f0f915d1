import fs from 'node:fs/promises';
import { Command, Option } from 'commander';
import {
  DEFAULT_MAX_LOGPROBS,
  LLM,
  MAX_BACKEND_THREADS,
  SamplingParams,
  samplingFieldProblem,
  toVllmJson,
  type PromptInput,
  type SamplingParamsInit,
} from 'qllm';
import { describeEnvironment, environmentLine } from './env.js';
import { addLoadFlags, loadOptions } from './load-flags.js';
import { checked, int, num, parseTokenIds } from './options.js';

/** A text prompt as given: inline (--prompt) or a file's whole text (--prompt-file). */
type TextSource = { text: string } | { file: string };
/** A token-id prompt as given: inline ids (--prompt-token-ids) or a file of ids (--prompt-token-ids-file). */
type IdsSource = { ids: number[] } | { file: string };

/** A repeatable option that appends to `list`, so that two flags of one kind keep their command-line order. */
const into = <T>(list: T[], make: (value: string) => T) => (value: string) => {
  list.push(make(value));
  return list;
};

/** `SamplingParams`' own rule for `field`, reported under the flag's name. */
const samplingFlag = (flag: string, field: keyof SamplingParamsInit, parse: (flag: string) => (value: string) => number) =>
  checked(flag, parse(flag), (n) => samplingFieldProblem(field, n));

async function readOptionFile(flag: string, file: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a folder, not a file' : (e as Error).message;
    throw new Error(`${flag} ${file}: ${why}`);
  }
}

async function readPrompts(texts: TextSource[], idLists: IdsSource[]): Promise<PromptInput[]> {
  const prompts: PromptInput[] = [];
  for (const source of texts) {
    if ('text' in source) {
      prompts.push(source.text);
      continue;
    }
    const text = await readOptionFile('--prompt-file', source.file);
    if (text === '') throw new Error(`--prompt-file ${source.file} is empty`);
    prompts.push(text);
  }
  for (const source of idLists) {
    if ('ids' in source) {
      prompts.push({ promptTokenIds: source.ids });
      continue;
    }
    const text = await readOptionFile('--prompt-token-ids-file', source.file);
    prompts.push({ promptTokenIds: parseTokenIds(text, `--prompt-token-ids-file ${source.file}`, { whitespace: true }) });
  }
  return prompts;
}

export function generateCommand(): Command {
  const texts: TextSource[] = [];
  const idLists: IdsSource[] = [];
  return addLoadFlags(new Command('generate'))
    .description('generate completions for prompts (vLLM-style offline inference)')
    .requiredOption('--model <dir>', 'model folder (Hugging Face layout)')
    .option('--quantization <name>', 'quantization method (detected from config.json when omitted)')
    .option('--backend <name>', 'backend (default: best available)')
    .option('--server <url>', "an OpenAI-compatible server already serving the folder, driven by a remote backend (e.g. --backend ascend with vLLM-MindSpore's URL)")
    .option('--prompt <text>', 'a text prompt (repeatable)', into(texts, (text) => ({ text })))
    .option('--prompt-file <file>', "a text prompt: the file's whole text, as is (repeatable)", into(texts, (file) => ({ file })))
    .option('--prompt-token-ids <ids>', 'a prompt as comma-separated token ids (repeatable)',
      into(idLists, (ids) => ({ ids: parseTokenIds(ids) })))
    .option('--prompt-token-ids-file <file>', 'a prompt as token ids in a file, separated by commas or whitespace (repeatable)',
      into(idLists, (file) => ({ file })))
    .option('--max-tokens <n>', 'tokens to generate per prompt', samplingFlag('max-tokens', 'maxTokens', int), 16)
    .option('--temperature <t>', 'sampling temperature in [0, 2] (0 = greedy; default from generation_config.json)',
      samplingFlag('temperature', 'temperature', num))
    .option('--top-p <p>', 'nucleus sampling mass in (0, 1]', samplingFlag('top-p', 'topP', num))
    .option('--top-k <k>', 'top-k sampling (0 = off)', samplingFlag('top-k', 'topK', int))
    .option('--seed <s>', 'sampling seed (an integer; -1 = none)', samplingFlag('seed', 'seed', int))
    .option('--logprobs <k>', 'return the top-k log-probabilities of every generated token', samplingFlag('logprobs', 'logprobs', int))
    .option('--max-logprobs <k>', `the most --logprobs allowed (vLLM's max_logprobs; default ${DEFAULT_MAX_LOGPROBS})`, int('max-logprobs', 0))
    .option('--ignore-eos', 'keep generating after EOS')
    .option('--threads <n>', `backend threads, 1 to ${MAX_BACKEND_THREADS} (default: all cores)`, int('threads', 1, MAX_BACKEND_THREADS))
    .addOption(new Option('--json', 'print one JSON array (vLLM RequestOutput shape, snake_case) to stdout'))
    .action(async (opts) => {
      const maxLogprobs = (opts.maxLogprobs as number | undefined) ?? DEFAULT_MAX_LOGPROBS;
      if (opts.logprobs !== undefined && opts.logprobs > maxLogprobs) {
        throw new Error(`--logprobs ${opts.logprobs} is more than --max-logprobs ${maxLogprobs} (vLLM's max_logprobs; raise --max-logprobs to allow it)`);
      }
      const prompts = await readPrompts(texts, idLists);
      if (!prompts.length) throw new Error('give at least one --prompt, --prompt-file, --prompt-token-ids or --prompt-token-ids-file');
      const t0 = performance.now();
      const llm = new LLM({
        model: opts.model, quantization: opts.quantization, backend: opts.backend, server: opts.server, threads: opts.threads, maxLogprobs,
        ...loadOptions(opts),
      });
      const loaded = await llm.ready();
      process.stderr.write(`loaded ${opts.model} (${loaded.config.architecture}, backend ${loaded.backend.name}` +
        `${loaded.quantization ? `, ${loaded.quantization.name}` : ''}) in ${(performance.now() - t0).toFixed(0)} ms\n`);
      process.stderr.write(`${environmentLine(await describeEnvironment(loaded.backend.name))}\n`);
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
