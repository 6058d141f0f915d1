/** The offline API end to end: LLM on a generated tiny Qwen3 with the real tokenizer, through the registered plugins. */
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, LLM, loadModel, modelArchitectures, quantizationMethods, SamplingParams } from 'qllm';
import { loadRefWeights, makeTinyQwen3, Qwen3Reference, refConfigFromHf } from '@qllm/testing';

let root: string;
let modelDir: string;
let llm: LLM;
let ref: Qwen3Reference;

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'qllm-llm-'));
  modelDir = path.join(root, 'tiny');
  const { config } = await makeTinyQwen3(modelDir, { seed: 3 });
  ref = new Qwen3Reference(refConfigFromHf(config), await loadRefWeights(modelDir));
  llm = await LLM.create({ model: modelDir, threads: 2 });
});
afterAll(async () => {
  await llm?.close();
  await fs.rm(root, { recursive: true, force: true });
});

describe('LLM.generate', () => {
  it('generates greedily what the float64 reference predicts, with raw logprobs', async () => {
    const [out] = await llm.generate(['I am'], new SamplingParams({ temperature: 0, maxTokens: 8, logprobs: 3 }));
    const tokenizer = (await llm.getTokenizer())!;
    expect(out!.prompt).toBe('I am');
    expect(out!.promptTokenIds).toEqual(tokenizer.encode('I am'));
    const expected = ref.greedy(out!.promptTokenIds, 8);
    const completion = out!.outputs[0]!;
    expect(completion.tokenIds).toEqual(expected.tokenIds);
    expect(completion.text).toBe(tokenizer.decode(expected.tokenIds, { skipSpecialTokens: true }));
    expect(completion.finishReason).toBe('length');
    let cumulative = 0;
    completion.logprobs!.forEach((entry, i) => {
      const chosen = expected.tokenIds[i]!;
      expect(Object.keys(entry).length).toBeGreaterThanOrEqual(3);
      expect(entry[chosen]!.logprob).toBeCloseTo(expected.logprobs[i]![chosen]!, 3);
      expect(entry[chosen]!.rank).toBe(1);
      cumulative += expected.logprobs[i]![chosen]!;
    });
    expect(completion.cumulativeLogprob!).toBeCloseTo(cumulative, 2);
  });

  it('accepts token-id prompts and keeps input order', async () => {
    const outs = await llm.generate([{ promptTokenIds: [40, 1079] }, 'Today is'], new SamplingParams({ temperature: 0, maxTokens: 2 }));
    expect(outs.map((o) => o.prompt)).toEqual([null, 'Today is']);
    expect(outs[0]!.promptTokenIds).toEqual([40, 1079]);
  });

  it('stops at a stop token id and at a stop string, as vLLM reports them', async () => {
    const greedy = new SamplingParams({ temperature: 0, maxTokens: 6 });
    const [base] = await llm.generate('Llama is', greedy);
    const ids = base!.outputs[0]!.tokenIds;
    const [byId] = await llm.generate('Llama is', new SamplingParams({ temperature: 0, maxTokens: 6, stopTokenIds: [ids[1]!] }));
    expect(byId!.outputs[0]!.tokenIds).toEqual(ids.slice(0, 2));
    expect(byId!.outputs[0]!.finishReason).toBe('stop');
    expect(byId!.outputs[0]!.stopReason).toBe(ids[1]);

    const text = base!.outputs[0]!.text;
    const stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 1);
    const [byText] = await llm.generate('Llama is', new SamplingParams({ temperature: 0, maxTokens: 6, stop }));
    expect(byText!.outputs[0]!.finishReason).toBe('stop');
    expect(byText!.outputs[0]!.stopReason).toBe(stop);
    expect(byText!.outputs[0]!.text).toBe(text.slice(0, text.indexOf(stop)));
  });

  it('stops at every EOS id of generation_config unless ignoreEos', async () => {
    const prompt = { promptTokenIds: [40, 1079] };
    const [base] = await llm.generate(prompt, new SamplingParams({ temperature: 0, maxTokens: 1 }));
    const first = base!.outputs[0]!.tokenIds[0]!;
    // Make the greedy token an EOS by loading with a generation_config that lists it.
    const dir = path.join(root, 'eos');
    await fs.cp(modelDir, dir, { recursive: true });
    await fs.writeFile(path.join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [151645, first] }));
    const eosLlm = await LLM.create({ model: dir, threads: 2 });
    const [stopped] = await eosLlm.generate(prompt, new SamplingParams({ temperature: 0, maxTokens: 5 }));
    expect(stopped!.outputs[0]!.tokenIds).toEqual([first]);
    expect(stopped!.outputs[0]!.finishReason).toBe('stop');
    expect(stopped!.outputs[0]!.stopReason).toBeNull();
    const [ignored] = await eosLlm.generate(prompt, new SamplingParams({ temperature: 0, maxTokens: 5, ignoreEos: true }));
    expect(ignored!.outputs[0]!.tokenIds.length).toBe(5);
    await eosLlm.close();
  });

  it('samples reproducibly with a seed, and n completions per prompt', async () => {
    const params = new SamplingParams({ temperature: 1, topP: 0.9, topK: 50, seed: 1234, maxTokens: 8, n: 2 });
    const [a] = await llm.generate('Today is', params);
    const [b] = await llm.generate('Today is', params);
    expect(a!.outputs.map((o) => o.tokenIds)).toEqual(b!.outputs.map((o) => o.tokenIds));
    expect(a!.outputs.map((o) => o.index)).toEqual([0, 1]);
  });

  it('uses generation_config.json as the default sampling parameters', async () => {
    const defaults = await llm.getDefaultSamplingParams();
    expect([defaults.temperature, defaults.topP, defaults.topK]).toEqual([0.6, 0.95, 20]);
  });

  it('renders the chat template from the folder with thinking on and off', async () => {
    const messages = [{ role: 'user', content: 'Hello' }];
    const params = new SamplingParams({ temperature: 0, maxTokens: 2 });
    const [thinking] = await llm.chat(messages, params);
    expect(thinking!.prompt).toBe('<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n');
    const [plain] = await llm.chat(messages, params, { enableThinking: false });
    expect(plain!.prompt).toBe('<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n');
    expect(plain!.promptTokenIds).toEqual([151644, 872, 198, 9707, 151645, 198, 151644, 77091, 198, 151667, 271, 151668, 271]);
  });

  it('rejects bad requests with messages naming the problem', async () => {
    await expect(llm.generate({ promptTokenIds: [] })).rejects.toThrow(/prompt is empty/);
    await expect(llm.generate({ promptTokenIds: [999999] })).rejects.toThrow(/token id 999999 is outside the vocabulary/);
    await expect(llm.generate(['a', 'b'], [new SamplingParams()])).rejects.toThrow(/2 prompts but 1 SamplingParams/);
  });
});

