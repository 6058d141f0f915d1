// `exportGguf`: a float Hugging Face Qwen3 checkpoint folder → one GGUF file for llama.cpp / Ollama, F16 or Q8_0,
// streamed one tensor at a time (read, convert, write, drop).
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { CheckpointError, ConfigError, loadModelFolder, type ModelFolder } from '@qllm/core';
import { convertTensor } from './convert.js';
import { LlamaFileType, Q8_0_BLOCK, str, u32, type GgmlTypeName, type GgufTensorInfo, type GgufValue } from './format.js';
import { isNormTensor, QWEN3_ARCH, QWEN3_LAYER_TENSORS, qwen3Hparams, qwen3Shape, qwen3TensorName } from './qwen3.js';
import { tokenizerMetadata } from './vocab.js';
import { GgufFileWriter } from './writer.js';

export const GGUF_EXPORT_TYPES = ['f16', 'q8_0'] as const;
export type GgufExportType = (typeof GGUF_EXPORT_TYPES)[number];

/** ggml's GGML_QNT_VERSION, written as general.quantization_version. */
const GGML_QUANT_VERSION = 2;

export interface ExportGgufOptions {
  /** A Hugging Face Qwen3ForCausalLM folder with float (bf16, f16 or f32) weights, config.json and tokenizer.json. */
  model: string;
  /** The .gguf file to write (its folder must exist). */
  output: string;
  /** Weight type of the matrices: 'f16' (default) or 'q8_0'. Norms are F32 in both, as llama.cpp's converter writes them. */
  type?: GgufExportType;
  /** Replace an existing output file. Default false: an existing output is an error. */
  overwrite?: boolean;
  /** general.name; default the model folder's name. */
  name?: string;
  /** Told after each tensor is written. */
  onProgress?: (progress: { tensor: string; index: number; count: number; bytesWritten: number; totalBytes: number }) => void;
}

export interface ExportGgufResult {
  output: string;
  type: GgufExportType;
  /** Tensors written, in file order, with their GGUF names, dims (innermost first) and types. */
  tensors: GgufTensorInfo[];
  /** File size in bytes. */
  bytes: number;
  /** Notes for the user, e.g. matrices kept F16 in a Q8_0 file because their rows are not whole 32-blocks. */
  warnings: string[];
}

interface Planned extends GgufTensorInfo {
  hfName: string;
}

const FLOAT_DTYPES = new Set(['BF16', 'F16', 'F32']);

/** Writes the model folder as a GGUF file (atomically: nothing appears at `output` unless the export completes). */
export async function exportGguf(options: ExportGgufOptions): Promise<ExportGgufResult> {
  const type = options.type ?? 'f16';
  if (!(GGUF_EXPORT_TYPES as readonly string[]).includes(type)) {
    throw new ConfigError(`GGUF export type '${type}' is not supported (${GGUF_EXPORT_TYPES.join(', ')})`);
  }
  const output = path.resolve(options.output);
  await checkOutput(output, options.overwrite ?? false);

  const folder = await loadModelFolder(options.model);
  try {
    checkFloatQwen3(folder);
    const shape = qwen3Shape(folder.config, folder.configFile);
    const warnings: string[] = [];
    const plan = planTensors(folder, type, warnings);
    if (!folder.tokenizer) throw new ConfigError(`${folder.dir}: no tokenizer.json: a GGUF file carries the tokenizer, so the folder needs one`);
    const metadata = new Map<string, GgufValue>([
      ['general.architecture', str(QWEN3_ARCH)],
      ['general.type', str('model')],
      ['general.name', str(options.name ?? path.basename(path.resolve(folder.dir)))],
      ...qwen3Hparams(folder.config, folder.configFile),
      ['general.file_type', u32(type === 'q8_0' ? LlamaFileType.MOSTLY_Q8_0 : LlamaFileType.MOSTLY_F16)],
      ['general.quantization_version', u32(GGML_QUANT_VERSION)],
      ...(await tokenizerMetadata(folder.dir, folder.tokenizer, folder.config, shape.vocabSize)),
    ]);

    const writer = await GgufFileWriter.create(output, metadata, plan);
    try {
      const totalBytes = writer.tensors.reduce((n, t) => n + t.bytes, 0);
      for (const [index, t] of plan.entries()) {
        const data = await folder.checkpoint.read(t.hfName); // held for this iteration only
        await writer.writeTensor(t.name, (write) => convertTensor(t.hfName, data, t.type, t.dims[0]!, write));
        options.onProgress?.({ tensor: t.name, index, count: plan.length, bytesWritten: writer.bytesWritten, totalBytes });
      }
      await writer.finish({ overwrite: options.overwrite });
    } catch (e) {
      await writer.abort();
      throw e;
    }
    const { size } = await stat(output);
    return { output, type, tensors: plan.map(({ name, dims, type: t }) => ({ name, dims, type: t })), bytes: size, warnings };
  } finally {
    await folder.checkpoint.close();
  }
}

