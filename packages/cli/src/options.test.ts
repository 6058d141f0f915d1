/** Option-argument parsing, in process: strict numbers, token ids, and generate's flags (errors before any model loads). */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProgram } from './index.js';
import { int, num, parseTokenIds } from './options.js';

describe('num', () => {
  const parse = num('top-p');
  it.each(['0.5', '-2', '1e-3', '.5', '5.', '+1', ' 0.7 ', '1E2'])('accepts %j', (value) => {
    expect(parse(value)).toBe(Number(value));
  });
  it.each(['', ' ', 'NaN', 'Infinity', '-Infinity', '0x10', '0b1', '0o7', '1.5abc', '1_000', '--1', '1e', '1e400', '1,5'])(
    'rejects %j naming the flag',
    (value) => {
      expect(() => parse(value)).toThrow(`--top-p expects a number, got '${value}'`);
    },
  );
});

describe('int', () => {
  it.each([['7', 7], ['-3', -3], ['+4', 4], [' 12 ', 12], ['0', 0]] as const)('accepts %j', (value, n) => {
    expect(int('seed')(value)).toBe(n);
  });
  it.each(['1e3', '1.0', '1.5', '0x10', '', 'NaN', 'Infinity', '12abc', '9007199254740993', '- 1'])('rejects %j naming the flag', (value) => {
    expect(() => int('seed')(value)).toThrow(`--seed expects an integer, got '${value}'`);
  });
  it('checks a range, saying which', () => {
    expect(int('threads', 1, 256)('256')).toBe(256);
    expect(() => int('threads', 1, 256)('257')).toThrow("--threads expects an integer in [1, 256], got '257'");
    expect(() => int('max-logprobs', 0)('-1')).toThrow("--max-logprobs expects an integer >= 0, got '-1'");
  });
  it('quotes a long bad value cut short', () => {
    expect(() => int('seed')('9'.repeat(5000))).toThrow(/got '9{61}\.\.\.'$/);
  });
});

describe('parseTokenIds', () => {
  it('takes decimal ids separated by commas, whitespace around each allowed', () => {
    expect(parseTokenIds('40,1079,264')).toEqual([40, 1079, 264]);
    expect(parseTokenIds(' 40 , 1079,\t264 ')).toEqual([40, 1079, 264]);
    expect(parseTokenIds('0')).toEqual([0]);
  });
  it.each([
    ['1e3', "item 1 of 1 is '1e3'"],
    ['0x10', "item 1 of 1 is '0x10'"],
    ['1,,2', 'item 2 of 3 is empty'],
    ['1,2,', 'item 3 of 3 is empty'],
    [',1', 'item 1 of 2 is empty'],
    ['1,-2', "item 2 of 2 is '-2'"],
    ['1.5', "item 1 of 1 is '1.5'"],
    ['1 2', "item 1 of 1 is '1 2'"],
    ['7,2147483648', "item 2 of 2 ('2147483648') is larger than 2147483647"],
    ['', 'got no ids'],
  ])('rejects %j, naming the flag and the item', (value, what) => {
    expect(() => parseTokenIds(value)).toThrow(`--prompt-token-ids expects comma-separated non-negative integers, ${value === '' ? '' : 'but '}${what}`);
  });
  it('with whitespace separators (files): commas and/or whitespace, still no empty items', () => {
    expect(parseTokenIds('1 2\n3,4 ,\n5\r\n', 'f', { whitespace: true })).toEqual([1, 2, 3, 4, 5]);
    expect(() => parseTokenIds('1,,2', 'f', { whitespace: true })).toThrow('f expects comma- or whitespace-separated non-negative integers, but item 2 of 3 is empty');
    expect(() => parseTokenIds('1, ,2', 'f', { whitespace: true })).toThrow('item 2 of 3 is empty');
    expect(() => parseTokenIds('1 0x10', 'f', { whitespace: true })).toThrow("item 2 of 2 is '0x10'");
  });
});

