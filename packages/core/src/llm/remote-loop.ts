/**
 * An LLM on a remote backend (BackendV1.createRemoteEngine: a server such as vLLM-MindSpore's, driven over HTTP).
 * The LLM keeps what it does locally — tokenizer, chat template, prompt checks, and, per completion, detokenizing,
 * stop checks (vLLM's order: EOS, stop token ids, stop strings, length) and RequestOutput deltas — and the server
 * only turns prompt token ids into output token ids (and logprobs). So `generate`, `stream` and `chat` keep their
 * semantics whichever side computes, and text is always `tokenizer.decode(tokenIds)` cut at the stop string.
 * The server applies the same stops (they are sent with the request); when it reports a finish the LLM did not see
 * (its own context limit, a different EOS), the server's reason is taken.
 */
import type { BackendV1 } from '../backend/v1/backend-v1.js';
import type { RemoteDeltaV1, RemoteEngineOptionsV1, RemoteEngineV1 } from '../backend/v1/remote-engine-v1.js';
import { CompletionState, type CompletionEnv } from '../engine/completion-state.js';
import type { EngineRequestInit } from '../engine/engine.js';
import type { FinishReason } from '../engine/sequence.js';
import { ConfigError } from '../errors.js';
import { readModelFolderFiles, type ModelFolder } from '../loading/index.js';
import type { ModelArchitectureV1, ModelConfigV1 } from '../model/v1/model-architecture-v1.js';
import { backends, modelArchitectures } from '../registries.js';
import { Channel, type GenerationLoop } from './engine-loop.js';
import type { LoadPhase } from './load-model.js';
import type { Logprob, RequestOutput } from './outputs.js';
import type { SamplingParams } from './sampling-params.js';

/** A model folder as a remote LLM reads it: configs and tokenizer, never the weights (the server reads those). */
export type RemoteModelFolder = Omit<ModelFolder, 'checkpoint'>;

/** What `LLM.ready()` gives for a model served by a remote backend. */
export interface RemoteLoadedModel {
  folder: RemoteModelFolder;
  /** The registered architecture of config.json's `architectures[0]`, if qllm has one (the server may serve others). */
  architecture?: ModelArchitectureV1<ModelConfigV1>;
  /** config.json as the architecture parses it, or its generic fields as they are. */
  config: ModelConfigV1;
  quantization?: undefined;
  backend: BackendV1;
  /** No local session: the server computes. */
  session?: undefined;
  remote: RemoteEngineV1;
  loadMs: number;
}

/** The LLM options a remote load reads: what goes to the backend, the backend's name, and the load's progress. */
export interface RemoteLoadOptions extends Omit<RemoteEngineOptionsV1, 'onProgress'> {
  backend?: string;
  onProgress?: (phase: LoadPhase) => void;
}

/**
 * The remote backend these options select, or undefined when the model runs in this process. A named backend with
 * createRemoteEngine, or — no backend named — the best available one (detect → score → pick, as loadModel) when it is
 * remote. `server` needs a named remote backend.
 */
export async function selectRemoteBackend(o: Pick<RemoteLoadOptions, 'backend' | 'server'>): Promise<BackendV1 | undefined> {
  if (o.server !== undefined && (typeof o.server !== 'string' || !/^https?:\/\/./.test(o.server))) {
    throw new ConfigError(`LLM.server must be an http(s) URL such as 'http://127.0.0.1:8000', got ${JSON.stringify(o.server)}`);
  }
  if (o.backend) {
    const backend = await backends.get(o.backend);
    if (backend.createRemoteEngine) return backend;
    if (o.server) {
      throw new ConfigError(`LLM.server: backend '${o.backend}' runs models in this process and cannot drive a server (a remote backend such as 'ascend' can)`);
    }
    return undefined;
  }
  if (o.server) throw new ConfigError(`LLM.server '${o.server}' needs the backend that drives it: name it, e.g. new LLM({ model, backend: 'ascend', server })`);
  let best: BackendV1 | undefined;
  for (const [, backend] of await backends.all()) {
    if ((await backend.isAvailable()).available && (!best || backend.score() > best.score())) best = backend;
  }
  return best?.createRemoteEngine ? best : undefined;
}

/**
 * Start a remote LLM: without a server URL the backend must be available here (the same check and message as
 * loadModel, the probe told the folder so it can say how to serve it elsewhere); then the folder's configs and
 * tokenizer (no weights), then the backend's engine (attached to `server`, or started).
 */
