/**
 * `pnpm bench [--8b] [--runs N] [--threads T] [--quick] [--float-dir DIR] [--quant-dir DIR] [--concurrency 1,4,16]`:
 * qllm against llama.cpp (node-llama-cpp 3.22.1's prebuilt CPU build) on the same weights, interleaved.
 *
 * Models (made once, kept under os.tmpdir()/qllm-bench and reused by later runs):
 *   - a Qwen3-0.6B-shaped random bf16 checkpoint made by @qllm/testing (hidden 1024, 28 layers, 16/8 heads, head_dim
 *     128, intermediate 3072, tied, vocab 151936), or with --8b the Qwen3-8B shape (hidden 4096, 36 layers, 32/8
 *     heads, intermediate 12288, untied); --float-dir uses an existing folder instead;
 *   - its SmoothQuant A8W8 folder (bench/measure-quantize.ts; --quant-dir uses an existing one);
 *   - its GGUF exports, F16 and Q8_0 (`qllm export-gguf`), skipped with a message when the disk is short.
 * Engine configurations: qllm bf16, qllm A8W8 (float head, as Golden Stick leaves it), qllm A8W8 with the weight-only
 * int8 head (`lmHead: 'int8'`; llama.cpp's Q8_0 quantizes the head too, so this is the like-for-like row), llama.cpp
 * F16 and llama.cpp Q8_0. Each of N rounds runs every configuration once, in an order rotated by one each round, every
 * measurement in its own process (so each peak RSS is that process's):
 *   - qllm: a cold load (bench/measure-qllm.ts --load-only with a fresh, empty graph cache folder: read the
 *     checkpoint, build and write the graph, create the session), then bench/measure-qllm.ts with that folder (a warm
 *     load: the graph comes from the cache) and the workload;
 *   - llama.cpp: bench/measure-llamacpp.ts: the first load in the fresh process ("cold"), a second load in the same
 *     process ("warm"), and the same workload.
 * The workload (bench/workload.ts, the same token ids for both engines): prefill of a 128-token prompt and its time to
 * first token (median of 3 prompts), greedy decode of 64 tokens after a 128-token prompt with 1, 4 and 16 sequences
 * at once (aggregate tok/s), peak RSS. Results: medians over the rounds, a markdown table on stdout, the issue's ratios,
 * bench-results.json at the repository root (rows {engine, model, dtype, metric, value, unit}; rows of another model
 * from an earlier run are kept) and an SVG chart (bench/results.svg, or bench/results-8b.svg).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { makeTinyQwen3, QWEN3_0_6B_SHAPE } from '@qllm/testing';
import { median } from './workload.js';

const { values } = parseArgs({
  options: {
    '8b': { type: 'boolean', default: false },
    runs: { type: 'string', default: '5' },
    threads: { type: 'string', default: '2' },
    quick: { type: 'boolean', default: false },
    'float-dir': { type: 'string' },
    'quant-dir': { type: 'string' },
    concurrency: { type: 'string' },
  },
});
const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.join(here, '..');
const is8b = values['8b']!;
const runs = values.quick ? 1 : Number(values.runs);
const threads = values.threads!;
// The 8B workload is cut to one sequence by default (16 sequences of 128-token prompts take minutes per round there).
const concurrency = (values.concurrency ?? (is8b ? '1' : '1,4,16')).split(',').map(Number);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer, got ${values.runs}`);

const QWEN3_8B_SHAPE = {
  hiddenSize: 4096, intermediateSize: 12288, numLayers: 36, numHeads: 32, numKvHeads: 8, headDim: 128, vocabSize: 151936, tieWordEmbeddings: false,
} as const;
const modelName = is8b ? 'Qwen3-8B shape' : 'Qwen3-0.6B shape';
const root = path.join(os.tmpdir(), 'qllm-bench');
fs.mkdirSync(root, { recursive: true });
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);
/** The code measured: the commit, and the files outside bench/ that differ from it. */
function codeState(): string {
  const git = (args: string[]) => { try { return execFileSync('git', args, { cwd: repo, encoding: 'utf8' }).trim(); } catch { return undefined; } };
  const changed = git(['status', '--porcelain', '--untracked-files=no'])?.split('\n').filter((l) => l && !/ (bench\/|bench-results\.json|BENCHMARKS\.md|pnpm-lock\.yaml)/.test(l)) ?? [];
  return `${git(['rev-parse', '--short', 'HEAD']) ?? 'unknown commit'}${changed.length ? ` + changes in ${changed.map((l) => l.slice(3)).join(', ')}` : ''}`;
}
const codeAtStart = codeState();
const GiB = 2 ** 30;
const freeBytes = () => { const s = fs.statfsSync(root); return s.bavail * s.bsize; };
const dirBytes = (dir: string) => fs.readdirSync(dir).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);

