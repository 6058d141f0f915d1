/**
 * `pnpm demo`: the main job on an embedded default. Makes a tiny random Qwen3 checkpoint with the real Qwen3
 * tokenizer (with a few outlier channels, as trained LLMs have), quantizes it with SmoothQuant A8W8 on the
 * embedded calibration text, prints the fidelity table, then generates the seed's three prompts greedily with
 * `new LLM({ model, quantization: 'SmoothQuant' })`. (Random weights: the text is gibberish; the pipeline is real.)
 */
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { LLM, quantize, SamplingParams } from 'qllm';
import { makeTinyQwen3 } from '@qllm/testing';

const root = process.argv[2] ?? path.join(os.tmpdir(), 'qllm-demo');
const floatDir = path.join(root, 'tiny-qwen3');
const quantDir = path.join(root, 'tiny-qwen3-A8W8');
await fs.rm(root, { recursive: true, force: true });
await makeTinyQwen3(floatDir, {
  hiddenSize: 128, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 32, intermediateSize: 384, seed: 0,
  outlierChannels: { channels: [7, 33, 90], scale: 40 },
});
console.error(`made a tiny bf16 Qwen3 in ${floatDir}`);

const calibration = fileURLToPath(new URL('./data/calibration.txt', import.meta.url));
const result = await quantize({ method: 'SmoothQuant', model: floatDir, output: quantDir, calibration: { files: [calibration] } });
console.log(result.summary);
console.log(`
How to read it: each layer's "relative output error" is ‖y_int8 − y_float‖ / ‖y_float‖ of that decoder layer
alone, fed the float model's own input to it, on held-out calibration samples (0 would be exact; int8 noise on a
healthy layer is around 1e-2). "End to end" runs the whole int8 stack and the whole float stack on the same held-out
tokens through the float head: top-1 agreement is how often both pick the same next token, mean KL is
KL(float ‖ int8) of the next-token distributions in nats (lower is better). This model's weights are random, so its
distributions are flat and close calls are common: a trained model, whose distributions are peaked, agrees more.`);
console.log(`\nwrote ${quantDir}\n`);

console.log('The weights are random, so the generated text below is noise: what it shows is the int8 model running.');
const llm = new LLM({ model: quantDir, quantization: 'SmoothQuant' });
const outputs = await llm.generate(['I am', 'Today is', 'Llama is'], new SamplingParams({ temperature: 0, topP: 0.95, maxTokens: 16 }));
for (const output of outputs) {
  console.log(`Prompt: ${JSON.stringify(output.prompt)}, Generated text: ${JSON.stringify(output.outputs[0]!.text)}`);
}
await llm.close();
