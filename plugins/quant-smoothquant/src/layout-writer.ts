/**
 * What quantize() asks of a checkpoint layout: names and tensors for a quantized layer, the runtime lowering of its
 * linears (to check the layer as it will run), the output entries, and the config and description files.
 * compressed-tensors ('cpu' target) and Golden Stick ('ascend') implement it.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { HostTensor, LinearMethodV1, LinearSpec, TensorEntry } from '@qllm/core';
import { buildQuantizationConfig, COMPRESSED_TENSORS_SUFFIX } from './compressed-tensors.js';
import {
  DESCRIPTION_FILE, descriptionValue, GOLDEN_STICK_SUFFIX, goldenStickDynamicLinear, goldenStickLinearTensors, goldenStickStaticLinear, type DescriptionValue,
} from './golden-stick.js';
import { dynamicPerTokenInt8Linear, staticInt8Linear } from './int8-linear.js';
import type { NameTable } from './name-table.js';
import type { LinearScheme, QuantizedLayer, SmoothingPlacement } from './quantize-layer.js';

/** Copies a source tensor (HF name) into the output, optionally under another name. */
export type CopyEntry = (name: string, as?: string) => TensorEntry;

export interface LayoutWriter {
  readonly name: 'compressed-tensors' | 'golden-stick';
  readonly smoothing: SmoothingPlacement;
  readonly warnings: string[];
  /** The tensors of one quantized layer, named as written (and as the runtime reads them). */
  layerTensors(q: QuantizedLayer): Map<string, HostTensor>;
  /** How the runtime lowers this linear of the layer just quantized (null: float). */
  linearMethod(layer: LinearSpec, q: QuantizedLayer): LinearMethodV1 | null;
  /** Output entries for source tensors (HF names), given the layer's tensors (empty outside the layers). */
  entries(names: string[], tensors: Map<string, HostTensor>, schemes: ReadonlyMap<string, LinearScheme>, copy: CopyEntry): TensorEntry[];
  /** config.json and the layout's description files. */
  finish(dir: string, floatConfig: Record<string, unknown>, schemes: Map<string, LinearScheme>, extra: Record<string, unknown>): Promise<void>;
}

const writeJson = (file: string, value: unknown) => fs.writeFile(file, `${JSON.stringify(value, null, 2)}\n`);

/** compressed-tensors int-quantized W8A8: HF names, smoothing folded, `quantization_config` in config.json. */
export function compressedTensorsWriter(): LayoutWriter {
  const S = COMPRESSED_TENSORS_SUFFIX;
  const methods = { static: staticInt8Linear, dynamic: dynamicPerTokenInt8Linear } as const;
  return {
    name: 'compressed-tensors',
    smoothing: 'fold',
    warnings: [],
    layerTensors(q) {
      const out = new Map(q.tensors);
      for (const [name, l] of q.linears) {
        out.set(`${name}${S.weight}`, { dtype: 'I8', shape: [l.spec.outFeatures, l.spec.inFeatures], data: l.weight });
        out.set(`${name}${S.weightScale}`, { dtype: 'F32', shape: [l.spec.outFeatures, 1], data: Float32Array.from(l.weightScale) });
        if (l.activation) {
          out.set(`${name}${S.inputScale}`, { dtype: 'F32', shape: [1], data: Float32Array.of(l.activation.scale) });
          out.set(`${name}${S.inputZeroPoint}`, { dtype: 'I8', shape: [1], data: Int8Array.of(l.activation.zeroPoint) });
        }
      }
      return out;
    },
    linearMethod(layer, q) {
      const l = q.linears.get(layer.name);
      return l ? methods[l.scheme] : null;
    },
    entries(names, tensors, _schemes, copy) {
      const entries: TensorEntry[] = [];
      for (const n of names) {
        const replaced = tensors.get(n);
        entries.push(replaced ? { name: n, ...replaced } : copy(n));
        const base = n.endsWith(S.weight) ? n.slice(0, -S.weight.length) : undefined;
        for (const extra of [S.weightScale, S.inputScale, S.inputZeroPoint]) {
          const t = base !== undefined ? tensors.get(`${base}${extra}`) : undefined;
          if (t) entries.push({ name: `${base}${extra}`, ...t });
        }
      }
      return entries;
    },
    async finish(dir, floatConfig, schemes, extra) {
      await writeJson(path.join(dir, 'config.json'), { ...floatConfig, quantization_config: buildQuantizationConfig(schemes, extra) });
    },
  };
}

/** Golden Stick / MindFormers (golden-stick.ts): MindFormers names, per-linear smoothing, quantization_description.json. */
export function goldenStickWriter(table: NameTable, options: { tiedEmbeddings: boolean }): LayoutWriter {
  const description: Record<string, DescriptionValue> = {};
  const warnings: string[] = [];
  const moduleOf = (hf: string) => {
    const e = table.hf(hf);
    if (!e || e.kind !== 'linear') throw new Error(`${hf}: not a linear layer of the architecture's name table`);
    return e.mindformers;
  };
  return {
    name: 'golden-stick',
    smoothing: 'per-linear',
    warnings,
    layerTensors(q) {
      const out = new Map<string, HostTensor>();
      for (const [name, l] of q.linears) {
        for (const [n, t] of goldenStickLinearTensors(l, moduleOf(name))) out.set(n, t);
      }
      return out;
    },
    linearMethod(layer, q) {
      const l = q.linears.get(layer.name);
      if (!l) return null;
      return l.scheme === 'static' ? goldenStickStaticLinear(moduleOf(layer.name), l.activation!.zeroPoint) : goldenStickDynamicLinear(moduleOf(layer.name));
    },
    entries(names, tensors, schemes, copy) {
      const entries: TensorEntry[] = [];
      const add = (e: TensorEntry, value: DescriptionValue) => {
        entries.push(e);
        description[e.name] = value;
      };
      for (const n of names) {
        const tensor = table.hf(n);
        if (tensor?.kind === 'tensor') {
          add(copy(n, tensor.mindformers), 'FLOAT');
          continue;
        }
        const linear = n.endsWith('.weight') ? table.hf(n.slice(0, -'.weight'.length)) : undefined;
        if (linear?.kind !== 'linear') {
          warnings.push(`${n}: not in the architecture's name table; written under its Hugging Face name`);
          add(copy(n), 'FLOAT');
          continue;
        }
        const scheme = schemes.get(linear.hf) ?? 'float';
        if (scheme === 'float') {
          // A tied head is the embedding: MindFormers saves the shared parameter once, under the embedding's name.
          if (linear.logical === 'lm_head' && options.tiedEmbeddings) continue;
          add(copy(n, `${linear.mindformers}${GOLDEN_STICK_SUFFIX.floatWeight}`), 'FLOAT');
          continue;
        }
        const prefix = `${linear.mindformers}.`;
        for (const [name, t] of tensors) if (name.startsWith(prefix)) add({ name, ...t }, descriptionValue(scheme));
      }
      return entries;
    },
    async finish(dir, floatConfig) {
      await writeJson(path.join(dir, 'config.json'), floatConfig);
      await writeJson(path.join(dir, DESCRIPTION_FILE), description);
    },
  };
}
