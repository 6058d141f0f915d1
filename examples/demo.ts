/**
 * `pnpm demo`: the main job on an embedded default. Makes a tiny random Qwen3 checkpoint with the real Qwen3
 * tokenizer, then generates the seed's three prompts greedily through `new LLM(...)`.
 * (Random weights: the text is gibberish; the pipeline is the real one.)
 */
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs/promises';
import { LLM, SamplingParams } from 'qllm';
import { makeTinyQwen3 } from '@qllm/testing';

const dir = process.argv[2] ?? path.join(os.tmpdir(), 'qllm-demo', 'tiny-qwen3');
await fs.rm(dir, { recursive: true, force: true });
await makeTinyQwen3(dir, { hiddenSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 32, intermediateSize: 160, seed: 0 });
console.error(`made a tiny Qwen3 checkpoint in ${dir}`);

const llm = new LLM({ model: dir });
const prompts = ['I am', 'Today is', 'Llama is'];
const outputs = await llm.generate(prompts, new SamplingParams({ temperature: 0, topP: 0.95, maxTokens: 16 }));
for (const output of outputs) {
  console.log(`Prompt: ${JSON.stringify(output.prompt)}, Generated text: ${JSON.stringify(output.outputs[0]!.text)}`);
}
await llm.close();