/** Run a bench script in its own process; its last stdout line is JSON. */
function child<T>(script: string, args: string[]): T {
  const out = execFileSync(process.execPath, ['--conditions=source', '--import', 'tsx', path.join(here, script), ...args], {
    encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 * 2 ** 20,
  });
  return JSON.parse(out.trim().split('\n').pop()!) as T;
}
const qllmCli = (args: string[]) => execFileSync(process.execPath, ['--conditions=source', '--import', 'tsx', path.join(repo, 'packages', 'cli', 'src', 'bin.ts'), ...args], {
  encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'],
});

// 1. The float folder, its A8W8 folder, its GGUF exports.
const floatDir = path.resolve(values['float-dir'] ?? path.join(root, is8b ? 'qwen3-8b-shape' : 'qwen3-0.6b-shape-l28'));
const quantDir = path.resolve(values['quant-dir'] ?? `${floatDir}-A8W8`);
if (!fs.existsSync(path.join(floatDir, 'config.json'))) {
  log(`making the ${modelName} float checkpoint in ${floatDir}`);
  await makeTinyQwen3(floatDir, { ...(is8b ? QWEN3_8B_SHAPE : QWEN3_0_6B_SHAPE), seed: 1 });
}
if (!fs.existsSync(path.join(quantDir, 'config.json'))) {
  log(`quantizing ${floatDir} → ${quantDir} (SmoothQuant A8W8)`);
  const calibration = path.join(repo, 'plugins', 'quant-smoothquant', 'src', '__fixtures__', 'calibration.txt');
  const q = child<Record<string, unknown>>('measure-quantize.ts', ['--model', floatDir, '--output', quantDir, '--calibration', calibration, '--threads', threads]);
  log(`quantized: ${JSON.stringify(q)}`);
}
const skipped: string[] = [];
const floatBytes = dirBytes(floatDir);
// A qllm cold load writes its graph (about the folder's size) to a graph cache folder, removed after each config
// (the 8B shape runs no bf16 config, see below).
const graphReserve = Math.max(is8b ? 0 : floatBytes, dirBytes(quantDir)) + GiB;
const gguf: Partial<Record<'f16' | 'q8_0', string>> = {};
for (const [type, estimate] of [['q8_0', floatBytes * 0.54], ['f16', floatBytes]] as const) {
  const file = path.join(root, `${path.basename(floatDir)}-${type}.gguf`);
  if (!fs.existsSync(file)) {
    const free = freeBytes();
    if (free < estimate + graphReserve) {
      skipped.push(`llama.cpp ${type.toUpperCase()}: not exported, the disk is short (${(free / GiB).toFixed(1)} GiB free; the file needs ` +
        `~${(estimate / GiB).toFixed(1)} GiB plus ${(graphReserve / GiB).toFixed(1)} GiB kept for qllm's graph cache)`);
      log(skipped.at(-1)!);
      continue;
    }
    log(`exporting ${floatDir} as ${type.toUpperCase()} GGUF → ${file}`);
    qllmCli(['export-gguf', '--model', floatDir, '--output', file, '--type', type]);
  }
  gguf[type] = file;
}

