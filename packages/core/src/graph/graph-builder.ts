import { createRequire } from 'node:module';
import type { onnx as OnnxNs } from 'onnx-proto';
import { open, type FileHandle } from 'node:fs/promises';
import type { TypedArray } from '../tensor/dtype.js';

const require = createRequire(import.meta.url);
const { onnx } = require('onnx-proto') as { onnx: typeof OnnxNs };

/** ONNX element types the builder emits. */
export type ElemType = 'float32' | 'float16' | 'bfloat16' | 'int8' | 'uint8' | 'int32' | 'int64' | 'bool';

const ELEM: Record<ElemType, number> = {
  float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, bool: 9, float16: 10, bfloat16: 16,
};

/** A dimension: a number, or a symbolic name for a dynamic one. */
export type Dim = number | string;

/** A float attribute (a bare number is an INT attribute when it is an integer). */
export interface FloatAttr { readonly float: number }
export interface FloatsAttr { readonly floats: readonly number[] }
export type AttrValue = number | readonly number[] | string | FloatAttr | FloatsAttr;
export const float = (x: number): FloatAttr => ({ float: x });
export const floats = (xs: readonly number[]): FloatsAttr => ({ floats: xs });

/** Data of an initializer: given, or produced when the model is built (weights are read lazily). */
export type InitializerData = TypedArray | (() => Promise<TypedArray> | TypedArray);

interface GraphSignature {
  inputs: Array<{ name: string; elemType: ElemType; shape: Dim[] }>;
  outputs: Array<{ name: string; elemType: ElemType; shape: Dim[] }>;
}

/** A model held in memory: the ModelProto and its large initializers as in-memory external data. */
export interface ModelInMemory extends GraphSignature {
  /** Serialized ModelProto (large weights are not inside it). */
  model: Uint8Array;
  /** External data for the large initializers, as onnxruntime's `sessionOptions.externalData` wants it. */
  externalData: Array<{ path: string; data: Uint8Array }>;
}

/** A model written to a folder: `model.onnx` with its weights in `weights.bin` beside it. */
export interface ModelOnDisk extends GraphSignature {
  /** The `.onnx` file; its external data paths are relative to its folder. */
  path: string;
}

/** A built graph, as a backend's `createSession` takes it. */
export type BuiltModel = ModelInMemory | ModelOnDisk;

export const isModelOnDisk = (m: BuiltModel): m is ModelOnDisk => typeof (m as ModelOnDisk).path === 'string';

interface Initializer {
  name: string;
  elemType: ElemType;
  shape: number[];
  data: InitializerData;
  /** Set for a view: rows [first, first + shape[0]) of another initializer, sharing its bytes. */
  view?: { base: Initializer; first: number };
}

/** The file a written model keeps its large initializers in. */
export const WEIGHTS_FILE = 'weights.bin';
export const MODEL_FILE = 'model.onnx';

/** Initializers of at most this many bytes are stored inside the ModelProto. */
const INLINE_BYTES = 4096;
/** Offsets of initializers in the weights file are page-aligned, so onnxruntime can map them. */
const ALIGN = 4096;

const BYTES: Record<ElemType, number> = { float32: 4, float16: 2, bfloat16: 2, int8: 1, uint8: 1, int32: 4, int64: 8, bool: 1 };

const byteLength = (init: { elemType: ElemType; shape: number[] }): number => init.shape.reduce((a, b) => a * b, 1) * BYTES[init.elemType];

/** Where a written model's weights go: the ModelProto and, for each external initializer, its data's producer. */
export interface ModelPlan {
  /** Serialized ModelProto whose large initializers point into `weights.bin`. */
  model: Uint8Array;
  /** Bytes of `weights.bin`. */
  weightBytes: number;
  /** Write `weights.bin` at `path`, one initializer at a time (each read, written and dropped). */
  writeWeights(path: string, onBytes?: (written: number, total: number) => void): Promise<void>;
  signature: GraphSignature;
}

/**
 * Builds an ONNX graph from TypeScript. Values are named strings; every op returns fresh, unique names.
 * Large initializers become external data that onnxruntime reads from memory, so nothing touches disk.
 */
