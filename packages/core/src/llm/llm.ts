import { Engine } from '../engine/engine.js';
import { KvCacheBuffers, kvCacheBytes, StepRunner, type KvCacheLayout } from '../engine/step-runner.js';
import { ConfigError } from '../errors.js';
import type { KvDtype } from '../graph/attention.js';
import type { LmHeadOption } from '../graph/graph-context.js';
import type { ChatMessage } from '../loading/index.js';
import { Rng } from '../sampling/index.js';
import { EngineLoop, type GenerationLoop } from './engine-loop.js';
import { loadModel, type LoadedModel, type LoadPhase } from './load-model.js';
import { loadRemoteModel, RemoteLoop, selectRemoteBackend, type RemoteLoadedModel } from './remote-loop.js';
import type { RequestOutput } from './outputs.js';
import { SamplingParams } from './sampling-params.js';

export interface LLMOptions {
  /** A Hugging Face model folder (config.json, safetensors, tokenizer files). */
  model: string;
  /** Quantization method ('SmoothQuant', ...); detected from config.json when omitted. */
  quantization?: string;
  /** Backend name ('cpu', ...); the best available one when omitted. */
  backend?: string;
  /** Compute dtype: 'auto' (default) or 'float32'. The CPU backend computes in float32. */
  dtype?: 'auto' | 'float32' | 'float';
  /**
   * Longest sequence (prompt + output): each KV-cache slot holds this many positions. Default: config.json's
   * max_position_embeddings, or less where the KV budget (kvCacheBytes) cannot hold maxNumSeqs sequences of it.
   */
  maxModelLen?: number;
  /** Sequences decoding at once: the KV cache's slots (vLLM's max_num_seqs). Default 8. */
  maxNumSeqs?: number;
  /** The KV cache's size in bytes (vLLM CPU's VLLM_CPU_KVCACHE_SPACE, llama.cpp's -c). Default 4 GiB. */
  kvCacheBytes?: number;
  /** The KV cache's element type. Default 'float32' (BENCHMARKS.md, "KV cache dtype"). */
  kvCacheDtype?: KvDtype;
  /** Tokens one engine step may compute (decode rows + prefill chunks; vLLM's max_num_batched_tokens). Default 512. */
  maxNumBatchedTokens?: number;
  /** Most requests waiting for a KV-cache slot; past it a new request fails with EngineBusyError (a server's 429). Default unbounded. */
  maxQueue?: number;
  /** Told each phase of the load as it starts (for a progress line), and the graph's bytes written so far. */
  onProgress?: (phase: LoadPhase, progress?: { done: number; total: number }) => void;
  /**
   * Where the model as the backend reads it (graph and weights, in their stored width) is kept between loads, so the
   * second load skips reading and converting the checkpoint: a folder, or false for none. Default `$QLLM_CACHE_DIR`
   * or `~/.cache/qllm`, for models whose weights take at least 64 MiB.
   */
  graphCache?: string | false;
  /**
   * How a float lm_head runs: 'float' as the checkpoint stores it (default; Golden Stick and llm-compressor leave the
   * head unquantized), or 'int8' weight-only with per-token activations: a quarter of the bytes a decode step reads
   * for the head, with its own fidelity line in BENCHMARKS.md ("Head options").
   */
  lmHead?: LmHeadOption;
  /** Seed for requests that bring none (default 0, as vLLM). */
  seed?: number;
  /** Backend threads, an integer in [1, MAX_BACKEND_THREADS] (default: all cores). */
  threads?: number;
  /** The most logprobs a request may ask for (vLLM's max_logprobs); default 20. */
  maxLogprobs?: number;
  /**
   * An OpenAI-compatible server (vLLM's `vllm serve`, vLLM-MindSpore's `vllm-mindspore serve`) already serving this
   * folder, e.g. 'http://127.0.0.1:8000': a remote backend (`backend: 'ascend'`) drives it over HTTP instead of
   * starting one. The tokenizer, chat template, stop strings and outputs stay here; the server gets prompt token ids.
   */
  server?: string;
  /** Settings for the backend itself, which checks them (e.g. the 'ascend' backend's `apiKey`, `port`, `env`). */
  backendOptions?: Readonly<Record<string, unknown>>;
}

export type { RemoteLoadedModel } from './remote-loop.js';

/**
 * Backend threads at most. A fixed bound rather than one derived from this machine's cores, so the same options
 * are valid everywhere: past the core count an intra-op pool only oversubscribes (256 threads still load and run on
 * 2 cores, 5 s to load instead of 1.5 s, while 500 was reported to hang).
 */
export const MAX_BACKEND_THREADS = 256;

