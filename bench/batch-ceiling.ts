/**
 * How far batching can go on this machine: `node --conditions=source --import tsx bench/batch-ceiling.ts --model DIR
 * [--seqs 16] [--rounds 5]` (DIR: an A8W8 checkpoint; qllm runs it with the int8 head). Prints one JSON line and a
 * summary:
 *   - the engine's aggregate decode at 1 and at `seqs` sequences (the bench's workload: 128-token prompts, 64 greedy
 *     tokens), rounds alternating, medians, and the ratio of the two;
 *   - the int8 GEMMs of one decode step alone, at M = 1 and M = seqs rows: every linear of the checkpoint's shape as the
 *     engine runs it (q/k/v and gate/up packed, the int8 head), random weights, nothing else in the graph;
 *   - the time to read the step's KV cache once at `seqs` sequences (float32, the window's mean context), a ReduceSum
 *     over that many bytes: no attention kernel reads it faster;
 *   - the ceiling: seqs × step(1) / (GEMMs(seqs) + KV read(seqs)), the ratio batching would reach if everything else
 *     in the batched step (norms, RoPE, softmax, quantization, sampling, JavaScript) cost nothing.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createCpuBackend } from '@qllm/backend-cpu';
import { describeEnvironment, environmentLine } from '@qllm/cli';
import { emitInt8MatMul, GraphBuilder, LLM, SamplingParams } from 'qllm';
import { aggregateDecode, DECODE_SALT, DECODE_TOKENS, MAX_MODEL_LEN, median, promptIds, PROMPT_TOKENS, tokenArrivals } from './workload.js';

const { values } = parseArgs({ options: { model: { type: 'string' }, seqs: { type: 'string', default: '16' }, rounds: { type: 'string', default: '5' } } });
if (!values.model) throw new Error('batch-ceiling: --model DIR (an A8W8 checkpoint) is required');
const seqs = Number(values.seqs);
const rounds = Number(values.rounds);
const config = JSON.parse(fs.readFileSync(path.join(values.model, 'config.json'), 'utf8')) as Record<string, number>;
const hidden = config.hidden_size!;
const layers = config.num_hidden_layers!;
const heads = config.num_attention_heads!;
const kvHeads = config.num_key_value_heads!;
const headDim = config.head_dim ?? hidden / heads;
const inter = config.intermediate_size!;
const vocab = config.vocab_size!;
console.log(environmentLine(await describeEnvironment('cpu')));

/**
 * The median of each of `runs` (each returns one sample) over `rounds` rounds, the runs alternating within a round,
 * after one uncounted warm-up round (first runs pay for page faults and kernel set-up).
 */
async function alternate(runs: Array<() => Promise<number>>): Promise<number[]> {
  for (const run of runs) await run();
  const samples = runs.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) for (const [i, run] of runs.entries()) samples[i]!.push(await run());
  return samples.map(median);
}

// 1. The engine: aggregate decode tok/s at 1 and at `seqs` sequences.
const llm = new LLM({ model: values.model, maxNumSeqs: seqs, maxModelLen: MAX_MODEL_LEN, lmHead: 'int8' });
await llm.ready();
const greedy = new SamplingParams({ temperature: 0, maxTokens: DECODE_TOKENS + 1, ignoreEos: true });
async function decode(n: number): Promise<number> {
  const runs = await Promise.all(Array.from({ length: n }, (_, i) => tokenArrivals(llm.stream({ promptTokenIds: promptIds(PROMPT_TOKENS, DECODE_SALT + i) }, greedy))));
  return aggregateDecode(runs).tokPerS;
}
const [tok1, tokN] = await alternate([() => decode(1), () => decode(seqs)]);
await llm.close();
const step1 = 1000 / tok1!;

