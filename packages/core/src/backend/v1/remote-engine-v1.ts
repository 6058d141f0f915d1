import type { Logprob } from '../../llm/outputs.js';
import type { SamplingParams } from '../../llm/sampling-params.js';

/**
 * What an `LLM` hands a remote backend (one that runs models in a server, e.g. vLLM-MindSpore on an Ascend NPU) when
 * it starts: the model folder and the LLM options that concern the server.
 */
export interface RemoteEngineOptionsV1 {
  /** The model folder as given to the LLM (config.json, tokenizer.json, weights the server reads). */
  model: string;
  /** An OpenAI-compatible server already serving the model: attach to it instead of starting one (LLMOptions.server). */
  server?: string;
  /** The quantization method named in the LLM options, if any (the backend maps it to the server's flag). */
  quantization?: string;
  maxModelLen?: number;
  maxNumSeqs?: number;
  maxLogprobs?: number;
  seed?: number;
  /** Backend-specific settings (LLMOptions.backendOptions), validated by the backend. */
  backendOptions?: Readonly<Record<string, unknown>>;
  /** Told what the backend is doing while it starts (e.g. 'starting vllm-mindspore serve …'). */
  onProgress?: (message: string) => void;
}

/** One request to the server: prompt token ids in, this request's deltas out. */
export interface RemoteRequestV1 {
  requestId: string;
  promptTokenIds: readonly number[];
  params: SamplingParams;
  /** Aborted when the caller aborts the request: the backend cancels it on the server (closes the stream). */
  signal: AbortSignal;
}

/**
 * What the server generated for one completion (`index` in [0, n)) since the previous delta: token ids (the tokenizer
 * stays with the LLM, so text is detokenized locally), their logprobs, and, on its last delta, why it finished.
 */
export interface RemoteDeltaV1 {
  index: number;
  tokenIds: number[];
  /** Per new token: token id → logprob, the top k and the chosen token (present when params.logprobs is set). */
  logprobs?: Array<Record<number, Logprob>>;
  /** Set on the completion's last delta, as the server reports it. */
  finishReason?: 'stop' | 'length' | 'abort';
  /** The stop string or stop token id the server stopped on (null for EOS or length). */
  stopReason?: number | string | null;
}

/** A server that generates (vLLM's OpenAI-compatible server, driven over HTTP); created by BackendV1.createRemoteEngine. */
export interface RemoteEngineV1 {
  readonly specificationVersion: 'v1';
  /** Where the server is (for messages), e.g. 'http://127.0.0.1:8000'. */
  readonly url: string;
  /** The model name the server serves. */
  readonly servedModelName: string;
  /** The server's context length, when it reports one (vLLM's /v1/models max_model_len). */
  readonly maxModelLen?: number;
  /**
   * Generate: the deltas of every completion of the request, in order, ending after each completion's finishing
   * delta. A request the server refuses throws a ConfigError (400) or EngineBusyError (429) naming what it said.
   */
  generate(request: RemoteRequestV1): AsyncIterable<RemoteDeltaV1>;
  /** Stop using the server; a server the backend started is stopped. */
  close(): Promise<void>;
}