// 2. The engine configurations.
interface Config { id: string; engine: 'qllm' | 'llama.cpp'; dtype: string; model: string; lmHead?: 'float' | 'int8' }
const configs: Config[] = [];
if (is8b) {
  skipped.push('qllm bf16: not run on the 8B shape — its float linears are widened to float32 in the session (~32 GB), more than this machine\'s memory');
  log(skipped.at(-1)!);
} else {
  configs.push({ id: 'qllm-bf16', engine: 'qllm', dtype: 'bf16', model: floatDir, lmHead: 'float' });
}
configs.push({ id: 'qllm-a8w8', engine: 'qllm', dtype: 'A8W8', model: quantDir, lmHead: 'float' });
configs.push({ id: 'qllm-a8w8-int8head', engine: 'qllm', dtype: 'A8W8 + int8 head', model: quantDir, lmHead: 'int8' });
if (gguf.f16) configs.push({ id: 'llamacpp-f16', engine: 'llama.cpp', dtype: 'F16', model: gguf.f16 });
if (gguf.q8_0) configs.push({ id: 'llamacpp-q8_0', engine: 'llama.cpp', dtype: 'Q8_0', model: gguf.q8_0 });

// 3. N rounds, interleaved.
interface Serve { loadS: number; reloadS?: number; graphCached?: boolean; prefillTokPerS: number; ttftMs: number; decode: Record<string, number>; decodeErrors?: Record<string, string>; peakRssGiB: number }
interface Run { round: number; config: string; coldLoadS: number; warmLoadS: number; coldPeakRssGiB?: number; serve: Serve }
const results: Run[] = [];
const failures: string[] = [];
const conc = ['--concurrency', concurrency.join(',')];
for (let round = 0; round < runs; round++) {
  const order = configs.map((_, i) => configs[(i + round) % configs.length]!);
  log(`round ${round + 1}/${runs}: ${order.map((c) => c.id).join(' → ')}`);
  for (const c of order) {
    let run: Run;
    try {
      if (c.engine === 'qllm') {
        const cache = fs.mkdtempSync(path.join(root, 'graph-cache-'));
        try {
          const args = ['--model', c.model, '--threads', threads, '--lm-head', c.lmHead!, '--graph-cache', cache];
          const cold = child<{ loadS: number; graphCached: boolean; peakRssGiB: number }>('measure-qllm.ts', [...args, '--load-only']);
          const serve = child<Serve>('measure-qllm.ts', [...args, ...conc]);
          if (cold.graphCached || !serve.graphCached) throw new Error(`${c.id}: expected a cold then a warm graph cache (got ${cold.graphCached}, ${serve.graphCached})`);
          run = { round, config: c.id, coldLoadS: cold.loadS, warmLoadS: serve.loadS, coldPeakRssGiB: cold.peakRssGiB, serve };
        } finally {
          fs.rmSync(cache, { recursive: true, force: true });
        }
      } else {
        const serve = child<Serve>('measure-llamacpp.ts', ['--model', c.model, '--threads', threads, ...conc]);
        run = { round, config: c.id, coldLoadS: serve.loadS, warmLoadS: serve.reloadS!, serve };
      }
    } catch (e) {
      // A measurement that fails is reported and the others go on.
      failures.push(`${c.engine} ${c.dtype}, round ${round + 1}: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`);
      log(`  ${c.id}: FAILED (${failures.at(-1)})`);
      continue;
    }
    results.push(run);
    for (const [n, message] of Object.entries(run.serve.decodeErrors ?? {})) failures.push(`${c.engine} ${c.dtype}, ${n} sequences, round ${round + 1}: ${message}`);
    log(`  ${c.id}: load ${run.coldLoadS.toFixed(2)} / ${run.warmLoadS.toFixed(2)} s, prefill ${run.serve.prefillTokPerS.toFixed(1)} tok/s, ` +
      `decode ${concurrency.map((n) => run.serve.decode[n]?.toFixed(1) ?? 'failed').join(' / ')} tok/s, peak RSS ${run.serve.peakRssGiB.toFixed(2)} GiB` +
      (run.serve.decodeErrors ? ` (failed: ${JSON.stringify(run.serve.decodeErrors)})` : ''));
  }
}