export async function loadRemoteModel(o: RemoteLoadOptions, backend: BackendV1): Promise<RemoteLoadedModel> {
  const start = performance.now();
  if (!o.server) {
    const availability = await backend.isAvailable({ model: o.model });
    if (!availability.available) throw new ConfigError(`backend '${backend.name}' is not available here: ${availability.reason ?? 'no reason given'}`);
  }
  o.onProgress?.('reading the model folder');
  const folder = await readModelFolderFiles(o.model);
  const { architecture, config } = await remoteConfig(folder);
  o.onProgress?.('creating the backend session');
  const remote = await backend.createRemoteEngine!({
    model: o.model,
    server: o.server,
    quantization: o.quantization,
    maxModelLen: o.maxModelLen,
    maxNumSeqs: o.maxNumSeqs,
    maxLogprobs: o.maxLogprobs,
    seed: o.seed,
    backendOptions: o.backendOptions,
  });
  return { folder, architecture, config, backend, remote, loadMs: performance.now() - start };
}

async function remoteConfig(folder: RemoteModelFolder): Promise<{ architecture?: ModelArchitectureV1<ModelConfigV1>; config: ModelConfigV1 }> {
  const raw = folder.config;
  const name = Array.isArray(raw.architectures) && typeof raw.architectures[0] === 'string' ? raw.architectures[0] : undefined;
  if (name && modelArchitectures.has(name)) {
    const architecture = (await modelArchitectures.get(name)) as ModelArchitectureV1<ModelConfigV1>;
    return { architecture, config: architecture.parseConfig(raw, folder.configFile) };
  }
  const num = (key: string) => (typeof raw[key] === 'number' ? (raw[key] as number) : Number.NaN);
  return {
    config: {
      architecture: name ?? 'unknown',
      hiddenSize: num('hidden_size'),
      numLayers: num('num_hidden_layers'),
      numKvHeads: num('num_key_value_heads'),
      headDim: num('head_dim'),
      vocabSize: num('vocab_size'),
      maxPositionEmbeddings: num('max_position_embeddings'),
      torchDtype: String(raw.torch_dtype ?? 'unknown'),
    },
  };
}

/** One completion: the tokens the server sent, detokenized and stop-checked as the local engine's Sequence does. */
class RemoteSequence extends CompletionState {
  /** Append one token the server generated and check the stops in vLLM's order (as Sequence.accept). */
  accept(token: number, entry: Record<number, Logprob> | undefined): void {
    this.append(token, entry, entry?.[token]?.logprob ?? Number.NaN);
  }

  /** The server finished this completion for a reason the local checks did not see: take the server's. */
  serverFinished(reason: FinishReason, stopReason: number | string | null | undefined): void {
    if (this.finished) return;
    this.finishReason = reason;
    this.stopReason = stopReason ?? null;
  }
}

/** One request on the server: its completions, times, the channel its outputs go to, and its HTTP stream. */
class RemoteRequest {
  readonly seqs: RemoteSequence[];
  readonly controller = new AbortController();
  readonly channel = new Channel();
  readonly arrivalTime: number;
  firstScheduledTime?: number;
  firstTokenTime?: number;
  lastTokenTime?: number;
  finishedTime?: number;
  private sentFinal = false;

  constructor(
    readonly id: string,
    readonly init: EngineRequestInit,
    env: CompletionEnv,
  ) {
    this.arrivalTime = init.arrivalTime ?? Date.now() / 1000;
    this.seqs = Array.from({ length: init.params.n }, (_, i) => new RemoteSequence(i, init.promptTokenIds, init.params, env));
  }

  get finished(): boolean {
    return this.seqs.every((s) => s.finished);
  }

  apply(delta: RemoteDeltaV1): void {
    const s = this.seqs[delta.index];
    if (!s) throw new Error(`request ${this.id}: the server sent completion index ${delta.index}, but n = ${this.seqs.length}`);
    if (s.finished) return; // e.g. tokens past a stop string the LLM saw first
    const now = Date.now() / 1000;
    for (const [i, token] of delta.tokenIds.entries()) {
      if (s.finished) break;
      s.accept(token, delta.logprobs?.[i]);
    }
    if (delta.tokenIds.length) {
      this.firstTokenTime ??= now;
      this.lastTokenTime = now;
    }
    if (delta.finishReason) s.serverFinished(delta.finishReason, delta.stopReason);
  }