/** vLLM's default max_logprobs. */
export const DEFAULT_MAX_LOGPROBS = 20;

/** vLLM CPU's default KV cache space (VLLM_CPU_KVCACHE_SPACE = 4 GiB). */
export const DEFAULT_KV_CACHE_BYTES = 4 * 2 ** 30;
export const DEFAULT_MAX_NUM_SEQS = 8;
export const DEFAULT_MAX_NUM_BATCHED_TOKENS = 512;

/** A prompt: text, or token ids (vLLM's TextPrompt / TokensPrompt). */
export type PromptInput = string | { prompt: string } | { promptTokenIds: number[]; prompt?: string };

/**
 * Offline inference, as vLLM's `LLM`: `new LLM({ model })`, then `await llm.generate(prompts, params)`.
 * The model loads in the background from the constructor; `await llm.ready()` waits for it explicitly.
 */
export class LLM {
  private readonly loading: Promise<LoadedModel | RemoteLoadedModel>;
  private readonly engineLoop: Promise<GenerationLoop>;
  private requestCounter = 0;
  private readonly rng: Rng;
  private readonly maxLogprobs: number;

  constructor(readonly options: LLMOptions) {
    if (options.dtype && !['auto', 'float32', 'float'].includes(options.dtype)) {
      throw new ConfigError(`LLM.dtype '${options.dtype}' is not supported: the backends compute in float32 ('auto' or 'float32')`);
    }
    const { threads, maxLogprobs = DEFAULT_MAX_LOGPROBS } = options;
    if (threads !== undefined && !(Number.isSafeInteger(threads) && threads >= 1 && threads <= MAX_BACKEND_THREADS)) {
      throw new ConfigError(`LLM.threads must be an integer in [1, ${MAX_BACKEND_THREADS}], got ${String(threads)}`);
    }
    if (!(Number.isSafeInteger(maxLogprobs) && maxLogprobs >= 0)) {
      throw new ConfigError(`LLM.maxLogprobs must be an integer >= 0, got ${String(maxLogprobs)}`);
    }
    this.maxLogprobs = maxLogprobs;
    this.rng = new Rng(options.seed ?? 0);
    if (options.maxQueue !== undefined && !(Number.isSafeInteger(options.maxQueue) && options.maxQueue >= 0)) {
      throw new ConfigError(`LLM.maxQueue must be an integer >= 0, got ${String(options.maxQueue)}`);
    }
    for (const key of ['maxModelLen', 'maxNumSeqs', 'kvCacheBytes', 'maxNumBatchedTokens'] as const) {
      const v = options[key];
      if (v !== undefined && !(Number.isSafeInteger(v) && v >= 1)) throw new ConfigError(`LLM.${key} must be a positive integer, got ${String(v)}`);
    }
    if (options.kvCacheDtype !== undefined && !['float32', 'float16'].includes(options.kvCacheDtype)) {
      throw new ConfigError(`LLM.kvCacheDtype must be 'float32' or 'float16', got ${String(options.kvCacheDtype)}`);
    }
    // A remote backend (createRemoteEngine) serves the model from a server; otherwise the graph runs here.
    this.loading = selectRemoteBackend(options).then((remote): Promise<LoadedModel | RemoteLoadedModel> =>
      remote ? loadRemoteModel(options, remote) : loadModel({ ...options, kvDtype: options.kvCacheDtype }));
    this.engineLoop = this.loading.then((loaded) => (loaded.session ? this.startEngine(loaded) : this.startRemote(loaded as RemoteLoadedModel)));
    // Surfaced by ready()/generate(), not as unhandled rejections.
    this.loading.catch(() => undefined);
    this.engineLoop.catch(() => undefined);
  }

  /** Create and wait until the model is loaded. */
  static async create(options: LLMOptions): Promise<LLM> {
    const llm = new LLM(options);
    await llm.ready();
    return llm;
  }

  async ready(): Promise<LoadedModel | RemoteLoadedModel> {
    await this.engineLoop;
    return this.loading;
  }

  /** The KV cache the engine was given (slots × positions) and what it costs. */
  async cacheLayout(): Promise<KvCacheLayout & { bytes: number }> {
    const loop = await this.engineLoop;
    if (!(loop instanceof EngineLoop)) throw new ConfigError(`backend '${(await this.loading).backend.name}' keeps its KV cache in its server, not here`);
    const layout = loop.engine.layout;
    return { ...layout, bytes: kvCacheBytes((await this.loading).config, layout) };
  }

  /** Sequences running and requests waiting right now (for metrics). */
  async stats(): Promise<{ running: number; waiting: number; slotsInUse: number }> {
    return (await this.engineLoop).stats();
  }