describe('loading', () => {
  it('registers the first-party plugins by name through the public registries', () => {
    expect(modelArchitectures.names()).toContain('Qwen3ForCausalLM');
    expect(backends.names()).toContain('cpu');
  });

  it('names the registered choices for an unknown backend, quantization or architecture', async () => {
    await expect(loadModel({ model: modelDir, backend: 'tpu' })).rejects.toThrow(/unknown backend 'tpu'; registered: .*cpu/);
    await expect(loadModel({ model: modelDir, quantization: 'nope' })).rejects.toThrow(/unknown quantization method 'nope'; registered:/);
    const dir = path.join(root, 'arch');
    await fs.cp(modelDir, dir, { recursive: true });
    const config = JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8'));
    await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify({ ...config, architectures: ['LlamaForCausalLM'] }));
    await expect(loadModel({ model: dir })).rejects.toThrow(/unknown model architecture 'LlamaForCausalLM'; registered: Qwen3ForCausalLM/);
  });

  it('refuses a checkpoint whose tensor shapes disagree with config.json, naming file and tensor', async () => {
    const dir = path.join(root, 'shape');
    await fs.cp(modelDir, dir, { recursive: true });
    const config = JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8'));
    await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify({ ...config, intermediate_size: 128 }));
    await expect(loadModel({ model: dir })).rejects.toThrow(/model\.safetensors: tensor 'model\.layers\.0\.mlp\.gate_proj\.weight' has shape \[160, 64\] but config\.json implies \[128, 64\]/);
  });

  it('refuses a checkpoint with a missing tensor, naming it', async () => {
    const dir = path.join(root, 'missing');
    const { config } = await makeTinyQwen3(dir, { seed: 3, numLayers: 1, tokenizer: false });
    await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify({ ...config, num_hidden_layers: 2 }));
    await expect(loadModel({ model: dir })).rejects.toThrow(/model\.layers\.1\.input_layernorm\.weight/);
  });

  it('rejects an explicit quantization for a float checkpoint', async () => {
    quantizationMethods.register('Fake', { specificationVersion: 'v1', name: 'Fake', recognizes: () => true, getLinearMethod: () => null }, { override: true });
    await expect(loadModel({ model: modelDir, quantization: 'Fake' })).rejects.toThrow(/has no quantization_config/);
  });
});
