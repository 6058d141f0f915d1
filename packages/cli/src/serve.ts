import { Command, Option } from 'commander';
import { DEFAULT_MAX_LOGPROBS, LLM, MAX_BACKEND_THREADS } from 'qllm';
import { describeEnvironment, environmentLine } from './env.js';
import { addLoadFlags, loadOptions } from './load-flags.js';
import { int, num, positiveInt } from './options.js';

/** @qllm/server's DEFAULT_MAX_QUEUE (the server loads only when serving, so the help does not import it; a test checks). */
export const SERVE_DEFAULT_MAX_QUEUE = 64;

/**
 * `qllm serve`: the OpenAI-compatible server (`@qllm/server`) on one model, as `vllm serve`. Logs go to stderr; the
 * line `qllm serve: listening on <url>` says it is ready. SIGTERM (or SIGINT) shuts down gracefully: no new
 * connections, running requests get `--shutdown-timeout` seconds to finish, then are aborted; exit code 0.
 */
export function serveCommand(): Command {
  return addLoadFlags(new Command('serve'))
    .description('serve a model over an OpenAI-compatible HTTP API (vLLM\'s `vllm serve`)')
    .requiredOption('--model <dir>', 'model folder (Hugging Face layout)')
    .option('--quantization <name>', 'quantization method (detected from config.json when omitted)')
    .option('--backend <name>', 'backend (default: best available)')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0: any free port)', int('port', 0, 65535), 8000)
    .addOption(new Option('--api-key <key>', 'require `Authorization: Bearer <key>` on /v1/*, /tokenize and /detokenize').env('QLLM_API_KEY'))
    .option('--served-model-name <name>', 'the model name clients use (default: the --model path as given)')
    .option('--max-num-seqs <n>', 'sequences decoding at once: the KV-cache slots (default 8)', positiveInt('max-num-seqs'))
    .option('--max-model-len <n>', 'longest sequence, prompt + completion (default: the model\'s, or what the KV budget allows)', positiveInt('max-model-len'))
    .option('--kv-cache-bytes <bytes>', 'KV-cache budget in bytes (default 4 GiB)', positiveInt('kv-cache-bytes'))
    .addOption(new Option('--kv-cache-dtype <dtype>', 'KV-cache element type').choices(['float32', 'float16']))
    .option('--max-queue <n>', `sequences that may wait for a slot; past it, 429 (default ${SERVE_DEFAULT_MAX_QUEUE})`, int('max-queue', 0))
    .option('--max-logprobs <k>', `the most logprobs a request may ask for (default ${DEFAULT_MAX_LOGPROBS})`, int('max-logprobs', 0))
    .addOption(new Option('--reasoning-parser <name>', "'qwen3': <think> blocks as reasoning_content (default when the tokenizer has </think>)").choices(['qwen3', 'none']))
    .option('--threads <n>', `backend threads, 1 to ${MAX_BACKEND_THREADS} (default: all cores)`, int('threads', 1, MAX_BACKEND_THREADS))
    .option('--shutdown-timeout <seconds>', 'on SIGTERM, how long running requests may take to finish before they are aborted', num('shutdown-timeout', (s) => s >= 0 && s <= 3600, 'seconds in [0, 3600]'), 25)
    .action(async (opts) => {
      const t0 = performance.now();
      const llm = new LLM({
        model: opts.model, quantization: opts.quantization, backend: opts.backend, threads: opts.threads,
        maxNumSeqs: opts.maxNumSeqs, maxModelLen: opts.maxModelLen, kvCacheBytes: opts.kvCacheBytes,
        kvCacheDtype: opts.kvCacheDtype, maxLogprobs: opts.maxLogprobs,
        ...loadOptions(opts),
      });
      const loaded = await llm.ready();
      const layout = await llm.cacheLayout();
      process.stderr.write(`loaded ${opts.model} (${loaded.config.architecture}, backend ${loaded.backend.name}` +
        `${loaded.quantization ? `, ${loaded.quantization.name}` : ''}) in ${(performance.now() - t0).toFixed(0)} ms; ` +
        `KV cache: ${layout.slots} slots × ${layout.maxLen} positions (${layout.dtype}, ${(layout.bytes / 2 ** 20).toFixed(0)} MiB)\n`);
      process.stderr.write(`${environmentLine(await describeEnvironment(loaded.backend.name))}\n`);
      const { createServer } = await import('@qllm/server'); // fastify & co. load only for serve
      const server = await createServer({
        llm, apiKey: opts.apiKey, servedModelName: opts.servedModelName, maxQueue: opts.maxQueue, reasoningParser: opts.reasoningParser,
        logger: { level: 'warn', stream: process.stderr }, // server-side failures (500s), as JSON lines on stderr
      });
      const url = await server.listen({ host: opts.host, port: opts.port });
      process.stderr.write(`qllm serve: listening on ${url} (model '${server.modelName}'${opts.apiKey ? ', API key required' : ''})\n`);

      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: NodeJS.Signals) => {
          if (stopping) {
            process.stderr.write(`qllm serve: ${signal} again, exiting now\n`);
            process.exit(1);
          }
          stopping = true;
          process.stderr.write(`qllm serve: ${signal}: shutting down (running requests get ${opts.shutdownTimeout} s)\n`);
          void server
            .close({ timeoutMs: opts.shutdownTimeout * 1000 })
            .then(() => llm.close())
            .then(() => process.stderr.write('qllm serve: stopped\n'))
            .finally(resolve);
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
      });
    });
}