// 2. The step's int8 GEMMs alone, at M = 1 and M = seqs.
const backend = createCpuBackend();
const { form } = await backend.int8GemmForm!();
const g = new GraphBuilder('decode-gemms');
const x = g.input('x', 'float32', ['m', hidden]);
const scale = g.scalar(0.05);
let seed = 1;
const weights = (n: number) => async () => {
  const w = new Int8Array(n);
  for (let i = 0; i < n; i++) w[i] = ((seed = (Math.imul(seed, 1103515245) + 12345) | 0) >>> 24) - 128;
  return w;
};
const linear = (input: string, name: string, K: number, N: number) => emitInt8MatMul(g, form, {
  x: input,
  activation: { scale, zeroPoint: { name: `${name}.zp`, value: async () => 0 } },
  weight: { name, shape: [K, N], data: weights(K * N) },
  weightScale: g.constant('float32', [N], Array.from({ length: N }, () => 1 / (127 * Math.sqrt(K)))),
});
const columns = (v: string, width: number) => g.op('Slice', [v, g.ints([0]), g.ints([width]), g.ints([1])]);
let h = x;
for (let l = 0; l < layers; l++) {
  const qkv = linear(h, `l${l}.qkv`, hidden, (heads + 2 * kvHeads) * headDim);
  const o = linear(columns(qkv, heads * headDim), `l${l}.o`, heads * headDim, hidden);
  const gateUp = linear(o, `l${l}.gate_up`, hidden, 2 * inter);
  h = linear(columns(gateUp, inter), `l${l}.down`, inter, hidden);
}
g.output(linear(h, 'lm_head', hidden, vocab), 'logits', 'float32', ['m', vocab]);
const gemms = await backend.createSession(await g.build(), { threads: 2 });
const gemmRun = (m: number) => async () => {
  const data = Float32Array.from({ length: m * hidden }, (_, i) => Math.sin(i));
  const t = performance.now();
  await gemms.run({ x: { dtype: 'F32', shape: [m, hidden], data } });
  return performance.now() - t;
};

// 3. Reading the KV cache of `seqs` sequences once, at the workload's mean context.
const context = PROMPT_TOKENS + DECODE_TOKENS / 2;
const kvElements = 2 * layers * seqs * kvHeads * context * headDim;
const r = new GraphBuilder('kv-read');
const kv = r.input('kv', 'float32', [1, 1, kvElements, 1]);
r.output(r.op('ReduceSum', [kv], { keepdims: 0 }), 'sum', 'float32', []);
const reader = await backend.createSession(await r.build(), { threads: 2 });
const buffer = reader.allocate('F32', [1, 1, kvElements, 1]);
const kvRun = async () => {
  const t = performance.now();
  await reader.run({ kv: buffer.rows(0, 1) });
  return performance.now() - t;
};
const [gemm1, gemmN, kvRead] = await alternate([gemmRun(1), gemmRun(seqs), kvRun]);

const ceiling = (seqs * step1) / (gemmN! + kvRead!);
const result = {
  model: values.model, seqs, form,
  decodeTokPerS: { 1: tok1, [seqs]: tokN }, ratio: tokN! / tok1!,
  stepMs: { 1: step1, [seqs]: (1000 * seqs) / tokN! },
  gemmMs: { 1: gemm1, [seqs]: gemmN }, kvReadMs: kvRead, kvReadGB: (kvElements * 4) / 1e9, context, ceiling,
};
console.log(JSON.stringify(result));
console.log(`decode: 1 sequence ${tok1!.toFixed(2)} tok/s (step ${step1.toFixed(1)} ms), ${seqs} sequences ${tokN!.toFixed(2)} tok/s: ${result.ratio.toFixed(2)}×`);
console.log(`int8 GEMMs of one step: M=1 ${gemm1!.toFixed(1)} ms, M=${seqs} ${gemmN!.toFixed(1)} ms (${(gemmN! / gemm1!).toFixed(2)}×)`);
console.log(`KV read at ${seqs} × ${context} positions: ${result.kvReadGB.toFixed(2)} GB in ${kvRead!.toFixed(1)} ms (${(result.kvReadGB / (kvRead! / 1000)).toFixed(1)} GB/s)`);
console.log(`ceiling: ${seqs} × ${step1.toFixed(1)} / (${gemmN!.toFixed(1)} + ${kvRead!.toFixed(1)}) = ${ceiling.toFixed(2)}×`);
await gemms.dispose();
await reader.dispose();
