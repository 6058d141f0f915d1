/**
 * The seed document's serving script (vLLM-MindSpore offline inference), in TypeScript. Usage:
 *   pnpm tsx examples/offline-inference.ts <quantized model dir, e.g. Qwen3-8B-A8W8>
 */
import { LLM, SamplingParams } from 'qllm';

const model = process.argv[2] ?? 'Qwen3-8B-A8W8';

// Sample prompts.
const prompts = ['I am', 'Today is', 'Llama is'];
// Create a sampling params object.
const samplingParams = new SamplingParams({ temperature: 0, topP: 0.95 });
// Create an LLM.
const llm = new LLM({ model, quantization: 'SmoothQuant' });
// Generate texts from the prompts. The output is a list of RequestOutput objects that contain the prompt,
// generated text, and other information.
const outputs = await llm.generate(prompts, samplingParams);
// Print the outputs.
for (const output of outputs) {
  const prompt = output.prompt;
  const generatedText = output.outputs[0]!.text;
  console.log(`Prompt: ${JSON.stringify(prompt)}, Generated text: ${JSON.stringify(generatedText)}`);
}
await llm.close();
