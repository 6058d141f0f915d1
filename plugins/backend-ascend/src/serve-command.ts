/**
 * The vLLM-MindSpore command that serves a model folder (reference/golden-stick.md §4; vllm-mindspore's
 * `vllm-mindspore serve`, its `--quantization golden-stick|ascend` methods and its VLLM_MS_MODEL_BACKEND variable):
 *
 *   VLLM_MS_MODEL_BACKEND=MindFormers vllm-mindspore serve /abs/Qwen3-8B-A8W8 --quantization golden-stick --port 8000
 *
 * The folder says which flags: a Golden Stick checkpoint (quantization_description.json) is `golden-stick`, an
 * msModelSlim one (quant_model_description.json) is `ascend`, a float one needs none. Golden Stick's MindFormers
 * tensor names (attention.wq, feed_forward.w1, ...) are read by the MindFormers model backend (MCore renames them),
 * HF names by the Native one. vLLM-MindSpore has no compressed-tensors method, so a folder qllm quantized for the CPU
 * cannot be served there: `qllm quantize --backend ascend` writes the Golden Stick layout instead.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '@qllm/core';

export type FolderLayout =
  | { kind: 'float' }
  | { kind: 'golden-stick'; names: 'mindformers' | 'hf'; description: string }
  | { kind: 'modelslim'; description: string }
  | { kind: 'compressed-tensors' }
  | { kind: 'other-quantization'; method: string };

async function readJson(file: string): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const value = JSON.parse(text) as unknown;
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch (e) {
    throw new ConfigError(`${file}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
}

const MINDFORMERS_NAME = /(^|\.)(attention\.w[qkvo]|feed_forward\.w[123]|tok_embeddings|norm_out|attention_norm|ffn_norm)(\.|$)/;

/** Which checkpoint layout a folder holds, from its small JSON files only (never the weights). */
export async function inspectFolder(dir: string): Promise<FolderLayout> {
  const gs = path.join(dir, 'quantization_description.json');
  const description = await readJson(gs);
  if (description) {
    const names = Object.keys(description).some((k) => MINDFORMERS_NAME.test(k)) ? 'mindformers' : 'hf';
    return { kind: 'golden-stick', names, description: gs };
  }
  for (const file of ['quant_model_description.json', 'quant_model_description_w8a8sc.json']) {
    if (await readJson(path.join(dir, file))) return { kind: 'modelslim', description: path.join(dir, file) };
  }
  const config = await readJson(path.join(dir, 'config.json'));
  const q = config?.quantization_config as Record<string, unknown> | undefined;
  if (!q) return { kind: 'float' };
  const method = String(q.quant_method ?? 'unknown');
  return method === 'compressed-tensors' ? { kind: 'compressed-tensors' } : { kind: 'other-quantization', method };
}

/** A command line: program, arguments, and the environment variables it needs on top of the caller's. */
export interface ServeCommand {
  command: string;
  args: string[];
  env: Record<string, string>;
}

export interface ServeCommandOptions {
  host?: string;
  port?: number;
  servedModelName?: string;
  maxModelLen?: number;
  maxNumSeqs?: number;
  seed?: number;
  maxLogprobs?: number;
  /** More `vllm serve` flags, appended as given (e.g. ['--tensor-parallel-size', '2']). */
  extraArgs?: readonly string[];
  /** The program (default 'vllm-mindspore'). */
  command?: string;
}

/** Why vLLM-MindSpore cannot serve this layout, or undefined when it can. */
export function unservableReason(layout: FolderLayout): string | undefined {
  if (layout.kind === 'compressed-tensors') {
    return "it is a compressed-tensors checkpoint (qllm's CPU layout), and vLLM-MindSpore's quantization methods are " +
      "'golden-stick' and 'ascend': write the Golden Stick layout with `qllm quantize --backend ascend`, or serve the float folder";
  }
  if (layout.kind === 'other-quantization') return `vLLM-MindSpore has no quantization method for quant_method '${layout.method}'`;
  return undefined;
}

/** `vllm-mindspore serve <dir> ...` for this folder (absolute path), with the environment its layout needs. */
export function vllmMindSporeCommand(dir: string, layout: FolderLayout, o: ServeCommandOptions = {}): ServeCommand {
  const problem = unservableReason(layout);
  if (problem) throw new ConfigError(`${dir}: vLLM-MindSpore cannot serve this folder: ${problem}`);
  const args = ['serve', path.resolve(dir)];
  const env: Record<string, string> = {};
  if (layout.kind === 'golden-stick') {
    args.push('--quantization', 'golden-stick');
    env.VLLM_MS_MODEL_BACKEND = layout.names === 'mindformers' ? 'MindFormers' : 'Native';
  } else if (layout.kind === 'modelslim') {
    args.push('--quantization', 'ascend');
  }
  if (o.host !== undefined) args.push('--host', o.host);
  args.push('--port', String(o.port ?? 8000));
  if (o.servedModelName !== undefined) args.push('--served-model-name', o.servedModelName);
  if (o.maxModelLen !== undefined) args.push('--max-model-len', String(o.maxModelLen));
  if (o.maxNumSeqs !== undefined) args.push('--max-num-seqs', String(o.maxNumSeqs));
  if (o.seed !== undefined) args.push('--seed', String(o.seed));
  if (o.maxLogprobs !== undefined) args.push('--max-logprobs', String(o.maxLogprobs));
  args.push(...(o.extraArgs ?? []));
  return { command: o.command ?? 'vllm-mindspore', args, env };
}

/** A shell word: as is when safe, else single-quoted. */
function quote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The command as one shell line (`VAR=value program args...`), for messages and READMEs. */
export function shellLine(c: ServeCommand): string {
  return [...Object.entries(c.env).map(([k, v]) => `${k}=${quote(v)}`), quote(c.command), ...c.args.map(quote)].join(' ');
}
