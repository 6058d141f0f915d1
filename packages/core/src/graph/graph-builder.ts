import { createRequire } from 'node:module';
import type { onnx as OnnxNs } from 'onnx-proto';
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

export interface BuiltModel {
  /** Serialized ModelProto (weights are not inside it). */
  model: Uint8Array;
  /** External data for the large initializers, as onnxruntime's `sessionOptions.externalData` wants it. */
  externalData: Array<{ path: string; data: Uint8Array }>;
  inputs: Array<{ name: string; elemType: ElemType; shape: Dim[] }>;
  outputs: Array<{ name: string; elemType: ElemType; shape: Dim[] }>;
}

interface Initializer {
  name: string;
  elemType: ElemType;
  shape: number[];
  data: InitializerData;
}

/** Initializers of at most this many bytes are stored inside the ModelProto. */
const INLINE_BYTES = 4096;

/**
 * Builds an ONNX graph from TypeScript. Values are named strings; every op returns fresh, unique names.
 * Large initializers become external data that onnxruntime reads from memory, so nothing touches disk.
 */
export class GraphBuilder {
  private readonly nodes: OnnxNs.INodeProto[] = [];
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

  /** Mark `value` as a graph output called `name` (an Identity is added when the names differ). */
  output(value: string, name: string, elemType: ElemType, shape: Dim[]): void {
    if (value !== name) {
      this.claim(name);
      this.nodes.push({ opType: 'Identity', input: [value], output: [name], name: `${name}/Identity` });
    }
    this.outs.push({ name, elemType, shape });
  }

  /** A named initializer (a weight); `data` may be a function, called once when the model is built. */
  initializer(name: string, elemType: ElemType, shape: number[], data: InitializerData): string {
    this.inits.push({ name: this.claim(name), elemType, shape, data });
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

  /** Serialize: materialise every initializer once, the large ones as external data. */
  async build(): Promise<BuiltModel> {
    const initializer: OnnxNs.ITensorProto[] = [];
    const externalData: BuiltModel['externalData'] = [];
    for (const init of this.inits) {
      const typed = typeof init.data === 'function' ? await init.data() : init.data;
      const expected = init.shape.reduce((a, b) => a * b, 1);
      if (typed.length !== expected) {
        throw new Error(`initializer '${init.name}': ${typed.length} elements for shape [${init.shape}]`);
      }
      const bytes = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
      const tensor: OnnxNs.ITensorProto = { name: init.name, dataType: ELEM[init.elemType], dims: init.shape };
      if (bytes.byteLength <= INLINE_BYTES) {
        tensor.rawData = bytes;
      } else {
        const path = `w${externalData.length}.bin`;
        externalData.push({ path, data: bytes });
        tensor.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
        tensor.externalData = [
          { key: 'location', value: path },
          { key: 'offset', value: '0' },
          { key: 'length', value: String(bytes.byteLength) },
        ];
      }
      initializer.push(tensor);
    }
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
    return {
      model: onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish(),
      externalData,
      inputs: [...this.ins],
      outputs: [...this.outs],
    };
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