// 4. Medians, rows, ratios.
interface Row { engine: string; model: string; dtype: string; metric: string; value: number; unit: string }
const metrics: { metric: string; unit: string; get: (r: Run) => number | undefined; digits: number }[] = [
  { metric: 'load_cold', unit: 's', get: (r) => r.coldLoadS, digits: 2 },
  { metric: 'load_warm', unit: 's', get: (r) => r.warmLoadS, digits: 2 },
  { metric: 'prefill_128', unit: 'tok/s', get: (r) => r.serve.prefillTokPerS, digits: 1 },
  { metric: 'ttft_128', unit: 'ms', get: (r) => r.serve.ttftMs, digits: 0 },
  ...concurrency.map((n) => ({ metric: `decode_${n}seq`, unit: 'tok/s', get: (r: Run) => r.serve.decode[n], digits: 2 })),
  { metric: 'peak_rss', unit: 'GiB', get: (r) => r.serve.peakRssGiB, digits: 2 },
  { metric: 'peak_rss_cold_load', unit: 'GiB', get: (r) => r.coldPeakRssGiB, digits: 2 },
];
const round = (v: number, digits: number) => Number(v.toFixed(digits));
const rows: Row[] = [];
const med = (id: string, metric: string) => rows.find((r) => r.metric === metric && r.dtype === configs.find((c) => c.id === id)?.dtype && r.engine === configs.find((c) => c.id === id)?.engine)?.value;
for (const c of configs) {
  const mine = results.filter((r) => r.config === c.id);
  for (const m of metrics) {
    const vals = mine.map(m.get).filter((v): v is number => v !== undefined);
    if (vals.length) rows.push({ engine: c.engine, model: modelName, dtype: c.dtype, metric: m.metric, value: round(median(vals), m.digits), unit: m.unit });
  }
}

/** A ratio of medians, and the range of the same ratio taken round by round (the two configs ran in the same round). */
function ratio(a: string, b: string, metric: (r: Run) => number | undefined): { median: number; min: number; max: number } | undefined {
  const per: number[] = [];
  const as: number[] = [];
  const bs: number[] = [];
  for (let r = 0; r < runs; r++) {
    const x = results.find((v) => v.round === r && v.config === a);
    const y = results.find((v) => v.round === r && v.config === b);
    if (!x || !y || metric(x) === undefined || metric(y) === undefined) continue;
    as.push(metric(x)!);
    bs.push(metric(y)!);
    per.push(metric(x)! / metric(y)!);
  }
  if (!per.length) return undefined;
  return { median: median(as) / median(bs), min: Math.min(...per), max: Math.max(...per) };
}
const targets: { decode: number; prefill: number; warmLoadS?: number } = is8b ? { decode: 0.95, prefill: 2 } : { decode: 1.15, prefill: 2, warmLoadS: 5 };
const summary: string[] = [];
const verdict = (ok: boolean) => (ok ? 'met' : 'missed');
const fmtRatio = (r: { median: number; min: number; max: number }) => `${r.median.toFixed(2)}× (per round ${r.min.toFixed(2)}–${r.max.toFixed(2)})`;
for (const [id, label] of [['qllm-a8w8-int8head', 'A8W8 + int8 head'], ['qllm-a8w8', 'A8W8 (float head)']] as const) {
  const d = ratio(id, 'llamacpp-q8_0', (r) => r.serve.decode[1]);
  if (d) summary.push(`decode, 1 sequence: qllm ${label} / llama.cpp Q8_0 = ${fmtRatio(d)}; target ≥ ${targets.decode}: ${verdict(d.median >= targets.decode)}`);
  for (const n of concurrency.filter((n) => n > 1)) {
    const dn = ratio(id, 'llamacpp-q8_0', (r) => r.serve.decode[n]);
    if (dn) summary.push(`decode, ${n} sequences: qllm ${label} / llama.cpp Q8_0 = ${fmtRatio(dn)}`);
  }
  const p = ratio(id, 'llamacpp-q8_0', (r) => r.serve.prefillTokPerS);
  if (p) summary.push(`prefill (128 tokens): qllm ${label} / llama.cpp Q8_0 = ${fmtRatio(p)}; target ≥ ${targets.prefill}: ${verdict(p.median >= targets.prefill)}`);
}
for (const id of ['qllm-a8w8', 'qllm-a8w8-int8head']) {
  const w = med(id, 'load_warm');
  const target = targets.warmLoadS;
  if (w !== undefined) summary.push(`warm load, qllm ${configs.find((c) => c.id === id)!.dtype}: ${w} s` + (target === undefined ? '' : `; target ≤ ${target} s: ${verdict(w <= target)}`));
}
const bf = ratio('qllm-bf16', 'llamacpp-f16', (r) => r.serve.decode[1]);
if (bf) summary.push(`decode, 1 sequence: qllm bf16 / llama.cpp F16 = ${fmtRatio(bf)} (no target)`);

