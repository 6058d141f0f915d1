/**
 * Run as `node --conditions=source --import tsx int8-cpu-check.ts <A8W8 folder>` (under an emulated CPU by
 * cpu-emulation.test.ts): prints one JSON line with the cpu backend's int8 probe verdicts, its choice, and the max
 * |Δ logprob| between onnxruntime's int8 forward of the folder and the plain-TypeScript W8A8 simulation.
 */
import { backends, KvCache, loadModel, ModelRunner } from 'qllm';
import { loadW8A8Reference, logSoftmaxRows, topK } from '@qllm/testing';

const dir = process.argv[2]!;
const backend = await backends.get('cpu');
let choice: unknown;
let error: string | undefined;
try {
  choice = await backend.int8GemmForm!();
} catch (e) {
  error = (e as Error).message;
}
let maxDelta: number | undefined;
if (!error) {
  const loaded = await loadModel({ model: dir, threads: 2 });
  const runner = new ModelRunner(loaded.session, loaded.config);
  const sim = await loadW8A8Reference(dir);
  const prompt = loaded.folder.tokenizer!.encode('The river discovered a letter written in 1894 while everyone was asleep.');
  const got = logSoftmaxRows(await runner.forward(new KvCache(), prompt, prompt.map((_, i) => i)), loaded.config.vocabSize);
  const expected = sim.forward(prompt);
  maxDelta = 0;
  for (let t = 0; t < prompt.length; t++) {
    for (const [id, lp] of topK(expected[t]!, 50)) maxDelta = Math.max(maxDelta, Math.abs(got[t]![id]! - lp));
  }
  await loaded.session.dispose();
}
process.stdout.write(`${JSON.stringify({ choice, error, maxDelta })}\n`);
