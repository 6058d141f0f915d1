/**
 * `qllm inspect DIR`: what a model folder is — its checkpoint layout (float Hugging Face, compressed-tensors W8A8,
 * Golden Stick / MindFormers), the quantization of its linear layers in a compact summary, its tensors' count and
 * bytes, and whether each registered backend can run it here.
 */
import { Command } from 'commander';
import {
  backends, DTYPE_BYTES, loadModelFolder, numel, recognizeFolder, resolveArchitecture,
  type DType, type LinearSpec, type ModelArchitectureV1, type ModelConfigV1, type ModelFolder,
} from 'qllm';

export type LayoutName = 'float' | 'compressed-tensors' | 'golden-stick' | 'unknown';

export interface InspectReport {
  dir: string;
  layout: LayoutName;
  /** One line saying what the layout is and how it was recognised. */
  layoutDetail: string;
  architecture: { name: string; numLayers: number; hiddenSize: number } | { error: string };
  tensors: { count: number; bytes: number; byDtype: Partial<Record<DType, { count: number; bytes: number }>> };
  quantization: {
    method: string | null;
    /** Linears grouped by scheme and by position in the decoder layer: e.g. q_proj … up_proj W8A8 in layers 0-35. */
    groups: Array<{ scheme: Scheme; linears: string[]; layers: string }>;
    perLinear: Record<string, Scheme>;
  } | null;
  backends: Array<{ name: string; available: boolean; reason?: string; runs: boolean; note?: string }>;
}

type Scheme = 'W8A8' | 'W8A8_DYNAMIC' | 'float';

const SCHEME_TEXT: Record<Scheme, string> = {
  W8A8: 'W8A8, static per-tensor int8 activations',
  W8A8_DYNAMIC: 'W8A8, dynamic per-token int8 activations',
  float: 'float',
};

/** Which layouts a backend is known to serve (an unlisted backend: whatever qllm loads). */
const BACKEND_LAYOUTS: Record<string, { layouts: LayoutName[]; note: string }> = {
  ascend: {
    layouts: ['float', 'golden-stick'],
    note: "vLLM-MindSpore serves float and Golden Stick checkpoints (quantization 'golden-stick'); quantize with --backend ascend",
  },
};

export async function inspectFolder(dir: string): Promise<InspectReport> {
  const folder = await loadModelFolder(dir);
  try {
    let model: { architecture: ModelArchitectureV1<ModelConfigV1>; config: ModelConfigV1 } | undefined;
    let architecture: InspectReport['architecture'];
    try {
      model = await resolveArchitecture(folder);
      architecture = { name: model.architecture.name, numLayers: model.config.numLayers, hiddenSize: model.config.hiddenSize };
    } catch (e) {
      architecture = { error: (e as Error).message };
    }
    const { layout, layoutDetail, quantization } = await describeQuantization(folder, model);
    return { dir: folder.dir, layout, layoutDetail, architecture, tensors: tensorStats(folder), quantization, backends: await backendSupport(layout) };
  } finally {
    await folder.checkpoint.close();
  }
}

async function describeQuantization(
  folder: ModelFolder,
  model: { architecture: ModelArchitectureV1<ModelConfigV1>; config: ModelConfigV1 } | undefined,
): Promise<Pick<InspectReport, 'layout' | 'layoutDetail' | 'quantization'>> {
  const { linearSchemes } = await import('@qllm/quant-smoothquant');
  const linears: LinearSpec[] = model ? model.architecture.linearLayers(model.config) : [];
  const summarise = (method: string, config: Record<string, unknown>) => {
    const schemes = linearSchemes(config, linears.map((l) => l.name));
    if (!schemes) return null;
    const perLinear = Object.fromEntries([...schemes].map(([n, s]) => [n, s === 'static' ? 'W8A8' : s === 'dynamic' ? 'W8A8_DYNAMIC' : 'float'] as const));
    return { method, groups: groupSchemes(linears, perLinear), perLinear };
  };
  const qc = folder.config.quantization_config as Record<string, unknown> | undefined;
  if (qc) {
    const quantization = summarise('SmoothQuant', qc);
    if (quantization) return { layout: 'compressed-tensors', layoutDetail: 'compressed-tensors int-quantized W8A8 (config.json quantization_config)', quantization };
    return { layout: 'unknown', layoutDetail: `quantized with quant_method '${String(qc.quant_method)}', which qllm does not read`, quantization: null };
  }
  const recognized = model ? await recognizeFolder(undefined, folder, model).catch((e: Error) => e) : undefined;
  if (recognized instanceof Error) return { layout: 'unknown', layoutDetail: recognized.message, quantization: null };
  if (recognized) {
    const quantization = summarise(recognized.method.name, recognized.quantizationConfig);
    const how = recognized.quantizationConfig.description ? 'tensor names and quantization_description.json' : 'tensor names';
    return { layout: recognized.layout === 'golden-stick' ? 'golden-stick' : 'unknown', layoutDetail: `${recognized.layout}: MindFormers layout (by ${how})`, quantization };
  }
  return { layout: 'float', layoutDetail: 'float, Hugging Face layout', quantization: null };
}

