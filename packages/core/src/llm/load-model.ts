import { CheckpointError, ConfigError, RegistryError } from '../errors.js';
import type { KvDtype } from '../graph/attention.js';
import { createGraphContext, readSmallTensors, type LmHeadOption } from '../graph/graph-context.js';
import { defaultCacheDir, writeGraph } from '../graph/graph-cache.js';
import { loadModelFolder, type ModelFolder } from '../loading/index.js';
import type { BackendSessionV1, BackendV1 } from '../backend/v1/backend-v1.js';
import type { ModelArchitectureV1, ModelConfigV1 } from '../model/v1/model-architecture-v1.js';
import type { QuantizationMethodV1 } from '../quantizer/v1/quantization-method-v1.js';
import type { TensorSource } from '../tensor/tensor-source.js';
import { backends, modelArchitectures, quantizationMethods } from '../registries.js';
import { recognizeFolder } from './recognize-folder.js';

export interface LoadModelOptions {
  /** A Hugging Face model folder. */
  model: string;
  /** Quantization method name; detected from config.json `quantization_config` when omitted. */
  quantization?: string;
  /** Backend name; the best available one when omitted. */
  backend?: string;
  /** Intra-op threads for the backend. */
  threads?: number;
  /** The longest sequence the graph serves (its rotary tables); default config.json's max_position_embeddings. */
  maxModelLen?: number;
  /** The KV cache's element type (default float32). */
  kvDtype?: KvDtype;
  /**
   * Where the graph (the model as the backend reads it, weights in their stored width) is kept between loads: a
   * folder, or false for a temporary folder removed once the session exists. Default: `$QLLM_CACHE_DIR` or
   * `~/.cache/qllm` for models whose weights take at least 64 MiB; smaller ones are rebuilt each load.
   */
  graphCache?: string | false;
  /** How a float head runs: as the checkpoint stores it (default) or weight-only int8 (see int8-head.ts). */
  lmHead?: LmHeadOption;
  /**
   * Told each phase of the load as it starts (for a progress line), and while the graph's weights are written, the
   * bytes done so far.
   */
  onProgress?: (phase: LoadPhase, progress?: { done: number; total: number }) => void;
}

/** The phases of a load, in order ('writing the graph' is skipped when the graph cache has it). */
export type LoadPhase =
  | 'reading the model folder'
  | 'reading weights and building the graph'
  | 'writing the graph'
  | 'creating the backend session';

/** Below this many weight bytes a graph is cheaper to rebuild than to keep in the cache. */
const MIN_CACHED_BYTES = 64 * 2 ** 20;

export interface LoadedModel {
  folder: ModelFolder;
  architecture: ModelArchitectureV1<ModelConfigV1>;
  config: ModelConfigV1;
  quantization?: QuantizationMethodV1;
  backend: BackendV1;
  session: BackendSessionV1;
  /** Whether the graph came from the graph cache (a warm load). */
  graphCached: boolean;
  /** Milliseconds spent loading (folder, graph, backend session). */
  loadMs: number;
}

/** Load a model folder onto a backend: architecture → quantization → checkpoint check → graph → session. */
export async function loadModel(options: LoadModelOptions): Promise<LoadedModel> {
  const start = performance.now();
  options.onProgress?.('reading the model folder');
  const folder = await loadModelFolder(options.model);
  try {
    const { architecture, config } = await resolveArchitecture(folder);
    // A layout config.json does not describe (Golden Stick's, by tensor names) brings its own config and tensor names.
    const recognized = await recognizeFolder(options.quantization, folder, { architecture, config });
    const quantizationConfig = recognized?.quantizationConfig ?? (folder.config.quantization_config as Record<string, unknown> | undefined);
    const quantization = recognized?.method ?? await resolveQuantization(options.quantization, quantizationConfig, folder.configFile);
    const checkpoint = recognized?.checkpoint ?? folder.checkpoint;
    checkTensors(architecture, config, checkpoint);
    const backend = await resolveBackend(options.backend);

    // Only a quantized model needs the backend's int8 GEMM form (and its one-time probe).
    const int8 = quantization || options.lmHead === 'int8' ? await backend.int8GemmForm?.() : undefined;
    const ctx = createGraphContext({
      checkpoint,
      config,
      int8Form: int8?.form,
      supportsOp: (domain, op) => backend.supportsOp(domain, op),
      kvDtype: options.kvDtype,
      lmHead: options.lmHead,
      maxLen: options.maxModelLen,
      smallTensors: quantization ? await readSmallTensors(checkpoint) : undefined,
      linearMethod: (layer) => quantization?.getLinearMethod(layer, { config, quantizationConfig }) ?? null,
    });
    options.onProgress?.('reading weights and building the graph');
    architecture.buildGraph(ctx, config);
    const written = await writeGraph(ctx.g, {
      cacheDir: options.graphCache === false ? undefined : (options.graphCache ?? defaultCacheDir()),
      minCachedBytes: options.graphCache === undefined ? MIN_CACHED_BYTES : 0,
      sources: folder.checkpoint.filePaths(),
      onStart: () => options.onProgress?.('writing the graph'),
      onBytes: (done, total) => options.onProgress?.('writing the graph', { done, total }),
    });
    try {
      options.onProgress?.('creating the backend session');
      const session = await backend.createSession(written.model, { threads: options.threads });
      return { folder, architecture, config, quantization, backend, session, graphCached: written.cached, loadMs: performance.now() - start };
    } finally {
      await written.release();
    }
  } finally {
    await folder.checkpoint.close();
  }
}