export class GraphBuilder {
  private readonly nodes: OnnxNs.INodeProto[] = [];
  /** Values output() renamed to their output's name. */
  private readonly renamed = new Map<string, string>();
  private readonly inits: Initializer[] = [];
  private readonly names = new Set<string>();
  private readonly ins: BuiltModel['inputs'] = [];
  private readonly outs: BuiltModel['outputs'] = [];
  private counter = 0;
  private scope: string[] = [];

  constructor(
    readonly graphName = 'qllm',
    readonly opsets: Record<string, number> = { '': 21, 'com.microsoft': 1 },
  ) {}

  /** Prefix node names made inside `fn` with `name/` (readable graphs, nothing else). */
  withScope<T>(name: string, fn: () => T): T {
    this.scope.push(name);
    try {
      return fn();
    } finally {
      this.scope.pop();
    }
  }

  private unique(base: string): string {
    const prefix = this.scope.length ? `${this.scope.join('/')}/` : '';
    let name = `${prefix}${base}`;
    while (this.names.has(name)) name = `${prefix}${base}_${++this.counter}`;
    this.names.add(name);
    return name;
  }

  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`graph value '${name}' is defined twice`);
    this.names.add(name);
    return name;
  }

  input(name: string, elemType: ElemType, shape: Dim[]): string {
    this.ins.push({ name: this.claim(name), elemType, shape });
    return name;
  }

  /**
   * Mark `value` as a graph output called `name`. A value a node of this graph made is renamed (its producer writes
   * the output directly, its consumers read it under the new name); anything else (an input, an initializer) gets an
   * Identity.
   */
  output(value: string, name: string, elemType: ElemType, shape: Dim[]): void {
    const current = this.renamed.get(value) ?? value;
    if (current !== name) {
      this.claim(name);
      const producer = this.nodes.find((n) => n.output?.includes(current));
      if (producer && current === value) {
        for (const n of this.nodes) {
          n.input = (n.input ?? []).map((i) => (i === value ? name : i));
          n.output = (n.output ?? []).map((o) => (o === value ? name : o));
        }
        this.renamed.set(value, name);
      } else {
        this.nodes.push({ opType: 'Identity', input: [current], output: [name], name: `${name}/Identity` });
      }
    }
    this.outs.push({ name, elemType, shape });
  }

  /** How many nodes of each op type the graph holds (what a lowering emitted, for tests and reports). */
  opCounts(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const n of this.nodes) counts[n.opType!] = (counts[n.opType!] ?? 0) + 1;
    return counts;
  }

  /** A named initializer (a weight); `data` may be a function, called once when the model is built. */
  initializer(name: string, elemType: ElemType, shape: number[], data: InitializerData): string {
    this.inits.push({ name: this.claim(name), elemType, shape, data });
    return name;
  }

  /**
   * Rows [first, first + count) of initializer `base` as an initializer of their own, sharing its bytes: a view
   * in the weights file (or a subarray in memory), never a copy.
   */
  initializerView(name: string, base: string, first: number, count: number): string {
    const b = this.inits.find((i) => i.name === base && !i.view);
    if (!b) throw new Error(`initializerView '${name}': no initializer '${base}'`);
    if (first < 0 || count < 1 || first + count > b.shape[0]!) throw new RangeError(`initializerView '${name}': rows [${first}, ${first + count}) of [${b.shape}]`);
    this.inits.push({ name: this.claim(name), elemType: b.elemType, shape: [count, ...b.shape.slice(1)], data: [] as never, view: { base: b, first } });
    return name;
  }

  /** A small constant (an initializer with a generated name). int64 values may be numbers. */
  constant(elemType: ElemType, shape: number[], values: ArrayLike<number> | readonly bigint[], base = 'const'): string {
    const name = this.unique(base);
    this.inits.push({ name, elemType, shape, data: toTyped(elemType, values) });
    return name;
  }

  /** A scalar or 1-D int64 constant (shapes, axes, indices). */
  ints(values: readonly number[] | number): string {
    return Array.isArray(values)
      ? this.constant('int64', [values.length], values)
      : this.constant('int64', [], [values as number]);
  }

  /** A float32 scalar constant. */
  scalar(value: number): string {
    return this.constant('float32', [], [value]);
  }

  /**
   * Add a node with several outputs. `''` marks an omitted optional input. `outputNames` gives outputs fixed names
   * (e.g. a graph output's, so the node writes straight into a buffer bound to it rather than through an Identity);
   * `undefined` entries get generated names.
   */
  node(
    opType: string,
    inputs: readonly string[],
    attrs: Record<string, AttrValue> = {},
    opts: { domain?: string; outputs?: number; name?: string; outputNames?: ReadonlyArray<string | undefined> } = {},
  ): string[] {
    const base = opts.name ?? opType;
    const nodeName = this.unique(base);
    const n = opts.outputs ?? 1;
    const outputs = Array.from({ length: n }, (_, i) => {
      const fixed = opts.outputNames?.[i];
      return fixed !== undefined ? this.claim(fixed) : this.unique(n === 1 ? `${base}_out` : `${base}_out${i}`);
    });
    const attribute = Object.entries(attrs).map(([k, v]) => toAttr(k, v));
    this.nodes.push({ opType, domain: opts.domain ?? '', input: [...inputs], output: outputs, name: nodeName, attribute });
    return outputs;
  }

  /** Add a node with one output. */
  op(opType: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, opts: { domain?: string; name?: string } = {}): string {
    return this.node(opType, inputs, attrs, opts)[0]!;
  }

  /** Serialize in memory: materialise every initializer once, the large ones as in-memory external data. */
  async build(): Promise<ModelInMemory> {
    const materialized = new Map<string, TypedArray>();
    const dataOf = async (init: Initializer): Promise<TypedArray> => {
      if (init.view) {
        const { base } = init.view;
        const whole = materialized.get(base.name) ?? (await checkedData(base));
        materialized.set(base.name, whole);
        return viewRows(whole, init);
      }
      const known = materialized.get(init.name);
      if (known) return known;
      const typed = await checkedData(init);
      if (this.inits.some((i) => i.view?.base === init)) materialized.set(init.name, typed);
      return typed;
    };
    const externalData: ModelInMemory['externalData'] = [];
    const initializer: OnnxNs.ITensorProto[] = [];
    for (const init of this.inits) {
      const typed = await dataOf(init);
      const bytes = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
      if (bytes.byteLength <= INLINE_BYTES) {
        initializer.push(tensorProto(init, { rawData: bytes }));
      } else {
        const path = `w${externalData.length}.bin`;
        externalData.push({ path, data: bytes });
        initializer.push(tensorProto(init, { external: { path, offset: 0, length: bytes.byteLength } }));
      }
    }
    return { model: this.encode(initializer), externalData, ...this.signature() };
  }

  /**
   * Plan the model as a folder: large initializers get page-aligned places in `weights.bin` (views share their
   * base's bytes); small ones are materialised now into the ModelProto. Nothing large is read until
   * `writeWeights`, which streams one initializer at a time.
   */
  async plan(): Promise<ModelPlan> {
    const place = new Map<string, number>();
    const external: Initializer[] = [];
    let end = 0;
    for (const init of this.inits) {
      if (init.view || byteLength(init) <= INLINE_BYTES) continue;
      end = Math.ceil(end / ALIGN) * ALIGN;
      place.set(init.name, end);
      external.push(init);
      end += byteLength(init);
    }
    const initializer: OnnxNs.ITensorProto[] = [];
    const smallBases = new Map<string, TypedArray>();
    for (const init of this.inits) {
      if (init.view) {
        const { base } = init.view;
        const rowBytes = byteLength(base) / base.shape[0]!;
        const baseAt = place.get(base.name);
        if (baseAt !== undefined) {
          initializer.push(tensorProto(init, { external: { path: WEIGHTS_FILE, offset: baseAt + init.view.first * rowBytes, length: byteLength(init) } }));
        } else {
          let whole = smallBases.get(base.name);
          if (!whole) smallBases.set(base.name, (whole = await checkedData(base)));
          const part = viewRows(whole, init);
          initializer.push(tensorProto(init, { rawData: new Uint8Array(part.buffer, part.byteOffset, part.byteLength) }));
        }
        continue;
      }
      const at = place.get(init.name);
      if (at !== undefined) {
        initializer.push(tensorProto(init, { external: { path: WEIGHTS_FILE, offset: at, length: byteLength(init) } }));
      } else {
        const typed = smallBases.get(init.name) ?? (await checkedData(init));
        initializer.push(tensorProto(init, { rawData: new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength) }));
      }
    }
    const weightBytes = end;
    return {
      model: this.encode(initializer),
      weightBytes,
      signature: this.signature(),
      writeWeights: async (path, onBytes) => {
        const file = await open(path, 'w');
        try {
          for (const init of external) {
            const typed = await checkedData(init);
            const at = place.get(init.name)!;
            await writeAll(file, new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength), at);
            onBytes?.(at + typed.byteLength, weightBytes); // initializers are written in file order
          }
          await file.truncate(weightBytes);
          await file.sync();
        } finally {
          await file.close();
        }
      },
    };
  }

  private signature(): GraphSignature {
    return { inputs: [...this.ins], outputs: [...this.outs] };
  }

  private encode(initializer: OnnxNs.ITensorProto[]): Uint8Array {
    const valueInfo = (v: { name: string; elemType: ElemType; shape: Dim[] }): OnnxNs.IValueInfoProto => ({
      name: v.name,
      type: {
        tensorType: {
          elemType: ELEM[v.elemType],
          shape: { dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
        },
      },
    });
    const model: OnnxNs.IModelProto = {
      irVersion: 10,
      producerName: 'qllm',
      opsetImport: Object.entries(this.opsets).map(([domain, version]) => ({ domain, version })),
      graph: {
        name: this.graphName,
        node: this.nodes,
        initializer,
        input: this.ins.map(valueInfo),
        output: this.outs.map(valueInfo),
      },
    };
    return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
  }
}

