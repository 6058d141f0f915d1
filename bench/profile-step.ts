/**
 * Where a decode step's time goes, from onnxruntime's own profiler: `node --conditions=source --import tsx
 * bench/profile-step.ts --model DIR [--seqs 1] [--prompt 8] [--lm-head float|int8] [--steps 20]`. Decodes `steps` tokens with
 * `seqs` sequences at once after `prompt`-token prompts (QLLM_ORT_PROFILE makes the CPU backend profile its session), then prints, over the last `steps`
 * runs: the mean run time, the kernel time and kernel count per run, the time per op type, and the slowest nodes.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { LLM, SamplingParams, type LmHeadOption } from 'qllm';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    seqs: { type: 'string', default: '1' },
    steps: { type: 'string', default: '20' },
    prompt: { type: 'string', default: '8' },
    'lm-head': { type: 'string', default: 'float' },
  },
});
const steps = Number(values.steps);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qllm-profile-'));
process.env.QLLM_ORT_PROFILE = path.join(dir, 'step');
const n = Number(values.seqs);
const llm = new LLM({ model: values.model!, maxNumSeqs: n, maxModelLen: Math.max(256, Number(values.prompt) + Number(values.steps) + 8), lmHead: values['lm-head'] as LmHeadOption, threads: 2 });
await llm.ready();
const ids = (n: number, salt: number) => ({ promptTokenIds: Array.from({ length: n }, (_, i) => 100 + ((i * 7919 + salt * 104729) % 150000)) });
await llm.generate(Array.from({ length: n }, (_, i) => ids(Number(values.prompt), 10 + i)), new SamplingParams({ temperature: 0, maxTokens: steps + 4, ignoreEos: true }));
await llm.close(); // ends the profile: the session's trace is written now

// The model's session wrote the largest trace (the int8 probe's small sessions wrote others).
const file = fs.readdirSync(dir).map((f) => path.join(dir, f)).sort((a, b) => fs.statSync(b).size - fs.statSync(a).size)[0]!;
type Event = { cat: string; name: string; ts: number; dur: number; args: { op_name?: string } };
const events = JSON.parse(fs.readFileSync(file, 'utf8')) as Event[];
const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').slice(-steps);
const from = runs[0]!.ts;
const to = runs.at(-1)!.ts + runs.at(-1)!.dur;
const kernels = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time') && e.ts >= from && e.ts <= to);
const ms = (us: number) => (us / runs.length / 1000).toFixed(2);
const byOp = new Map<string, { n: number; us: number }>();
const byNode = new Map<string, number>();
for (const k of kernels) {
  const op = byOp.get(k.args.op_name ?? '?') ?? { n: 0, us: 0 };
  op.n++;
  op.us += k.dur;
  byOp.set(k.args.op_name ?? '?', op);
  const node = k.name.replace(/_kernel_time$/, '');
  byNode.set(node, (byNode.get(node) ?? 0) + k.dur);
}
console.log(`${values.model}, ${n} sequence(s), lm_head ${values['lm-head']}: ${runs.length} decode runs`);
console.log(`run ${ms(runs.reduce((a, r) => a + r.dur, 0))} ms, kernels ${ms(kernels.reduce((a, k) => a + k.dur, 0))} ms in ${(kernels.length / runs.length).toFixed(0)} kernels per run`);
for (const [op, s] of [...byOp].sort((a, b) => b[1].us - a[1].us).slice(0, 20)) {
  console.log(`  ${op.padEnd(34)} ${ms(s.us).padStart(7)} ms  ${String(s.n / runs.length).padStart(5)} kernels`);
}
console.log('slowest nodes:');
for (const [node, us] of [...byNode].sort((a, b) => b[1] - a[1]).slice(0, 8)) console.log(`  ${node.slice(0, 80).padEnd(80)} ${ms(us)} ms`);
fs.rmSync(dir, { recursive: true, force: true });
