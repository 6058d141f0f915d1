/**
 * The offline half: float model folder → weight-only int8 folder. Round-to-nearest needs no calibration data and no
 * backend; it streams the checkpoint one tensor at a time (the safetensors writer asks for each tensor's bytes only
 * when it writes them), into a temporary folder next to the output that is renamed into place at the end.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import {
  CheckpointError, ConfigError, loadModelFolder, readJsonFile, resolveArchitecture, showJson, toFloat32, writeShardedSafetensors,
  type LinearSpec, type ModelFolder, type OfflineQuantizeOptionsV1, type OfflineQuantizeResultV1, type TensorEntry,
} from '@qllm/core';
import { buildQuantizationConfig } from './quantization-config.js';
import { quantizeRowsRtn } from './rtn.js';

/** The method's own options (OfflineQuantizeOptionsV1.config). */
export interface WeightOnlyInt8Options {
  /** Linear layers to keep float, by name (the head is always kept). */
  ignore?: string[];
  /** Split the checkpoint into shards of at most this many bytes (default 5 GB, as transformers' save_pretrained). */
  maxShardBytes?: number;
}

export interface WeightOnlyInt8Report {
  method: string;
  quantized: number;
  float: string[];
  /** Bytes of the linear weights before and after. */
  linearBytes: { before: number; after: number };
  /** Per quantized linear, ‖W − q·s‖ / ‖W‖. */
  relativeErrors: Record<string, number>;
  wallSeconds: number;
}

const DEFAULT_MAX_SHARD_BYTES = 5e9;
const OPTION_KEYS = new Set(['ignore', 'maxShardBytes']);

function parseOptions(config: Record<string, unknown> | undefined): Required<WeightOnlyInt8Options> {
  const c = config ?? {};
  const unknown = Object.keys(c).filter((k) => !OPTION_KEYS.has(k));
  if (unknown.length) throw new ConfigError(`weight-only int8 config: unknown option(s) ${unknown.join(', ')} (known: ${[...OPTION_KEYS].join(', ')})`);
  const { ignore = [], maxShardBytes = DEFAULT_MAX_SHARD_BYTES } = c as WeightOnlyInt8Options;
  if (!Array.isArray(ignore) || !ignore.every((n) => typeof n === 'string')) {
    throw new ConfigError(`weight-only int8 config: 'ignore' must be an array of layer names, got ${showJson(ignore)}`);
  }
  if (!(typeof maxShardBytes === 'number' && maxShardBytes > 0)) {
    throw new ConfigError(`weight-only int8 config: 'maxShardBytes' must be a positive number, got ${showJson(maxShardBytes)}`);
  }
  return { ignore, maxShardBytes };
}

export async function quantizeWeightOnlyInt8(options: OfflineQuantizeOptionsV1, methodName: string): Promise<OfflineQuantizeResultV1> {
  const start = performance.now();
  const log = options.log ?? (() => undefined);
  const { ignore, maxShardBytes } = parseOptions(options.config);
  if (options.layerPolicies) throw new ConfigError(`${methodName}: layerPolicies are not supported (use config.ignore to keep layers float)`);
  const warnings: string[] = [];
  if (options.calibration) warnings.push(`${methodName} is round-to-nearest: the calibration data is not used`);
  warnings.forEach((w) => log(`warning: ${w}`));

  const model = path.resolve(options.model);
  const output = path.resolve(options.output);
  if (output === model) throw new ConfigError(`${output}: the output folder must differ from the model folder`);
  if (await exists(output) && !options.overwrite) throw new ConfigError(`${output} already exists (pass overwrite to replace it)`);

  const folder = await loadModelFolder(model);
  const tmp = `${output}.partial-${process.pid}-${randomUUID().slice(0, 8)}`;
  try {
    if (folder.config.quantization_config) throw new ConfigError(`${folder.configFile}: the model is already quantized`);
    const { architecture, config } = await resolveArchitecture(folder);
    const linears = architecture.linearLayers(config);
    const unknownIgnored = ignore.filter((n) => !linears.some((l) => l.name === n));
    if (unknownIgnored.length) throw new ConfigError(`weight-only int8 config: 'ignore' names no linear layer: ${unknownIgnored.join(', ')}`);
    // Decoder linears with a weight of their own; the head (layer −1, tied or not) stays float.
    const targets = new Map(linears.filter((l) => l.layer >= 0 && l.weight === undefined && !ignore.includes(l.name)).map((l) => [`${l.name}.weight`, l]));
    const kept = linears.filter((l) => !targets.has(`${l.name}.weight`)).map((l) => l.name);

    for (const name of targets.keys()) folder.checkpoint.info(name); // a missing one: the reader's CheckpointError

    const report: WeightOnlyInt8Report = {
      method: methodName, quantized: targets.size, float: kept, linearBytes: { before: 0, after: 0 }, relativeErrors: {}, wallSeconds: 0,
    };
    const entries: TensorEntry[] = [];
    for (const name of folder.checkpoint.names()) {
      const layer = targets.get(name);
      if (layer) entries.push(...quantizedEntries(folder, layer, report, (l) => options.onProgress?.({ layer: l, numLayers: config.numLayers, sample: 0, numSamples: 0 })));
      else entries.push(copyEntry(folder, name));
    }

    await fs.mkdir(tmp, { recursive: true });
    await writeShardedSafetensors(tmp, entries, { maxShardBytes, metadata: { format: 'pt' } });
    const raw = await readJsonFile(folder.configFile, 'model config'); // as written, not normalised
    const quantizationConfig = buildQuantizationConfig(kept);
    await fs.writeFile(path.join(tmp, 'config.json'), `${JSON.stringify({ ...raw, quantization_config: quantizationConfig }, null, 2)}\n`);
    report.wallSeconds = (performance.now() - start) / 1000;
    await fs.writeFile(path.join(tmp, 'quantization_report.json'), `${JSON.stringify(report, null, 2)}\n`);
    await copyOtherFiles(folder.dir, tmp);
    await publish(tmp, output, Boolean(options.overwrite));
    const summary = formatSummary(report);
    log(summary);
    return { output, report: report as unknown as Record<string, unknown>, summary, warnings };
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    await folder.checkpoint.close();
  }
}