async function checkOutput(output: string, overwrite: boolean): Promise<void> {
  const dir = path.dirname(output);
  let isDir = false;
  try {
    isDir = (await stat(dir)).isDirectory();
  } catch {
    // reported below
  }
  if (!isDir) throw new ConfigError(`${output}: the output's folder ${dir} does not exist`);
  let exists: boolean;
  try {
    const s = await stat(output);
    if (s.isDirectory()) throw new ConfigError(`${output}: is a folder; give the path of the .gguf file to write`);
    exists = true;
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    exists = false;
  }
  if (exists && !overwrite) throw new ConfigError(`${output}: already exists (pass overwrite to replace it)`);
}

/** A Qwen3ForCausalLM folder with float weights; a quantized folder is an error that says what to export instead. */
function checkFloatQwen3(folder: ModelFolder): void {
  const { config, configFile } = folder;
  const quant = config.quantization_config;
  if (quant !== undefined && quant !== null) {
    const method = typeof quant === 'object' && !Array.isArray(quant) ? (quant as Record<string, unknown>).quant_method : undefined;
    throw new ConfigError(
      `${configFile}: this is a quantized checkpoint (quantization_config${typeof method === 'string' ? `: ${method}` : ''}); ` +
        `GGUF export reads float (bf16/f16/f32) checkpoints: export the float folder it was quantized from instead ` +
        `(with --type q8_0 for an 8-bit GGUF)`,
    );
  }
  const archs = Array.isArray(config.architectures) ? config.architectures : [];
  if (!archs.includes('Qwen3ForCausalLM') && config.model_type !== 'qwen3') {
    throw new ConfigError(`${configFile}: architectures ${JSON.stringify(config.architectures)}: GGUF export supports Qwen3ForCausalLM only`);
  }
  for (const name of folder.checkpoint.names()) {
    const info = folder.checkpoint.info(name);
    if (!FLOAT_DTYPES.has(info.dtype)) {
      throw new CheckpointError(
        `${info.file}: tensor '${name}' is ${info.dtype}, not a float: GGUF export reads float (bf16/f16/f32) checkpoints; ` +
          `if this folder is quantized, export the float folder it was quantized from instead`,
        info.file,
        name,
      );
    }
  }
}

/** GGUF tensor order: token_embd, each block's tensors in llama.cpp's order, output_norm, output. */
function orderKey(name: string): [number, number, string] {
  if (name === 'token_embd.weight') return [0, 0, name];
  const m = /^blk\.(\d+)\.(.+)$/.exec(name);
  if (m) return [1, Number(m[1]), String(BLOCK_ORDER.indexOf(m[2]!)).padStart(2, '0')];
  return [2, name === 'output_norm.weight' ? 0 : 1, name];
}
const BLOCK_ORDER = Object.values(QWEN3_LAYER_TENSORS);

function planTensors(folder: ModelFolder, type: GgufExportType, warnings: string[]): Planned[] {
  const { checkpoint, config, configFile } = folder;
  const { numLayers, hiddenSize, vocabSize, tied } = qwen3Shape(config, configFile);
  const plan: Planned[] = [];
  for (const hfName of checkpoint.names()) {
    const name = qwen3TensorName(hfName, numLayers);
    if (name === undefined) continue;
    // Tied: llama.cpp uses token_embd for the head when output.weight is absent (a tied checkpoint's lm_head.weight,
    // if present, is a copy of the embedding).
    if (name === 'output.weight' && tied) continue;
    const info = checkpoint.info(hfName);
    const dims = [...info.shape].reverse();
    let t: GgmlTypeName = dims.length <= 1 || isNormTensor(name) ? 'F32' : type === 'q8_0' ? 'Q8_0' : 'F16';
    if (t === 'Q8_0' && dims[0]! % Q8_0_BLOCK !== 0) {
      warnings.push(`${name}: rows of ${dims[0]} values are not whole ${Q8_0_BLOCK}-blocks, written as F16`);
      t = 'F16';
    }
    plan.push({ hfName, name, dims, type: t });
  }

  const byName = new Map(plan.map((p) => [p.name, p]));
  const expect = (name: string, hf: string, dims?: number[]) => {
    const p = byName.get(name);
    if (!p) throw new CheckpointError(`${checkpoint.path}: tensor '${hf}' is missing (needed for GGUF '${name}')`, checkpoint.path, hf);
    if (dims && (p.dims.length !== dims.length || p.dims.some((d, i) => d !== dims[i]))) {
      throw new CheckpointError(
        `${checkpoint.path}: tensor '${hf}' has shape [${[...p.dims].reverse().join(', ')}], config.json says [${[...dims].reverse().join(', ')}]`,
        checkpoint.path,
        hf,
      );
    }
  };
  expect('token_embd.weight', 'model.embed_tokens.weight', [hiddenSize, vocabSize]);
  expect('output_norm.weight', 'model.norm.weight', [hiddenSize]);
  if (!tied) expect('output.weight', 'lm_head.weight', [hiddenSize, vocabSize]);
  for (let l = 0; l < numLayers; l++) {
    for (const [hf, gguf] of Object.entries(QWEN3_LAYER_TENSORS)) expect(`blk.${l}.${gguf}`, `model.layers.${l}.${hf}`);
  }

  return plan.sort((a, b) => {
    const [x, y] = [orderKey(a.name), orderKey(b.name)];
    return x[0] - y[0] || x[1] - y[1] || x[2].localeCompare(y[2]);
  });
}