  /** vLLM's default sampling parameters: generation_config.json's. */
  async getDefaultSamplingParams(): Promise<SamplingParams> {
    const { folder } = await this.loading;
    return SamplingParams.fromGenerationDefaults(folder.generation);
  }

  async getTokenizer() {
    return (await this.loading).folder.tokenizer;
  }

  /**
   * Generate completions for each prompt; outputs come back in input order. All prompts go to the engine at once and
   * decode together (vLLM's LLM._run_engine).
   */
  async generate(prompts: PromptInput | PromptInput[], samplingParams?: SamplingParams | SamplingParams[]): Promise<RequestOutput[]> {
    this.checkLogprobs(samplingParams); // before waiting for the model: no work is done for a request over the cap
    const loop = await this.engineLoop;
    const loaded = await this.loading;
    const list = Array.isArray(prompts) ? prompts : [prompts];
    const params = samplingParams ?? (await this.getDefaultSamplingParams());
    if (Array.isArray(params) && params.length !== list.length) {
      throw new ConfigError(`generate: ${list.length} prompts but ${params.length} SamplingParams (give one, or one per prompt)`);
    }
    const streams: Array<AsyncIterableIterator<RequestOutput>> = [];
    const ids: string[] = [];
    try {
      for (const [i, prompt] of list.entries()) {
        const id = String(this.requestCounter++);
        streams.push(this.addRequest(loop, loaded, id, prompt, Array.isArray(params) ? params[i]! : params, 'final'));
        ids.push(id);
      }
    } catch (e) {
      for (const id of ids) loop.abort(id); // a bad prompt fails the call before any work is wasted on the others
      throw e;
    }
    const outputs: RequestOutput[] = [];
    try {
      for (const stream of streams) {
        let last: RequestOutput | undefined;
        for await (const out of stream) last = out;
        outputs.push(last!);
      }
    } catch (e) {
      for (const id of ids) loop.abort(id); // a request refused later (a remote server's 400) stops the others too
      throw e;
    }
    return outputs;
  }

  /**
   * Stream one request's outputs as they are generated: each RequestOutput carries only what is new (vLLM's
   * RequestOutputKind.DELTA: new token ids, text delta, their logprobs), the last one `finished` with the finish
   * reason. Aborting the signal, or leaving the loop early, aborts the request and frees its slot at once.
   */
  async *stream(prompt: PromptInput, samplingParams?: SamplingParams, options: { signal?: AbortSignal; requestId?: string } = {}): AsyncGenerator<RequestOutput> {
    this.checkLogprobs(samplingParams);
    const loop = await this.engineLoop;
    const loaded = await this.loading;
    const params = samplingParams ?? (await this.getDefaultSamplingParams());
    const id = options.requestId ?? String(this.requestCounter++);
    options.signal?.throwIfAborted();
    const stream = this.addRequest(loop, loaded, id, prompt, params, 'delta');
    const onAbort = () => loop.abort(id);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    let finished = false;
    try {
      for await (const out of stream) {
        finished = out.finished;
        yield out;
      }
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      if (!finished) loop.abort(id);
    }
  }

  /** Chat through the model folder's chat template (Qwen3: `enableThinking` switches the think block). */
  async chat(
    messages: ChatMessage[] | ChatMessage[][],
    samplingParams?: SamplingParams,
    options: { enableThinking?: boolean; addGenerationPrompt?: boolean; chatTemplateKwargs?: Record<string, unknown> } = {},
  ): Promise<RequestOutput[]> {
    const { folder } = await this.loading;
    const tokenizer = folder.tokenizer;
    if (!tokenizer) throw new ConfigError(`${folder.dir}: no tokenizer.json, so chat() cannot render or encode messages`);
    const conversations = (Array.isArray(messages[0]) ? messages : [messages]) as ChatMessage[][];
    const prompts = conversations.map((conversation) => {
      const prompt = tokenizer.applyChatTemplate(conversation, {
        addGenerationPrompt: options.addGenerationPrompt ?? true,
        enableThinking: options.enableThinking,
        extra: options.chatTemplateKwargs,
      });
      return { prompt, promptTokenIds: tokenizer.encode(prompt, { addSpecialTokens: false }) };
    });
    return this.generate(prompts, samplingParams);
  }

  /** Abort what is running and release the backend session. */
  async close(): Promise<void> {
    const loop = await this.engineLoop.catch(() => undefined);
    await loop?.close();
    const loaded = await this.loading;
    await (loaded.session ? loaded.session.dispose() : (loaded as RemoteLoadedModel).remote.close());
  }