/**
 * `<name>.weight` int8 and `<name>.weight_scale` float32, both lazy: the weight's entry reads the float matrix and
 * quantizes it when the writer reaches it, and leaves the scale for the very next entry.
 */
function quantizedEntries(folder: ModelFolder, layer: LinearSpec, report: WeightOnlyInt8Report, progress: (layer: number) => void): TensorEntry[] {
  const name = `${layer.name}.weight`;
  const { outFeatures: out, inFeatures: inF } = layer;
  const info = folder.checkpoint.info(name);
  if (info.shape.length !== 2 || info.shape[0] !== out || info.shape[1] !== inF) {
    throw new CheckpointError(`${info.file}: tensor '${name}' has shape [${info.shape.join(', ')}] but config.json implies [${out}, ${inF}]`, info.file, name);
  }
  if (!['F32', 'BF16', 'F16', 'F64'].includes(info.dtype)) {
    throw new CheckpointError(`${info.file}: tensor '${name}' has dtype ${info.dtype}, expected a float dtype`, info.file, name);
  }
  let scale: Float32Array | undefined;
  const quantizeNow = async () => {
    const t = await folder.checkpoint.read(name);
    let r;
    try {
      r = quantizeRowsRtn(toFloat32(t), out, inF);
    } catch (e) {
      throw new CheckpointError(`${info.file}: tensor '${name}': ${(e as Error).message}`, info.file, name, { cause: e });
    }
    report.linearBytes.before += t.data.byteLength;
    report.linearBytes.after += r.q.byteLength + r.scale.byteLength;
    report.relativeErrors[layer.name] = r.relativeError;
    progress(layer.layer);
    scale = r.scale;
    return r.q;
  };
  return [
    { name, dtype: 'I8', shape: [out, inF], data: quantizeNow },
    {
      name: `${layer.name}.weight_scale`, dtype: 'F32', shape: [out],
      data: async () => {
        if (!scale) await quantizeNow(); // only if a writer ever reorders entries
        const s = scale!;
        scale = undefined;
        return s;
      },
    },
  ];
}

function copyEntry(folder: ModelFolder, name: string): TensorEntry {
  const info = folder.checkpoint.info(name);
  return { name, dtype: info.dtype, shape: info.shape, data: async () => (await folder.checkpoint.read(name)).data };
}

/** Tokenizer files, generation_config.json, chat template…: every file but the weights and config.json. */
async function copyOtherFiles(from: string, to: string): Promise<void> {
  for (const entry of await fs.readdir(from, { withFileTypes: true })) {
    if (!entry.isFile() || entry.name === 'config.json' || entry.name.endsWith('.safetensors') || entry.name === 'model.safetensors.index.json') continue;
    await fs.copyFile(path.join(from, entry.name), path.join(to, entry.name));
  }
}

/**
 * Rename the finished folder into place. Without overwrite, the name is claimed with mkdir (which fails if anything
 * appeared meanwhile) and the folder renamed onto that empty directory; with it, the old folder is moved aside first
 * and removed last. No lock is taken: two runs writing the same output at once are not guarded against.
 */
async function publish(tmp: string, output: string, overwrite: boolean): Promise<void> {
  if (!overwrite) {
    try {
      await fs.mkdir(output);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new ConfigError(`${output} appeared while quantizing: nothing was replaced (pass overwrite to replace it)`);
      throw e;
    }
    await fs.rename(tmp, output);
    return;
  }
  const old = `${output}.old-${process.pid}-${randomUUID().slice(0, 8)}`;
  const hadOld = await fs.rename(output, old).then(() => true, (e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return false;
    throw e;
  });
  try {
    await fs.rename(tmp, output);
  } catch (e) {
    if (hadOld) await fs.rename(old, output).catch(() => undefined);
    throw e;
  }
  if (hadOld) await fs.rm(old, { recursive: true, force: true });
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(() => true, () => false);
}

function formatSummary(r: WeightOnlyInt8Report): string {
  const mb = (b: number) => `${(b / 1e6).toFixed(2)} MB`;
  const worst = Object.entries(r.relativeErrors).sort((a, b) => b[1] - a[1])[0];
  return [
    `${r.method}: ${r.quantized} linear layers → int8 (symmetric, per output channel); kept float: ${r.float.join(', ') || 'none'}`,
    `linear weights ${mb(r.linearBytes.before)} → ${mb(r.linearBytes.after)}`,
    worst ? `largest relative weight error ${worst[1].toExponential(2)} (${worst[0]})` : 'no layer quantized',
  ].join('\n');
}