// 5. Output: table, ratios, JSON, SVG.
const codeAtEnd = codeState();
if (codeAtEnd !== codeAtStart) log(`warning: the code changed during the run (${codeAtStart} at the start, ${codeAtEnd} at the end)`);
const env = qllmCli(['env']).trim();
const machine = `${os.cpus()[0]?.model.trim() ?? 'cpu'}, ${os.availableParallelism()} cores, ${(os.totalmem() / GiB).toFixed(0)} GiB, Node ${process.version}`;
const date = new Date().toISOString();
const llamaVersion = JSON.parse(fs.readFileSync(path.join(here, 'node_modules', 'node-llama-cpp', 'package.json'), 'utf8')).version as string;
const ortVersion = JSON.parse(fs.readFileSync(path.join(here, 'node_modules', 'onnxruntime-node', 'package.json'), 'utf8')).version as string;

const out: string[] = [];
out.push(`${date.slice(0, 16).replace('T', ' ')} UTC · ${machine} · ${modelName}, random bf16 weights · ${threads} threads both engines · ` +
  `median of ${runs} interleaved round${runs > 1 ? 's' : ''} · onnxruntime-node ${ortVersion}, node-llama-cpp ${llamaVersion}`);
out.push('');
out.push(`\`qllm env\`: \`${env}\``);
out.push('');
out.push(`Code: ${codeAtStart}${codeAtEnd !== codeAtStart ? ` (at the end: ${codeAtEnd})` : ''}.`);
out.push('');
const cell = (id: string, metric: string, unit: string) => { const v = med(id, metric); return v === undefined ? 'failed' : `${v} ${unit}`; };
out.push(`| engine | weights | load cold | load warm | prefill (128 tokens) | time to first token | ${concurrency.map((n) => `decode, ${n} seq${n > 1 ? 's' : ''}`).join(' | ')} | peak RSS |`);
out.push(`|---|---|---:|---:|---:|---:|${concurrency.map(() => '---:').join('|')}|---:|`);
for (const c of configs) {
  out.push(`| ${c.engine} | ${c.dtype} | ${cell(c.id, 'load_cold', 's')} | ${cell(c.id, 'load_warm', 's')} | ${cell(c.id, 'prefill_128', 'tok/s')} | ` +
    `${cell(c.id, 'ttft_128', 'ms')} | ${concurrency.map((n) => cell(c.id, `decode_${n}seq`, 'tok/s')).join(' | ')} | ${cell(c.id, 'peak_rss', 'GiB')} |`);
}
out.push('');
for (const s of summary) out.push(`- ${s}`);
for (const s of skipped) out.push(`- skipped: ${s}`);
for (const f of failures) out.push(`- failed: ${f}`);
console.log(`\n${out.join('\n')}`);

const resultsFile = path.join(repo, 'bench-results.json');
interface ResultsFile { meta: Record<string, unknown>; rows: Row[]; raw?: unknown[] }
let earlier: ResultsFile | undefined;
try {
  earlier = JSON.parse(fs.readFileSync(resultsFile, 'utf8')) as ResultsFile;
} catch {
  earlier = undefined;
}
const thisMeta = {
  date, code: codeAtStart, codeAtEnd, runs, threads: Number(threads), concurrency, machine, env, onnxruntimeNode: ortVersion, nodeLlamaCpp: llamaVersion,
  folders: { float: floatDir, a8w8: quantDir, ...gguf }, skipped, failures, summary, quick: values.quick,
};
// Rows of other models from an earlier run stay (each model's own meta under meta.models).
const keep = (earlier?.rows ?? []).filter((r) => r.model !== modelName);
const models = { ...(earlier?.meta?.models as Record<string, unknown> | undefined), [modelName]: thisMeta };
const file: ResultsFile = {
  meta: { machine, env, date, runs, threads: Number(threads), models },
  rows: [...keep, ...rows],
  raw: [...((earlier?.raw as { model: string }[] | undefined) ?? []).filter((r) => r.model !== modelName), ...results.map((r) => ({ model: modelName, ...r }))],
};
fs.writeFileSync(resultsFile, `${JSON.stringify(file, null, 2)}\n`);
const svgFile = path.join(here, is8b ? 'results-8b.svg' : 'results.svg');
fs.writeFileSync(svgFile, chart());
log(`wrote ${resultsFile} and ${svgFile}`);

