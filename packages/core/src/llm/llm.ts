import { ConfigError } from '../errors.js';
import type { ChatMessage } from '../loading/index.js';
import { Rng } from '../sampling/index.js';
import { generateSequence, type SequenceContext } from './generate-sequence.js';
import { loadModel, type LoadedModel } from './load-model.js';
import { ModelRunner } from './model-runner.js';
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
  /** Longest sequence (prompt + output); default config.json's max_position_embeddings. */
  maxModelLen?: number;
  /** Seed for requests that bring none (default 0, as vLLM). */
  seed?: number;
  /** Backend threads (default: all cores). */
  threads?: number;
}

/** A prompt: text, or token ids (vLLM's TextPrompt / TokensPrompt). */
export type PromptInput = string | { prompt: string } | { promptTokenIds: number[]; prompt?: string };

/**
 * Offline inference, as vLLM's `LLM`: `new LLM({ model })`, then `await llm.generate(prompts, params)`.
 * The model loads in the background from the constructor; `await llm.ready()` waits for it explicitly.
 */
export class LLM {
  private readonly loading: Promise<LoadedModel>;
  private requestCounter = 0;
  private readonly rng: Rng;

  constructor(readonly options: LLMOptions) {
    if (options.dtype && !['auto', 'float32', 'float'].includes(options.dtype)) {
      throw new ConfigError(`LLM.dtype '${options.dtype}' is not supported: the backends compute in float32 ('auto' or 'float32')`);
    }
    this.rng = new Rng(options.seed ?? 0);
    this.loading = loadModel(options);
    this.loading.catch(() => undefined); // surfaced by ready()/generate(), not as an unhandled rejection
  }

  /** Create and wait until the model is loaded. */
  static async create(options: LLMOptions): Promise<LLM> {
    const llm = new LLM(options);
    await llm.ready();
    return llm;
  }

  async ready(): Promise<LoadedModel> {
    return this.loading;
  }

  /** vLLM's default sampling parameters: generation_config.json's. */
  async getDefaultSamplingParams(): Promise<SamplingParams> {
    const { folder } = await this.loading;
    return SamplingParams.fromGenerationDefaults(folder.generation);
  }

  async getTokenizer() {
    return (await this.loading).folder.tokenizer;
  }

  /** Generate completions for each prompt, in input order. */
  async generate(prompts: PromptInput | PromptInput[], samplingParams?: SamplingParams | SamplingParams[]): Promise<RequestOutput[]> {
    const loaded = await this.loading;
    const list = Array.isArray(prompts) ? prompts : [prompts];
    const params = samplingParams ?? (await this.getDefaultSamplingParams());
    if (Array.isArray(params) && params.length !== list.length) {
      throw new ConfigError(`generate: ${list.length} prompts but ${params.length} SamplingParams (give one, or one per prompt)`);
    }
    const ctx = this.sequenceContext(loaded);
    const outputs: RequestOutput[] = [];
    for (const [i, prompt] of list.entries()) {
      outputs.push(await this.runRequest(ctx, loaded, prompt, Array.isArray(params) ? params[i]! : params));
    }
    return outputs;
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

  /** Release the backend session. */
  async close(): Promise<void> {
    await (await this.loading).session.dispose();
  }

  private sequenceContext(loaded: LoadedModel): SequenceContext {
    const maxModelLen = this.options.maxModelLen ?? loaded.config.maxPositionEmbeddings;
    if (maxModelLen > loaded.config.maxPositionEmbeddings) {
      throw new ConfigError(`LLM.maxModelLen ${maxModelLen} exceeds the model's max_position_embeddings ${loaded.config.maxPositionEmbeddings}`);
    }
    return {
      runner: new ModelRunner(loaded.session, loaded.config),
      tokenizer: loaded.folder.tokenizer,
      eosTokenIds: loaded.folder.generation.eosTokenIds,
      maxModelLen,
    };
  }

  private async runRequest(ctx: SequenceContext, loaded: LoadedModel, input: PromptInput, params: SamplingParams): Promise<RequestOutput> {
    const requestId = String(this.requestCounter++);
    const arrivalTime = Date.now() / 1000;
    const { prompt, promptTokenIds } = this.tokenize(loaded, input);
    if (promptTokenIds.length === 0) throw new ConfigError(`request ${requestId}: the prompt is empty`);
    if (promptTokenIds.length >= ctx.maxModelLen) {
      throw new ConfigError(`request ${requestId}: the prompt has ${promptTokenIds.length} tokens, more than maxModelLen ${ctx.maxModelLen} allows`);
    }
    const vocab = loaded.config.vocabSize;
    const bad = promptTokenIds.find((t) => !Number.isInteger(t) || t < 0 || t >= vocab);
    if (bad !== undefined) throw new ConfigError(`request ${requestId}: prompt token id ${bad} is outside the vocabulary [0, ${vocab})`);
    const rng = params.seed !== undefined ? new Rng(params.seed) : this.rng;
    const outputs = [];
    for (let i = 0; i < params.n; i++) outputs.push(await generateSequence(ctx, promptTokenIds, params, rng, i));
    return {
      requestId,
      prompt,
      promptTokenIds,
      outputs,
      finished: true,
      metrics: { arrivalTime, lastTokenTime: Date.now() / 1000, numGenerationTokens: outputs.reduce((a, o) => a + o.tokenIds.length, 0) },
    };
  }

  private tokenize(loaded: LoadedModel, input: PromptInput): { prompt: string | null; promptTokenIds: number[] } {
    if (typeof input !== 'string' && 'promptTokenIds' in input) return { prompt: input.prompt ?? null, promptTokenIds: [...input.promptTokenIds] };
    const text = typeof input === 'string' ? input : input.prompt;
    const tokenizer = loaded.folder.tokenizer;
    if (!tokenizer) throw new ConfigError(`${loaded.folder.dir}: no tokenizer.json; pass { promptTokenIds } instead of text`);
    return { prompt: text, promptTokenIds: tokenizer.encode(text) };
  }
}