/** A view's rows of its base's data `whole`. */
function viewRows(whole: TypedArray, view: Initializer): TypedArray {
  const { base, first } = view.view!;
  const rowElems = whole.length / base.shape[0]!;
  return whole.subarray(first * rowElems, (first + view.shape[0]!) * rowElems);
}

/** An initializer's data, produced now and checked against its shape. */
async function checkedData(init: Initializer): Promise<TypedArray> {
  const typed = typeof init.data === 'function' ? await init.data() : init.data;
  const expected = init.shape.reduce((a, b) => a * b, 1);
  if (typed.length !== expected) throw new Error(`initializer '${init.name}': ${typed.length} elements for shape [${init.shape}]`);
  if (typed.byteLength !== byteLength(init)) throw new Error(`initializer '${init.name}': ${typed.byteLength} bytes for a [${init.shape}] ${init.elemType} tensor`);
  return typed;
}

function tensorProto(
  init: Initializer,
  where: { rawData: Uint8Array } | { external: { path: string; offset: number; length: number } },
): OnnxNs.ITensorProto {
  const tensor: OnnxNs.ITensorProto = { name: init.name, dataType: ELEM[init.elemType], dims: init.shape };
  if ('rawData' in where) {
    tensor.rawData = where.rawData;
  } else {
    tensor.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
    tensor.externalData = [
      { key: 'location', value: where.external.path },
      { key: 'offset', value: String(where.external.offset) },
      { key: 'length', value: String(where.external.length) },
    ];
  }
  return tensor;
}

