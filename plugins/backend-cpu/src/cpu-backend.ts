import os from 'node:os';
import * as ort from 'onnxruntime-node';
import type {
  BackendSessionOptions, BackendSessionV1, BackendV1, BackendValue, BuiltModel, DType, HostTensor,
} from '@qllm/core';

/** Settings of the CPU backend. */
export interface CpuBackendSettings {
  /** Intra-op threads when a session does not say (default: the machine's cores). */
  threads?: number;
  /** onnxruntime graph optimisation level (default 'all'). */
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
}

const TO_ORT: Partial<Record<DType, ort.Tensor.Type>> = {
  F32: 'float32', F16: 'float16', I64: 'int64', I32: 'int32', I16: 'int16', I8: 'int8', U8: 'uint8', BOOL: 'bool', F64: 'float64',
};
const FROM_ORT = Object.fromEntries(Object.entries(TO_ORT).map(([k, v]) => [v, k])) as Partial<Record<string, DType>>;

/** The contrib and standard ops this backend relies on and onnxruntime's CPU provider runs (reference/onnxruntime.md). */
const CONTRIB_OPS = new Set([
  'DynamicQuantizeMatMul', 'MatMulIntegerToFloat', 'MatMulNBits', 'GroupQueryAttention', 'RotaryEmbedding',
  'SkipSimplifiedLayerNormalization', 'QOrderedMatMul',
]);

function toOrt(t: HostTensor): ort.Tensor {
  const type = TO_ORT[t.dtype];
  if (!type) throw new TypeError(`cpu backend: dtype ${t.dtype} cannot be fed to onnxruntime`);
  return new ort.Tensor(type, t.data as never, t.shape);
}

function isHost(v: HostTensor | BackendValue): v is HostTensor {
  return !(v instanceof ort.Tensor) && typeof (v as HostTensor).dtype === 'string' && 'shape' in v;
}

class CpuSession implements BackendSessionV1 {
  constructor(private readonly session: ort.InferenceSession) {}

  get inputNames() {
    return this.session.inputNames;
  }

  get outputNames() {
    return this.session.outputNames;
  }

  async run(feeds: Record<string, HostTensor | BackendValue>): Promise<Record<string, BackendValue>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, v] of Object.entries(feeds)) ortFeeds[name] = isHost(v) ? toOrt(v) : (v as ort.Tensor);
    return (await this.session.run(ortFeeds)) as Record<string, BackendValue>;
  }

  toHost(value: BackendValue): HostTensor {
    const t = value as ort.Tensor;
    const dtype = FROM_ORT[t.type];
    if (!dtype) throw new TypeError(`cpu backend: cannot read an onnxruntime ${t.type} tensor`);
    return { dtype, shape: [...t.dims], data: t.data as HostTensor['data'] };
  }

  release(value: BackendValue): void {
    (value as ort.Tensor).dispose?.();
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

/** Create the onnxruntime-node CPU backend. */
export function createCpuBackend(settings: CpuBackendSettings = {}): BackendV1 {
  return {
    specificationVersion: 'v1',
    name: 'cpu',
    async isAvailable() {
      return { available: true };
    },
    score: () => 1,
    supportsOp: (domain, opType) => domain === '' || domain === 'ai.onnx' || (domain === 'com.microsoft' && CONTRIB_OPS.has(opType)),
    async createSession(model: BuiltModel, options: BackendSessionOptions = {}) {
      const session = await ort.InferenceSession.create(model.model, {
        executionProviders: ['cpu'],
        intraOpNumThreads: options.threads ?? settings.threads ?? os.availableParallelism(),
        interOpNumThreads: 1,
        graphOptimizationLevel: settings.graphOptimizationLevel ?? 'all',
        externalData: model.externalData,
        logSeverityLevel: 3,
      });
      return new CpuSession(session);
    },
  };
}

/** The default instance. */
export const cpu = createCpuBackend();
