/**
 * SmoothQuant A8W8, offline: calibrate a float checkpoint layer by layer, smooth, quantize to int8, and write the
 * target's layout — compressed-tensors W8A8 for backend 'cpu', Golden Stick's MindFormers layout for 'ascend'
 * (layout-writer.ts) — (atomically: a temporary folder renamed at the end, under an exclusive lock on the
 * output, never clobbering a folder that appeared meanwhile; see output-folder.ts).
 * Memory stays about one decoder layer plus the calibration activations.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import {
  backends, ConfigError, loadModelFolder, recognizeFolder, resolveArchitecture, ShardedSafetensorsWriter, toFloat32,
  type HostTensor, type LinearSpec, type ModelFolder, type OfflineQuantizeOptionsV1, type OfflineQuantizeResultV1, type TensorEntry,
} from '@qllm/core';
import { loadCalibrationTexts } from './calibration-data.js';
import { endToEndFidelity, formatFidelityTable, relativeError, type FidelityReport } from './fidelity.js';
import { LayerSession, type ChannelRange } from './layer-session.js';
import { acquireOutputLock, cleanStaleFolders, exists, partialFolderName, publishFolder } from './output-folder.js';
import { OverlaySource } from './overlay-source.js';
import { defaultSmoothQuantPreset, parsePtqConfig, resolveLayerConfig, unusedPolicies, type PtqConfig } from './ptq-config.js';
import { quantizeLayer, type LinearScheme } from './quantize-layer.js';
import { compressedTensorsWriter, goldenStickWriter, type LayoutWriter } from './layout-writer.js';
import { NameTable } from './name-table.js';

export type QuantizeOptions = OfflineQuantizeOptionsV1;

export interface QuantizeResult extends OfflineQuantizeResultV1 {
  fidelity: FidelityReport;
}

export async function quantize(options: QuantizeOptions): Promise<QuantizeResult> {
  const start = performance.now();
  const ptq = options.config === undefined && options.layerPolicies === undefined ? defaultSmoothQuantPreset()
    : parsePtqConfig({ ...options.config, ...(options.layerPolicies && { layerPolicies: options.layerPolicies }) });
  if (ptq.mode !== 'quantize') throw new ConfigError(`PTQ config mode '${ptq.mode}': quantize() needs mode 'quantize'`);
  const output = path.resolve(options.output);
  const lock = await acquireOutputLock(output);
  try {
    return await quantizeLocked(options, ptq, output, start);
  } finally {
    await lock.release();
  }
}

/** The work, under the output lock. */
async function quantizeLocked(options: QuantizeOptions, ptq: PtqConfig, output: string, start: number): Promise<QuantizeResult> {
  const log = options.log ?? (() => undefined);
  await cleanStaleFolders(output, log);
  if (await exists(output) && !options.overwrite) throw new ConfigError(`${output} already exists (pass overwrite / --overwrite to replace it)`);

  const folder = await loadModelFolder(options.model);
  const tmp = partialFolderName(output);
  try {
    const { architecture, config } = await resolveArchitecture(folder);
    if (folder.config.quantization_config) throw new ConfigError(`${folder.configFile}: the model is already quantized`);
    const recognized = await recognizeFolder(undefined, folder, { architecture, config });
    if (recognized) throw new ConfigError(`${folder.dir}: the model is already quantized (${recognized.layout} layout)`);
    const tokenizer = folder.tokenizer;
    if (!tokenizer) throw new ConfigError(`${folder.dir}: no tokenizer.json, needed to tokenize the calibration data`);
    const backend = await backends.get(options.backend ?? 'cpu');

    // Calibration samples; the last tenth is held out for the fidelity report.
    const maxSeqLen = options.maxSeqLen ?? 512;
    const numSamples = options.numSamples ?? 200;
    const { files, ceval, texts: literal = [] } = options.calibration ?? {};
    const texts = [
      ...literal,
      ...(files?.length || ceval ? await loadCalibrationTexts({ files, ceval, numSamples }) : []),
    ];
    const samples = texts.slice(0, numSamples).map((t) => tokenizer.encode(t).slice(0, maxSeqLen)).filter((s) => s.length > 0);
    if (!samples.length) throw new ConfigError('no calibration samples: give calibration texts, files or a CEval folder');
    const nHeld = samples.length >= 2 ? Math.max(1, Math.floor(samples.length / 10)) : 0;
    const calib = samples.slice(0, samples.length - nHeld);
    const held = nHeld ? samples.slice(samples.length - nHeld) : calib;

    const layout: LayoutWriter = ptq.backend === 'ascend'
      ? goldenStickWriter(NameTable.of(architecture, config), { tiedEmbeddings: folder.config.tie_word_embeddings === true })
      : compressedTensorsWriter();
    const linears = architecture.linearLayers(config);
    const layerConfig = new Map(linears.map((l) => [l.name, resolveLayerConfig(ptq, l.name)]));
    const weightOnly = [...layerConfig].find(([, c]) => c.quantize && c.actQuantDtype === null);
    if (weightOnly) throw new ConfigError(`PTQ config: ${weightOnly[0]} has actQuantDtype null (weight-only A16W8), which SmoothQuant A8W8 does not write; use 'int8'`);
    const warnings = unusedPolicies(ptq, linears.map((l) => l.name)).map((r) => `layer policy '${r}' matches no layer`);
    warnings.forEach((w) => log(`warning: ${w}`));

    await fs.mkdir(tmp, { recursive: true });
    let [calibHidden, heldFloat] = await embedSamples(folder, architecture.embeddingWeight(config), [calib, held], config.hiddenSize);
    let heldQuant: Float32Array[] = heldFloat.map((h) => h.slice());

    // One shard for what lies outside the decoder layers, then one per layer, written as each is quantized.
    const writer = new ShardedSafetensorsWriter(tmp, config.numLayers + 1, { format: 'pt' });
    const layerPrefixes = Array.from({ length: config.numLayers }, (_, i) => commonPrefix(linears.filter((l) => l.layer === i).map((l) => l.name)));
    const outside = folder.checkpoint.names().filter((n) => !layerPrefixes.some((p) => n.startsWith(p)));
    const copy = (name: string, as?: string) => copyEntry(folder, name, as);
    await writer.writeShard(layout.entries(outside, new Map(), new Map(), copy));

    const schemes = new Map<string, LinearScheme>();
    const layerErrors: number[] = [];
    for (let i = 0; i < config.numLayers; i++) {
      const layerLinears = linears.filter((l) => l.layer === i);
      const common = { architecture, config, layer: i, backend, threads: options.threads };
      const float = await LayerSession.create({ ...common, checkpoint: folder.checkpoint, observe: true });
      const ranges = new Map<string, ChannelRange>();
      const nextCalib: Float32Array[] = [];
      for (const [s, h] of calibHidden.entries()) {
        nextCalib.push(await float.run(h, ranges));
        options.onProgress?.({ layer: i, numLayers: config.numLayers, sample: s + 1, numSamples: calib.length });
      }
      const floatOut: Float32Array[] = [];
      for (const h of heldFloat) floatOut.push(await float.run(h));
      await float.dispose();

      const q = await quantizeLayer({
        checkpoint: folder.checkpoint, linears: layerLinears, mappings: architecture.smoothMappings(config, i),
        configFor: (l: LinearSpec) => layerConfig.get(l.name)!, ranges, smoothing: layout.smoothing,
      });
      const tensors = layout.layerTensors(q);
      [...q.warnings, ...layout.warnings.splice(0)].forEach((w) => { warnings.push(w); log(`warning: ${w}`); });
      for (const [n, s] of q.schemes) schemes.set(n, s);

      // The layer as the runtime will run it, from the tensors about to be written.
      const quantSession = await LayerSession.create({
        ...common,
        checkpoint: new OverlaySource(folder.checkpoint, tensors),
        linearMethod: (l) => layout.linearMethod(l, q),
      });
      let num = 0;
      let den = 0;
      for (const [s, h] of heldFloat.entries()) {
        const e = relativeError(await quantSession.run(h), floatOut[s]!);
        num += e.num;
        den += e.den;
      }
      layerErrors.push(Math.sqrt(num / den));
      const nextQuant: Float32Array[] = [];
      for (const h of heldQuant) nextQuant.push(await quantSession.run(h));
      await quantSession.dispose();

      const names = folder.checkpoint.names().filter((n) => n.startsWith(layerPrefixes[i]!));
      const entries = layout.entries(names, tensors, q.schemes, copy);
      await writer.writeShard(entries);
      calibHidden = nextCalib;
      heldFloat = floatOut;
      heldQuant = nextQuant;
      log(`layer ${i}: relative output error ${layerErrors[i]!.toExponential(2)}`);
    }
    calibHidden = []; // not needed past the last layer: free it before the head's evaluation

    const e2e = await endToEndFidelity({ architecture, config, checkpoint: folder.checkpoint, backend, threads: options.threads }, heldFloat, heldQuant);
    const fidelity: FidelityReport = {
      method: 'SmoothQuant',
      calibrationSamples: calib.length,
      calibrationTokens: calib.reduce((a, s) => a + s.length, 0),
      heldOut: nHeld > 0,
      evalSamples: held.length,
      evalTokens: held.reduce((a, s) => a + s.length, 0),
      layers: layerErrors.map((relativeError, layer) => ({ layer, relativeError })),
      ...e2e,
      warnings,
      wallSeconds: (performance.now() - start) / 1000,
    };

    // Linears outside the decoder layers (the head) stay float.
    for (const l of linears) if (!schemes.has(l.name)) schemes.set(l.name, 'float');
    await layout.finish(tmp, folder.config, schemes, { qllm: { method: 'SmoothQuant', ptq_config: ptq } });
    layout.warnings.forEach((w) => { warnings.push(w); log(`warning: ${w}`); });
    await writer.finish();
    await fs.writeFile(path.join(tmp, 'fidelity.json'), `${JSON.stringify(fidelity, null, 2)}\n`);
    await copyOtherFiles(folder.dir, tmp);
    await publishFolder(tmp, output, Boolean(options.overwrite));
    return { output, fidelity, report: fidelity as unknown as Record<string, unknown>, summary: formatFidelityTable(fidelity), warnings };
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    await folder.checkpoint.close();
  }
}