  abort(): void {
    for (const s of this.seqs) s.abort();
    this.controller.abort();
    this.emit();
  }

  /** Push an output when there is one to push (every change for 'delta', the finished request for 'final'). */
  emit(): void {
    if (this.sentFinal) return;
    const finished = this.finished;
    const fresh = finished || this.seqs.some((s) => s.outputIds.length > s.sentTokens);
    if (!fresh || (this.init.outputKind === 'final' && !finished)) return;
    if (finished) {
      this.finishedTime ??= Date.now() / 1000;
      this.sentFinal = true;
    }
    const delta = this.init.outputKind === 'delta';
    this.channel.push({
      requestId: this.id,
      prompt: this.init.prompt,
      promptTokenIds: [...this.init.promptTokenIds],
      outputs: this.seqs.map((s) => s.output(delta)),
      finished,
      metrics: {
        arrivalTime: this.arrivalTime,
        firstScheduledTime: this.firstScheduledTime,
        firstTokenTime: this.firstTokenTime,
        lastTokenTime: this.lastTokenTime,
        finishedTime: this.finishedTime,
        numGenerationTokens: this.seqs.reduce((a, s) => a + s.outputIds.length, 0),
      },
    });
  }
}

/** The LLM's loop over a remote engine: one HTTP request per LLM request, all in flight at once (the server batches). */
export class RemoteLoop implements GenerationLoop {
  private readonly requests = new Map<string, RemoteRequest>();
  private readonly runs = new Set<Promise<void>>();

  constructor(
    readonly remote: RemoteEngineV1,
    private readonly env: CompletionEnv & { vocabSize: number },
  ) {}

  add(id: string, init: EngineRequestInit): AsyncIterableIterator<RequestOutput> {
    const prompt = init.promptTokenIds;
    if (this.requests.has(id)) throw new ConfigError(`request ${id} is already in the engine`);
    if (prompt.length === 0) throw new ConfigError(`request ${id}: the prompt is empty`);
    const { vocabSize } = this.env;
    const bad = prompt.find((t) => !Number.isInteger(t) || t < 0 || (Number.isFinite(vocabSize) && t >= vocabSize));
    if (bad !== undefined) throw new ConfigError(`request ${id}: prompt token id ${bad} is outside the vocabulary [0, ${vocabSize})`);
    const maxLen = this.env.maxModelLen;
    if (maxLen !== undefined && prompt.length + init.params.maxTokens > maxLen) {
      throw new ConfigError(
        `request ${id}: the prompt's ${prompt.length} tokens plus maxTokens ${init.params.maxTokens} exceed the server's max_model_len ${maxLen} ` +
          `(${this.remote.url}): lower maxTokens to at most ${Math.max(0, maxLen - prompt.length)}`,
      );
    }
    const request = new RemoteRequest(id, init, this.env);
    this.requests.set(id, request);
    const run = this.run(request).finally(() => {
      this.requests.delete(id);
      this.runs.delete(run);
    });
    this.runs.add(run);
    return request.channel;
  }

  abort(id: string): void {
    this.requests.get(id)?.abort();
  }

  stats(): { running: number; waiting: number; slotsInUse: number } {
    let running = 0;
    for (const r of this.requests.values()) running += r.seqs.filter((s) => !s.finished).length;
    return { running, waiting: 0, slotsInUse: running };
  }

  async close(): Promise<void> {
    for (const r of this.requests.values()) r.abort();
    await Promise.allSettled(this.runs);
  }

  private async run(r: RemoteRequest): Promise<void> {
    // Let the caller add its other requests and start consuming first (as the local loop does).
    await Promise.resolve();
    try {
      if (r.finished) return;
      r.firstScheduledTime = Date.now() / 1000;
      const deltas = this.remote.generate({ requestId: r.id, promptTokenIds: r.init.promptTokenIds, params: r.init.params, signal: r.controller.signal });
      for await (const delta of deltas) {
        r.apply(delta);
        r.emit();
        if (r.finished) break; // leaving the loop closes the HTTP stream (a stop the server had not seen yet)
      }
      if (!r.finished) {
        const open = r.seqs.filter((s) => !s.finished).map((s) => s.index);
        throw new Error(`${this.remote.url}: the server ended request ${r.id}'s stream before completion ${open.join(', ')} finished`);
      }
    } catch (error) {
      if (r.controller.signal.aborted && r.finished) return; // aborted by the caller: its final output is out already
      r.controller.abort();
      r.channel.fail(error);
    }
  }
}
