import { CheckpointError, ConfigError, RegistryError } from '../errors.js';
import type { KvDtype } from '../graph/attention.js';
import { createGraphContext } from '../graph/graph-context.js';
import { loadModelFolder, type ModelFolder } from '../loading/index.js';
import type { BackendSessionV1, BackendV1 } from '../backend/v1/backend-v1.js';
import type { ModelArchitectureV1, ModelConfigV1 } from '../model/v1/model-architecture-v1.js';
import type { QuantizationMethodV1 } from '../quantizer/v1/quantization-method-v1.js';
import type { TensorSource } from '../tensor/tensor-source.js';
import { backends, modelArchitectures, quantizationMethods } from '../registries.js';

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
  /** Told each phase of the load as it starts (for a progress line). */
  onProgress?: (phase: LoadPhase) => void;
}

/** The phases of a load, in order. */
export type LoadPhase = 'reading the model folder' | 'reading weights and building the graph' | 'creating the backend session';

export interface LoadedModel {
  folder: ModelFolder;
  architecture: ModelArchitectureV1<ModelConfigV1>;
  config: ModelConfigV1;
  quantization?: QuantizationMethodV1;
  backend: BackendV1;
  session: BackendSessionV1;
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
    const quantizationConfig = folder.config.quantization_config as Record<string, unknown> | undefined;
    const quantization = await resolveQuantization(options.quantization, quantizationConfig, folder.configFile);
    checkTensors(architecture, config, folder.checkpoint);
    const backend = await resolveBackend(options.backend);

    // Only a quantized model needs the backend's int8 GEMM form (and its one-time probe).
    const int8 = quantization ? await backend.int8GemmForm?.() : undefined;
    const ctx = createGraphContext({
      checkpoint: folder.checkpoint,
      config,
      int8Form: int8?.form,
      supportsOp: (domain, op) => backend.supportsOp(domain, op),
      kvDtype: options.kvDtype,
      maxLen: options.maxModelLen,
      linearMethod: (layer) => quantization?.getLinearMethod(layer, { config, quantizationConfig }) ?? null,
    });
    options.onProgress?.('reading weights and building the graph');
    architecture.buildGraph(ctx, config);
    const built = await ctx.g.build();
    options.onProgress?.('creating the backend session');
    const session = await backend.createSession(built, { threads: options.threads });
    return { folder, architecture, config, quantization, backend, session, loadMs: performance.now() - start };
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
    const availability = await backend.isAvailable();
    if (!availability.available) throw new ConfigError(`backend '${name}' is not available here: ${availability.reason ?? 'no reason given'}`);
    return backend;
  }
  let best: BackendV1 | undefined;
  for (const [, backend] of await backends.all()) {
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