/** Grouped bars: prefill tok/s (left panel) and decode tok/s by concurrency (right panel), one group per configuration. */
function chart(): string {
  const colors: Record<string, string> = {
    'qllm-bf16': '#9ecae1', 'qllm-a8w8': '#3182bd', 'qllm-a8w8-int8head': '#08519c', 'llamacpp-f16': '#fdae6b', 'llamacpp-q8_0': '#e6550d',
  };
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const panels = [
    { title: 'prefill, 128-token prompt (tok/s)', groups: [{ label: '1 seq', metric: 'prefill_128' }] },
    { title: `decode, 64 tokens after 128 (aggregate tok/s)`, groups: concurrency.map((n) => ({ label: `${n} seq${n > 1 ? 's' : ''}`, metric: `decode_${n}seq` })) },
  ];
  const W = 980;
  const H = 380;
  const top = 56;
  const bottom = 300;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="11">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(`qllm vs llama.cpp · ${modelName} · ${threads} threads · median of ${runs}`)}</text>`);
  parts.push(`<text x="${W / 2}" y="38" text-anchor="middle" fill="#555">${esc(machine)}</text>`);
  const panelX = [50, 360];
  const panelW = [250, 590];
  panels.forEach((panel, pi) => {
    const x0 = panelX[pi]!;
    const w = panelW[pi]!;
    const vals = panel.groups.flatMap((g) => configs.map((c) => med(c.id, g.metric) ?? 0));
    const max = Math.max(1, ...vals);
    const step = niceStep(max / 5);
    const ymax = Math.ceil(max / step) * step;
    const y = (v: number) => bottom - ((bottom - top - 10) * v) / ymax;
    parts.push(`<text x="${x0 + w / 2}" y="${top - 4}" text-anchor="middle" font-weight="bold">${esc(panel.title)}</text>`);
    for (let v = 0; v <= ymax + 1e-9; v += step) {
      parts.push(`<line x1="${x0}" x2="${x0 + w}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e5e5e5"/>`);
      parts.push(`<text x="${x0 - 4}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" fill="#555">${+v.toFixed(6)}</text>`);
    }
    parts.push(`<line x1="${x0}" x2="${x0 + w}" y1="${bottom}" y2="${bottom}" stroke="#333"/>`);
    const gw = w / panel.groups.length;
    const bw = Math.min(34, (gw - 16) / configs.length);
    panel.groups.forEach((g, gi) => {
      const gx = x0 + gi * gw + (gw - bw * configs.length) / 2;
      configs.forEach((c, ci) => {
        const v = med(c.id, g.metric);
        if (v === undefined) return;
        const bx = gx + ci * bw;
        parts.push(`<rect x="${bx.toFixed(1)}" y="${y(v).toFixed(1)}" width="${(bw - 2).toFixed(1)}" height="${(bottom - y(v)).toFixed(1)}" fill="${colors[c.id]}"><title>${esc(`${c.engine} ${c.dtype}: ${v}`)}</title></rect>`);
        parts.push(`<text x="${(bx + (bw - 2) / 2).toFixed(1)}" y="${(y(v) - 3).toFixed(1)}" text-anchor="middle" font-size="9">${v >= 100 ? Math.round(v) : v.toFixed(1)}</text>`);
      });
      parts.push(`<text x="${(x0 + gi * gw + gw / 2).toFixed(1)}" y="${bottom + 15}" text-anchor="middle">${esc(g.label)}</text>`);
    });
  });
  configs.forEach((c, i) => {
    const lx = 50 + i * 185;
    parts.push(`<rect x="${lx}" y="${H - 40}" width="12" height="12" fill="${colors[c.id]}"/>`);
    parts.push(`<text x="${lx + 16}" y="${H - 30}">${esc(`${c.engine} ${c.dtype}`)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}
