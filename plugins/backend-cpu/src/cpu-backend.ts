import { readFileSync } from 'node:fs';
import os from 'node:os';
import * as ort from 'onnxruntime-node';
import {
  ConfigError, INT8_GEMM_FORMS, isModelOnDisk,
  type BackendBufferV1, type BackendSessionOptions, type BackendSessionV1, type BackendV1, type BackendValue, type BuiltModel, type DType, type HostTensor,
  type Int8GemmChoice, type Int8GemmForm,
} from '@qllm/core';
import { probeInt8Forms, type Int8ProbeResult } from './int8-probe.js';

/** Settings of the CPU backend. */
export interface CpuBackendSettings {
  /** Intra-op threads when a session does not say (default: the machine's cores). */
  threads?: number;
  /** onnxruntime graph optimisation level (default 'all'). */
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /**
   * Force an int8 GEMM form instead of the probe's choice (also `QLLM_INT8_FORM=u8s8|u8u8|s8s8`). A form the probe
   * found inexact on this CPU is refused.
   */
  int8Form?: Int8GemmForm;
  /**
   * Write onnxruntime's per-kernel profile (Chrome trace JSON) with this file prefix when a session is disposed (also
   * `QLLM_ORT_PROFILE=prefix`): where a step's time goes.
   */
  profilePrefix?: string;
}

/** The forms in order of preference, fastest first where exact (BENCHMARKS.md, "int8 GEMM forms"). */
const PREFERENCE: readonly Int8GemmForm[] = ['u8s8', 'u8u8', 's8s8'];

/** One probe per process: the answer depends on the CPU and the onnxruntime build, neither of which changes. */
let probe: Promise<Int8ProbeResult> | undefined;


const TO_ORT: Partial<Record<DType, ort.Tensor.Type>> = {
  F32: 'float32', F16: 'float16', I64: 'int64', I32: 'int32', I16: 'int16', I8: 'int8', U8: 'uint8', BOOL: 'bool', F64: 'float64',
};
const FROM_ORT = Object.fromEntries(Object.entries(TO_ORT).map(([k, v]) => [v, k])) as Partial<Record<string, DType>>;