/** The registered architecture named by config.json's `architectures[0]`, and the config it parses. */
export async function resolveArchitecture(folder: ModelFolder): Promise<{ architecture: ModelArchitectureV1<ModelConfigV1>; config: ModelConfigV1 }> {
  const names = folder.config.architectures;
  const name = Array.isArray(names) && typeof names[0] === 'string' ? names[0] : undefined;
  if (!name) throw new ConfigError(`${folder.configFile}: 'architectures' must list the model class, e.g. ["Qwen3ForCausalLM"]`);
  const architecture = await modelArchitectures.get(name).catch((e: unknown) => {
    // The registry's "unknown model architecture 'X'; registered: ..." plus the file that asked for it.
    throw e instanceof RegistryError ? new RegistryError(`${folder.configFile}: 'architectures' names an ${e.message}`, { cause: e }) : e;
  });
  return { architecture, config: architecture.parseConfig(folder.config, folder.configFile) };
}

/** vLLM's rule: an explicit name must agree with the checkpoint's; otherwise the checkpoint decides. */
async function resolveQuantization(
  explicit: string | undefined,
  quantizationConfig: Record<string, unknown> | undefined,
  configFile: string,
): Promise<QuantizationMethodV1 | undefined> {
  if (explicit) {
    const method = await quantizationMethods.get(explicit);
    if (quantizationConfig && !method.recognizes(quantizationConfig)) {
      const detected = await detectQuantization(quantizationConfig);
      throw new ConfigError(
        `quantization '${explicit}' was requested, but ${configFile} says the checkpoint was quantized with ` +
          `'${detected?.name ?? String(quantizationConfig.quant_method ?? 'an unknown method')}'`,
      );
    }
    if (!quantizationConfig) {
      throw new ConfigError(`quantization '${explicit}' was requested, but ${configFile} has no quantization_config: is this a quantized checkpoint?`);
    }
    return method;
  }
  if (!quantizationConfig) return undefined;
  const detected = await detectQuantization(quantizationConfig);
  if (!detected) {
    throw new ConfigError(
      `${configFile}: quantization_config (quant_method '${String(quantizationConfig.quant_method)}') is not recognised by any ` +
        `registered quantization method (registered: ${quantizationMethods.names().join(', ') || 'none'})`,
    );
  }
  return detected;
}

async function detectQuantization(quantizationConfig: Record<string, unknown>): Promise<QuantizationMethodV1 | undefined> {
  for (const [, method] of await quantizationMethods.all()) if (method.recognizes(quantizationConfig)) return method;
  return undefined;
}

async function resolveBackend(name: string | undefined): Promise<BackendV1> {
  if (name) {
    const backend = await backends.get(name);
    if (backend.createRemoteEngine) {
      throw new ConfigError(`backend '${name}' serves models through a server, not a graph here: use new LLM({ model, backend: '${name}' })`);
    }
    const availability = await backend.isAvailable();
    if (!availability.available) throw new ConfigError(`backend '${name}' is not available here: ${availability.reason ?? 'no reason given'}`);
    return backend;
  }
  let best: BackendV1 | undefined;
  for (const [, backend] of await backends.all()) {
    if (backend.createRemoteEngine) continue; // serves a model over HTTP: chosen by LLM, never to run a graph here
    if ((await backend.isAvailable()).available && (!best || backend.score() > best.score())) best = backend;
  }
  if (!best) throw new ConfigError(`no available backend (registered: ${backends.names().join(', ') || 'none'})`);
  return best;
}

/** Every tensor the architecture expects is present with the shape config.json implies. */
function checkTensors(architecture: ModelArchitectureV1<ModelConfigV1>, config: ModelConfigV1, checkpoint: TensorSource): void {
  for (const spec of architecture.expectedTensors(config)) {
    if (!checkpoint.has(spec.name)) {
      if (spec.optional) continue;
      checkpoint.info(spec.name); // throws the reader's CheckpointError naming the tensor and checkpoint
    }
    const info = checkpoint.info(spec.name);
    if (info.shape.length !== spec.shape.length || info.shape.some((d, i) => d !== spec.shape[i])) {
      throw new CheckpointError(
        `${info.file}: tensor '${spec.name}' has shape [${info.shape.join(', ')}] but config.json implies [${spec.shape.join(', ')}]`,
        info.file,
        spec.name,
      );
    }
  }
}