/** Write all of `bytes` at `position` (a single write may be partial, and is limited to 2 GiB). */
async function writeAll(file: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  const CHUNK = 1 << 30;
  for (let done = 0; done < bytes.byteLength;) {
    const { bytesWritten } = await file.write(bytes, done, Math.min(CHUNK, bytes.byteLength - done), position + done);
    done += bytesWritten;
  }
}

function toAttr(name: string, v: AttrValue): OnnxNs.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (typeof v === 'number') {
    return Number.isInteger(v) ? { name, type: T.INT, i: v } : { name, type: T.FLOAT, f: v };
  }
  if ('float' in v) return { name, type: T.FLOAT, f: v.float };
  if ('floats' in v) return { name, type: T.FLOATS, floats: [...v.floats] };
  return { name, type: T.INTS, ints: [...(v as readonly number[])] };
}

function toTyped(elemType: ElemType, values: ArrayLike<number> | readonly bigint[]): TypedArray {
  const arr = Array.from(values as ArrayLike<number | bigint>);
  switch (elemType) {
    case 'float32': return Float32Array.from(arr as number[]);
    case 'int64': return BigInt64Array.from(arr.map((x) => BigInt(x)));
    case 'int32': return Int32Array.from(arr as number[]);
    case 'int8': return Int8Array.from(arr as number[]);
    case 'uint8':
    case 'bool': return Uint8Array.from(arr as number[]);
    default: throw new Error(`constant: unsupported element type ${elemType}`);
  }
}