describe('qllm generate flags', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'qllm-cli-options-'));
    await fs.writeFile(path.join(dir, 'empty.txt'), '');
    await fs.writeFile(path.join(dir, 'bad-ids.txt'), '1 2\n3,,4\n');
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });
  // Every one of these fails while parsing or before the model is loaded, so no model folder is needed.
  const generate = (...args: string[]) => createProgram().parseAsync(['generate', '--model', '/nonexistent', ...args], { from: 'user' });

  it.each([
    [['--threads', '500'], "--threads expects an integer in [1, 256], got '500'"],
    [['--threads', '-3'], "--threads expects an integer in [1, 256], got '-3'"],
    [['--threads', '0'], "--threads expects an integer in [1, 256], got '0'"],
    [['--threads', '2.5'], "--threads expects an integer in [1, 256], got '2.5'"],
    [['--max-tokens', '1e3'], "--max-tokens expects an integer, got '1e3'"],
    [['--max-tokens', ''], "--max-tokens expects an integer, got ''"],
    [['--max-tokens', '0'], '--max-tokens must be an integer in [1, 2147483647], got 0'],
    [['--temperature', 'NaN'], "--temperature expects a number, got 'NaN'"],
    [['--temperature', 'Infinity'], "--temperature expects a number, got 'Infinity'"],
    [['--temperature', '-1'], '--temperature must be a number in [0, 2], got -1'],
    [['--top-p', '0x10'], "--top-p expects a number, got '0x10'"],
    [['--top-p', '0'], '--top-p must be a number in (0, 1], got 0'],
    [['--top-k', '1e3'], "--top-k expects an integer, got '1e3'"],
    [['--top-k', '-2'], '--top-k must be 0 or -1 (off) or an integer in [1, 2147483647], got -2'],
    [['--seed', '0x10'], "--seed expects an integer, got '0x10'"],
    [['--logprobs', '3abc'], "--logprobs expects an integer, got '3abc'"],
    [['--logprobs', '-1'], '--logprobs must be an integer in [0, 2147483647], got -1'],
    [['--max-logprobs', '-1'], "--max-logprobs expects an integer >= 0, got '-1'"],
    [['--prompt-token-ids', '1e3'], "--prompt-token-ids expects comma-separated non-negative integers, but item 1 of 1 is '1e3'"],
    [['--prompt-token-ids', '0x10'], "--prompt-token-ids expects comma-separated non-negative integers, but item 1 of 1 is '0x10'"],
    [['--prompt-token-ids', '1,,2'], '--prompt-token-ids expects comma-separated non-negative integers, but item 2 of 3 is empty'],
  ])('%j fails naming the flag', async (args, message) => {
    await expect(generate('--prompt', 'x', ...args)).rejects.toThrow(message);
  });

  it('rejects --logprobs above --max-logprobs (default 20) before loading anything, naming both numbers', async () => {
    await expect(generate('--prompt', 'x', '--logprobs', '1000000')).rejects.toThrow('--logprobs 1000000 is more than --max-logprobs 20');
    await expect(generate('--prompt', 'x', '--logprobs', '8', '--max-logprobs', '5')).rejects.toThrow('--logprobs 8 is more than --max-logprobs 5');
  });

  it('reports unreadable, empty and malformed prompt files, naming the flag and the file', async () => {
    const missing = path.join(dir, 'missing.txt');
    await expect(generate('--prompt-file', missing)).rejects.toThrow(`--prompt-file ${missing}: no such file`);
    await expect(generate('--prompt-file', dir)).rejects.toThrow(`--prompt-file ${dir}: is a folder, not a file`);
    await expect(generate('--prompt-file', path.join(dir, 'empty.txt'))).rejects.toThrow(`--prompt-file ${path.join(dir, 'empty.txt')} is empty`);
    await expect(generate('--prompt-token-ids-file', missing)).rejects.toThrow(`--prompt-token-ids-file ${missing}: no such file`);
    await expect(generate('--prompt-token-ids-file', path.join(dir, 'empty.txt'))).rejects.toThrow(
      `--prompt-token-ids-file ${path.join(dir, 'empty.txt')} expects comma- or whitespace-separated non-negative integers, got no ids`,
    );
    await expect(generate('--prompt-token-ids-file', path.join(dir, 'bad-ids.txt'))).rejects.toThrow(
      `--prompt-token-ids-file ${path.join(dir, 'bad-ids.txt')} expects comma- or whitespace-separated non-negative integers, but item 4 of 5 is empty`,
    );
  });

  it('asks for a prompt, listing every way to give one', async () => {
    await expect(generate()).rejects.toThrow('give at least one --prompt, --prompt-file, --prompt-token-ids or --prompt-token-ids-file');
  });
});

describe('qllm quantize flags', () => {
  const quantize = (...args: string[]) =>
    createProgram().parseAsync(['quantize', '--model', '/nonexistent', '--output', '/nonexistent-out', ...args], { from: 'user' });
  it.each([
    [['--threads', '500'], "--threads expects an integer in [1, 256], got '500'"],
    [['--threads', '-3'], "--threads expects an integer in [1, 256], got '-3'"],
    [['--num-samples', '1e3'], "--num-samples expects an integer >= 1, got '1e3'"],
    [['--max-seq-len', '0x10'], "--max-seq-len expects an integer >= 1, got '0x10'"],
    [['--alpha', ''], "--alpha expects a number in [0, 1], got ''"],
    [['--alpha', '0.5x'], "--alpha expects a number in [0, 1], got '0.5x'"],
  ])('%j fails naming the flag', async (args, message) => {
    await expect(quantize(...args)).rejects.toThrow(message);
  });
});