/** Linears grouped by (scheme, layer set), each named by its position in the decoder layer. */
function groupSchemes(linears: LinearSpec[], perLinear: Record<string, Scheme>): Array<{ scheme: Scheme; linears: string[]; layers: string }> {
  const byPosition = new Map<string, { scheme: Scheme; layers: number[] }>();
  for (const l of linears) {
    const scheme = perLinear[l.name] ?? 'float';
    const position = l.layer >= 0 ? l.name.replace(/^.*?\.\d+\./, '') : l.name;
    const key = `${scheme}\u0000${position}`;
    const entry = byPosition.get(key) ?? { scheme, layers: [] };
    if (l.layer >= 0) entry.layers.push(l.layer);
    byPosition.set(key, entry);
  }
  const groups = new Map<string, { scheme: Scheme; linears: string[]; layers: string }>();
  for (const [key, { scheme, layers }] of byPosition) {
    const range = layers.length ? ranges(layers) : '';
    const g = groups.get(`${scheme}\u0000${range}`) ?? { scheme, linears: [], layers: range };
    g.linears.push(key.split('\u0000')[1]!);
    groups.set(`${scheme}\u0000${range}`, g);
  }
  return [...groups.values()];
}

/** [0,1,2,5,7,8] → '0-2, 5, 7-8'. */
function ranges(values: number[]): string {
  const v = [...new Set(values)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < v.length;) {
    let j = i;
    while (j + 1 < v.length && v[j + 1] === v[j]! + 1) j++;
    parts.push(i === j ? `${v[i]}` : `${v[i]}-${v[j]}`);
    i = j + 1;
  }
  return parts.join(', ');
}

function tensorStats(folder: ModelFolder): InspectReport['tensors'] {
  const byDtype: InspectReport['tensors']['byDtype'] = {};
  let bytes = 0;
  const names = folder.checkpoint.names();
  for (const name of names) {
    const info = folder.checkpoint.info(name);
    const b = numel(info.shape) * DTYPE_BYTES[info.dtype];
    bytes += b;
    const d = (byDtype[info.dtype] ??= { count: 0, bytes: 0 });
    d.count++;
    d.bytes += b;
  }
  return { count: names.length, bytes, byDtype };
}

async function backendSupport(layout: LayoutName): Promise<InspectReport['backends']> {
  const out: InspectReport['backends'] = [];
  for (const name of backends.names()) {
    const known = BACKEND_LAYOUTS[name];
    const serves = layout !== 'unknown' && (!known || known.layouts.includes(layout));
    try {
      const availability = await (await backends.get(name)).isAvailable();
      out.push({
        name, available: availability.available, ...(availability.reason && { reason: availability.reason }),
        runs: availability.available && serves, ...(known && !serves && { note: known.note }),
      });
    } catch (e) {
      out.push({ name, available: false, reason: `the plugin did not load: ${(e as Error).message}`, runs: false });
    }
  }
  return out;
}

const size = (b: number) => (b >= 1 << 30 ? `${(b / (1 << 30)).toFixed(2)} GiB` : b >= 1 << 20 ? `${(b / (1 << 20)).toFixed(2)} MiB` : `${(b / 1024).toFixed(1)} KiB`);

export function formatInspect(r: InspectReport): string {
  const lines = [r.dir, `layout        ${r.layoutDetail}`];
  lines.push(`architecture  ${'error' in r.architecture ? r.architecture.error : `${r.architecture.name}, ${r.architecture.numLayers} layers, hidden ${r.architecture.hiddenSize}`}`);
  const dtypes = Object.entries(r.tensors.byDtype).map(([d, s]) => `${d} ${s!.count} (${size(s!.bytes)})`).join(', ');
  lines.push(`tensors       ${r.tensors.count}, ${size(r.tensors.bytes)}: ${dtypes}`);
  if (r.quantization) {
    lines.push(`quantization  ${r.quantization.method}`);
    for (const g of r.quantization.groups) {
      lines.push(`  ${SCHEME_TEXT[g.scheme]}: ${g.linears.join(', ')}${g.layers ? ` (layers ${g.layers})` : ''}`);
    }
  } else {
    lines.push('quantization  none');
  }
  lines.push('backends');
  for (const b of r.backends) {
    const state = b.available ? 'available' : `unavailable${b.reason ? ` (${b.reason})` : ''}`;
    lines.push(`  ${b.name.padEnd(8)}${b.runs ? 'runs it' : 'cannot run it here'}: ${state}${b.note ? `; ${b.note}` : ''}`);
  }
  return `${lines.join('\n')}\n`;
}

export function inspectCommand(): Command {
  return new Command('inspect')
    .description('say what a model folder is: layout, quantization per layer, tensors, which backends can run it')
    .argument('<dir>', 'model folder')
    .option('--json', 'print the report as JSON')
    .action(async (dir: string, opts: { json?: boolean }) => {
      const report = await inspectFolder(dir);
      process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatInspect(report));
    });
}