  /** vLLM's max_logprobs check: a request may ask for at most maxLogprobs logprobs. */
  private checkLogprobs(samplingParams: SamplingParams | SamplingParams[] | undefined): void {
    const list = samplingParams === undefined ? [] : Array.isArray(samplingParams) ? samplingParams : [samplingParams];
    for (const [i, p] of list.entries()) {
      if (p.logprobs === undefined || p.logprobs <= this.maxLogprobs) continue;
      const which = Array.isArray(samplingParams) ? ` (for prompt ${i})` : '';
      throw new ConfigError(
        `generate: SamplingParams.logprobs ${p.logprobs}${which} is more than this LLM's maxLogprobs ${this.maxLogprobs} ` +
          `(vLLM's max_logprobs; raise it with new LLM({ maxLogprobs }))`,
      );
    }
  }

  /** Size the KV cache from the options and the model (vLLM's checks at startup), allocate it and start the engine. */
  private startEngine(loaded: LoadedModel): EngineLoop {
    const { config } = loaded;
    const o = this.options;
    const dtype = o.kvCacheDtype ?? 'float32';
    const slots = o.maxNumSeqs ?? DEFAULT_MAX_NUM_SEQS;
    const perPosition = kvCacheBytes(config, { slots: 1, maxLen: 1, dtype });
    const budget = o.kvCacheBytes ?? DEFAULT_KV_CACHE_BYTES;
    const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
    if (o.maxModelLen !== undefined && o.maxModelLen > config.maxPositionEmbeddings) {
      throw new ConfigError(`LLM.maxModelLen ${o.maxModelLen} exceeds the model's max_position_embeddings ${config.maxPositionEmbeddings}`);
    }
    const maxLen = o.maxModelLen ?? Math.min(config.maxPositionEmbeddings, Math.floor(budget / (slots * perPosition)));
    const bytes = slots * maxLen * perPosition;
    if (maxLen < 2 || bytes > budget) {
      throw new ConfigError(
        `the KV cache for maxNumSeqs ${slots} × maxModelLen ${maxLen} positions needs ${gib(slots * Math.max(maxLen, 2) * perPosition)} ` +
          `(${(perPosition / 1024).toFixed(1)} KiB a position, ${dtype}), more than kvCacheBytes ${gib(budget)}: ` +
          'lower maxModelLen or maxNumSeqs, or raise kvCacheBytes',
      );
    }
    const layout: KvCacheLayout = { slots, maxLen, dtype };
    const runner = new StepRunner(loaded.session, config, new KvCacheBuffers(loaded.session, config, layout));
    return new EngineLoop(new Engine({
      runner,
      vocabSize: config.vocabSize,
      tokenizer: loaded.folder.tokenizer,
      eosTokenIds: loaded.folder.generation.eosTokenIds,
      maxModelLen: maxLen,
      maxNumBatchedTokens: o.maxNumBatchedTokens ?? DEFAULT_MAX_NUM_BATCHED_TOKENS,
      maxQueue: o.maxQueue,
    }));
  }

  /** A remote backend's loop: requests go to its server; EOS ids and the tokenizer stay here. */
  private startRemote(loaded: RemoteLoadedModel): GenerationLoop {
    const { remote, folder, config } = loaded;
    return new RemoteLoop(remote, { tokenizer: folder.tokenizer, eosTokenIds: folder.generation.eosTokenIds, vocabSize: config.vocabSize, maxModelLen: remote.maxModelLen });
  }

  private addRequest(loop: GenerationLoop, loaded: LoadedModel | RemoteLoadedModel, id: string, input: PromptInput, params: SamplingParams, outputKind: 'delta' | 'final') {
    const arrivalTime = Date.now() / 1000;
    const { prompt, promptTokenIds } = this.tokenize(loaded, input);
    const rng = params.seed !== undefined ? new Rng(params.seed) : this.rng;
    return loop.add(id, { prompt, promptTokenIds, params, rng, outputKind, arrivalTime });
  }

  private tokenize(loaded: LoadedModel | RemoteLoadedModel, input: PromptInput): { prompt: string | null; promptTokenIds: number[] } {
    if (typeof input !== 'string' && 'promptTokenIds' in input) return { prompt: input.prompt ?? null, promptTokenIds: [...input.promptTokenIds] };
    const text = typeof input === 'string' ? input : input.prompt;
    const tokenizer = loaded.folder.tokenizer;
    if (!tokenizer) throw new ConfigError(`${loaded.folder.dir}: no tokenizer.json; pass { promptTokenIds } instead of text`);
    return { prompt: text, promptTokenIds: tokenizer.encode(text) };
  }
}