function copyEntry(folder: ModelFolder, name: string, as = name): TensorEntry {
  const info = folder.checkpoint.info(name);
  return { name: as, dtype: info.dtype, shape: info.shape, data: async () => (await folder.checkpoint.read(name)).data };
}

/** Decoder layer 0's inputs: per sample, rows of the embedding matrix as float32 [tokens, hidden]. */
async function embedSamples(folder: ModelFolder, name: string, sets: [number[][], number[][]], hidden: number): Promise<[Float32Array[], Float32Array[]]> {
  const embed = await folder.checkpoint.read(name); // dropped on return: never kept through calibration
  const rows = (samples: number[][]) => samples.map((ids) => {
    const out = new Float32Array(ids.length * hidden);
    ids.forEach((id, t) => {
      const row = { ...embed, shape: [hidden], data: embed.data.subarray(id * hidden, (id + 1) * hidden) } as HostTensor;
      out.set(toFloat32(row), t * hidden);
    });
    return out;
  });
  return [rows(sets[0]), rows(sets[1])];
}

/** The dotted prefix shared by names (e.g. 'model.layers.3.'). */
function commonPrefix(names: string[]): string {
  let p = names[0] ?? '';
  for (const n of names) while (!n.startsWith(p)) p = p.slice(0, -1);
  return p.slice(0, p.lastIndexOf('.') + 1);
}

/** Tokenizer files, generation_config.json, chat template…: everything but weights and config.json. */
async function copyOtherFiles(from: string, to: string): Promise<void> {
  for (const entry of await fs.readdir(from, { withFileTypes: true })) {
    if (!entry.isFile() || entry.name === 'config.json' || entry.name.endsWith('.safetensors') || entry.name === 'model.safetensors.index.json') continue;
    await fs.copyFile(path.join(from, entry.name), path.join(to, entry.name));
  }
}