/** The contrib and standard ops this backend relies on and onnxruntime's CPU provider runs (reference/onnxruntime.md). */
const CONTRIB_OPS = new Set([
  'DynamicQuantizeMatMul', 'MatMulIntegerToFloat', 'MatMulNBits', 'GroupQueryAttention', 'RotaryEmbedding',
  'SkipSimplifiedLayerNormalization', 'QOrderedMatMul', 'FusedMatMul',
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
  constructor(private readonly session: ort.InferenceSession, private readonly profiling = false) {}

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

  allocate(dtype: 'F32' | 'F16', shape: readonly number[]): BackendBufferV1 {
    return new CpuBuffer(dtype, shape);
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
    if (this.profiling) this.session.endProfiling();
    await this.session.release();
  }
}

/** The CPU features that decide MLAS's int8 kernels, as /proc/cpuinfo lists them (empty where it does not exist). */
function cpuFeatures(): string[] {
  try {
    const flags = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim().split(/\s+/) ?? [];
    return ['avx2', 'avx512f', 'avx512bw', 'avx512_vnni', 'avx_vnni', 'amx_int8'].filter((f) => flags.includes(f));
  } catch {
    return [];
  }
}

function forcedForm(settings: CpuBackendSettings): { form: Int8GemmForm; by: string } | undefined {
  if (settings.int8Form) return { form: settings.int8Form, by: 'the int8Form setting' };
  const env = process.env.QLLM_INT8_FORM;
  if (env === undefined || env === '') return undefined;
  if (!(INT8_GEMM_FORMS as readonly string[]).includes(env)) {
    throw new ConfigError(`QLLM_INT8_FORM='${env}' is not an int8 GEMM form (one of ${INT8_GEMM_FORMS.join(', ')})`);
  }
  return { form: env as Int8GemmForm, by: 'QLLM_INT8_FORM' };
}

/** Blocks up to this many elements are copied by a loop rather than subarray + set (cheaper for one position). */
const SMALL_BLOCK = 512;

/** A persistent buffer in host memory; views are onnxruntime tensors over its rows, cached so each is one object. */
class CpuBuffer implements BackendBufferV1 {
  readonly byteLength: number;
  private readonly data: Float32Array | Uint16Array;
  /** Each row is [heads, positions, width], `positions` ≤ the capacity shape[2]. */
  private readonly heads: number;
  private readonly capacity: number;
  private readonly width: number;
  positions: number;
  private views = new Map<string, ort.Tensor>();

  constructor(readonly dtype: 'F32' | 'F16', readonly shape: readonly number[]) {
    const n = shape.reduce((a, b) => a * b, 1);
    const bytes = n * (dtype === 'F32' ? 4 : 2);
    try {
      this.data = dtype === 'F32' ? new Float32Array(n) : new Uint16Array(n);
    } catch (e) {
      throw new ConfigError(`cpu backend: cannot allocate ${(bytes / 2 ** 30).toFixed(2)} GiB for a [${shape.join(', ')}] ${dtype} buffer: ${(e as Error).message}`);
    }
    this.byteLength = bytes;
    const [, heads = 1, positions = 1, ...rest] = shape;
    this.heads = heads;
    this.capacity = positions;
    this.positions = positions;
    this.width = rest.reduce((a, b) => a * b, 1);
  }

  private get rowSize(): number {
    return this.heads * this.positions * this.width;
  }

  setPositions(positions: number, keep?: readonly number[]): void {
    if (!Number.isInteger(positions) || positions < 1 || positions > this.capacity) {
      throw new RangeError(`cpu backend: ${positions} positions per head in a buffer of capacity ${this.capacity}`);
    }
    const from = this.positions;
    if (positions === from) return;
    const { heads, width, data } = this;
    const most = Math.min(from, positions);
    const rows = this.shape[0]!;
    // Head blocks move to higher offsets when growing (so go from the last one down) and lower when shrinking.
    const blocks = rows * heads;
    for (let i = 0; i < blocks; i++) {
      const b = positions > from ? blocks - 1 - i : i;
      const src = b * from * width;
      const dst = b * positions * width;
      const n = Math.min(most, keep?.[Math.floor(b / heads)] ?? most) * width;
      if (src !== dst && n > 0) data.copyWithin(dst, src, src + n);
    }
    this.positions = positions;
    this.views = new Map();
  }

  rows(first: number, count: number): BackendValue {
    const key = `${first}:${count}`;
    let view = this.views.get(key);
    if (!view) {
      if (first < 0 || count < 1 || first + count > this.shape[0]!) throw new RangeError(`rows [${first}, ${first + count}) of a buffer of ${this.shape[0]}`);
      const data = this.data.subarray(first * this.rowSize, (first + count) * this.rowSize);
      view = new ort.Tensor(this.dtype === 'F32' ? 'float32' : 'float16', data as never, [count, this.heads, this.positions, ...this.shape.slice(3)]);
      this.views.set(key, view);
    }
    return view;
  }

  writePositions(row: number, position: number, source: BackendValue, sourceRow: number): void {
    const t = source as ort.Tensor;
    const { heads, positions, width } = this;
    const steps = t.dims[2]!;
    if (t.dims[1] !== heads || t.dims.slice(3).reduce((a, b) => a * b, 1) !== width || position + steps > positions) {
      throw new RangeError(`cpu backend: cannot write a [${t.dims.join(', ')}] block at position ${position} of a buffer laid out [${this.shape[0]}, ${heads}, ${positions}, ${width}]`);
    }
    const data = t.data as Float32Array | Uint16Array;
    const block = steps * width;
    const dst = this.data;
    const rowSize = this.rowSize;
    for (let h = 0; h < heads; h++) {
      const from = (sourceRow * heads + h) * block;
      const to = row * rowSize + (h * positions + position) * width;
      if (block > SMALL_BLOCK) {
        dst.set(data.subarray(from, from + block), to);
      } else {
        // A decode step's block (one position: head_dim values): a plain loop, no subarray objects per head.
        for (let i = 0; i < block; i++) dst[to + i] = data[from + i]!;
      }
    }
  }

  copyPositions(src: number, dst: number, length: number): void {
    const { heads, positions, width } = this;
    if (length > positions) throw new RangeError(`cpu backend: cannot copy ${length} positions of rows laid out with ${positions}`);
    const rowSize = this.rowSize;
    for (let h = 0; h < heads; h++) {
      const from = src * rowSize + h * positions * width;
      this.data.copyWithin(dst * rowSize + h * positions * width, from, from + length * width);
    }
  }
}

/** Create the onnxruntime-node CPU backend. */
export function createCpuBackend(settings: CpuBackendSettings = {}): BackendV1 {
  const threads = (options: BackendSessionOptions) => options.threads ?? settings.threads ?? os.availableParallelism();
  const backend: BackendV1 = {
    specificationVersion: 'v1',
    name: 'cpu',
    async isAvailable() {
      return { available: true };
    },
    score: () => 1,
    supportsOp: (domain, opType) => domain === '' || domain === 'ai.onnx' || (domain === 'com.microsoft' && CONTRIB_OPS.has(opType)),
    async createSession(model: BuiltModel, options: BackendSessionOptions = {}) {
      const sessionOptions: ort.InferenceSession.SessionOptions = {
        executionProviders: ['cpu'],
        intraOpNumThreads: threads(options),
        interOpNumThreads: 1,
        graphOptimizationLevel: settings.graphOptimizationLevel ?? 'all',
        logSeverityLevel: 3,
      };
      const profilePrefix = settings.profilePrefix ?? (process.env.QLLM_ORT_PROFILE || undefined);
      if (profilePrefix) Object.assign(sessionOptions, { enableProfiling: true, profileFilePrefix: profilePrefix });
      // A model on disk is read by onnxruntime itself (its weights mapped from the file, never held by JavaScript).
      const session = isModelOnDisk(model)
        ? await ort.InferenceSession.create(model.path, sessionOptions)
        : await ort.InferenceSession.create(model.model, { ...sessionOptions, externalData: model.externalData });
      return new CpuSession(session, Boolean(profilePrefix));
    },
    async int8GemmForm(): Promise<Int8GemmChoice> {
      probe ??= probeInt8Forms((model) => backend.createSession(model));
      const { verdict } = await probe;
      const exact = Object.fromEntries(INT8_GEMM_FORMS.map((f) => [f, verdict[f] === ''])) as Record<Int8GemmForm, boolean>;
      const forced = forcedForm(settings);
      if (forced) {
        if (!exact[forced.form]) {
          throw new ConfigError(`int8 GEMM form '${forced.form}' (from ${forced.by}) is not exact on this CPU: ${verdict[forced.form]}`);
        }
        return { form: forced.form, reason: `forced by ${forced.by}`, exact };
      }
      const form = PREFERENCE.find((f) => exact[f]);
      if (!form) {
        throw new ConfigError(`no int8 GEMM form runs exactly on this CPU: ${INT8_GEMM_FORMS.map((f) => `${f}: ${verdict[f]}`).join('; ')}`);
      }
      const skipped = PREFERENCE.slice(0, PREFERENCE.indexOf(form)).map((f) => `${f} inexact (${verdict[f]})`);
      return { form, reason: skipped.length ? `${skipped.join('; ')}` : `${form} exact in the probe`, exact };
    },
    async describe() {
      const cpus = os.cpus();
      return {
        cpu: `${cpus[0]?.model.trim() ?? 'unknown'} (${os.availableParallelism()} threads available)`,
        'cpu features': cpuFeatures().join(' ') || 'unknown',
        onnxruntime: `onnxruntime-node ${ort.env.versions.node ?? 'unknown'} (CPU execution provider)`,
        threads: String(threads({})),
      };
    },
  };
  return backend;
}

/** The default instance. */
export const cpu = createCpuBackend();
