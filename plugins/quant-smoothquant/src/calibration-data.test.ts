import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '@qllm/core';
import { CEVAL_SUBJECTS, loadCalibrationTexts, loadCeval, loadJsonl, loadTextFile } from './calibration-data.js';

const HEAD = '以下是中国关于';
const TAIL = '考试的单项选择题，请不要分析过程，直接在A、B、C、D四个选项中选出正确答案。\n\n';

let root: string;
const at = (...parts: string[]) => path.join(root, ...parts);

/** `n` plain rows after the given first rows, in `id,question,A,B,C,D,answer,explanation` order. */
function rows(first: string[], n: number, tag: string): string[] {
  const rest = Array.from({ length: n - first.length }, (_, j) => {
    const i = j + first.length;
    return `${i},${tag}第${i}题,甲${i},乙${i},丙${i},丁${i},${'ABCD'[i % 4]},解析${i}`;
  });
  return [...first, ...rest];
}

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'qllm-calibration-'));
  // ceval/dev: the first three subjects only, 7 rows each.
  await mkdir(at('ceval', 'dev'), { recursive: true });
  await mkdir(at('ceval', 'val'));
  await writeFile(at('ceval', 'dev', 'computer_network_dev.csv'), [
    'id,question,A,B,C,D,answer,explanation',
    ...rows([
      '0,"下列协议中, 属于传输层的是____","IP, ICMP",TCP,HTTP,ARP,B,"TCP 是传输层协议, 所以选 B"',
      '1,"阅读下面的配置：\nip route 0.0.0.0 0.0.0.0 10.0.0.1\n它表示""默认路由""吗？",是,否,不确定,都不对,A,',
    ], 7, '计算机网络'),
  ].join('\n') + '\n');
  // Columns in another order, no explanation column.
  await writeFile(at('ceval', 'dev', 'operating_system_dev.csv'), [
    'id,A,B,C,D,question,answer',
    ...Array.from({ length: 7 }, (_, i) => `${i},选项${i}A,选项${i}B,选项${i}C,选项${i}D,操作系统第${i}题,${'DCBA'[i % 4]}`),
  ].join('\n'));
  // A BOM and CRLF line ends.
  await writeFile(at('ceval', 'dev', 'computer_architecture_dev.csv'),
    '\uFEFF' + ['id,question,A,B,C,D,answer,explanation', ...rows([], 7, '计算机组成')].join('\r\n') + '\r\n');

  // full/val: all 52 subjects, 7 rows each.
  await mkdir(at('full', 'val'), { recursive: true });
  for (const [subject] of CEVAL_SUBJECTS) {
    await writeFile(at('full', 'val', `${subject}_val.csv`), ['id,question,A,B,C,D,answer,explanation', ...rows([], 7, subject)].join('\n'));
  }
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('loadCeval', () => {
  it("builds Golden Stick's prompt byte for byte (quoted commas, newlines and quotes)", async () => {
    const samples = await loadCeval(at('ceval', 'dev'), { numSamples: 15 });
    expect(samples[0]).toEqual({
      subject: 'computer_network',
      prompt: `${HEAD}计算机网络${TAIL}下列协议中, 属于传输层的是____\nA. IP, ICMP\nB. TCP\nC. HTTP\nD. ARP\n答案：`,
      text: `${HEAD}计算机网络${TAIL}下列协议中, 属于传输层的是____\nA. IP, ICMP\nB. TCP\nC. HTTP\nD. ARP\n答案：B`,
      answer: 'B',
    });
    expect(samples[1]!.prompt).toBe(
      `${HEAD}计算机网络${TAIL}阅读下面的配置：\nip route 0.0.0.0 0.0.0.0 10.0.0.1\n它表示"默认路由"吗？\nA. 是\nB. 否\nC. 不确定\nD. 都不对\n答案：`,
    );
    expect(samples[7]!.text).toBe(`${HEAD}操作系统${TAIL}操作系统第0题\nA. 选项0A\nB. 选项0B\nC. 选项0C\nD. 选项0D\n答案：D`);
    expect(samples[14]!.text).toBe(`${HEAD}计算机组成${TAIL}计算机组成第0题\nA. 甲0\nB. 乙0\nC. 丙0\nD. 丁0\n答案：A`);
  });

  it('below 52 samples has no per-subject cap and stops at numSamples', async () => {
    const samples = await loadCeval(at('ceval', 'dev'), { numSamples: 15 });
    expect(samples.map((s) => s.subject)).toEqual([
      ...Array<string>(7).fill('computer_network'), ...Array<string>(7).fill('operating_system'), 'computer_architecture',
    ]);
  });

  it('takes 5 rows per subject at the default 200 (the `3 < idx` quirk): the first 40 subjects', async () => {
    const samples = await loadCeval(at('full', 'val'));
    expect(samples).toHaveLength(200);
    const subjects = CEVAL_SUBJECTS.slice(0, 40).map(([s]) => s);
    expect(subjects.at(-1)).toBe('high_school_history');
    expect(samples.map((s) => s.subject)).toEqual(subjects.flatMap((s) => Array<string>(5).fill(s)));
    expect(samples.slice(0, 5).map((s) => s.answer)).toEqual(['A', 'B', 'C', 'D', 'A']); // rows idx 0 … 4
  });

  it('takes int(n/52) + 2 rows per subject and stops mid-subject at numSamples', async () => {
    const four = await loadCeval(at('full', 'val'), { numSamples: 104 });
    expect(four.map((s) => s.subject)).toEqual(CEVAL_SUBJECTS.slice(0, 26).flatMap(([s]) => Array<string>(4).fill(s)));
    const three = await loadCeval(at('full', 'val'), { numSamples: 52 });
    expect(three).toHaveLength(52);
    expect(three.slice(48).map((s) => s.subject)).toEqual([...Array<string>(3).fill(CEVAL_SUBJECTS[16]![0]), CEVAL_SUBJECTS[17]![0]]);
  });

  it('fails on a needed subject csv that is absent, as pd.read_csv does', async () => {
    await expect(loadCeval(at('ceval', 'dev'))).rejects.toThrow(
      new ConfigError(`${at('ceval', 'dev', 'college_programming_dev.csv')}: cannot read the CEval csv — file not found`),
    );
  });

  it('explains a wrong folder', async () => {
    await expect(loadCeval(at('nope'))).rejects.toThrow(new ConfigError(`CEval folder ${at('nope')}: not found`));
    await expect(loadCeval(at('ceval'))).rejects.toThrow(/looks like the CEval root \(it holds dev\/, val\/\): pass a split folder such as ceval\/dev/);
    await expect(loadCeval(at('ceval', 'val'))).rejects.toThrow(/no csv named \{subject\}_val\.csv \(e\.g\. computer_network_val\.csv\)/);
    const file = at('ceval', 'dev', 'operating_system_dev.csv');
    await expect(loadCeval(file)).rejects.toThrow(/not a folder/);
    await expect(loadCeval(at('full', 'val'), { numSamples: 0 })).rejects.toThrow(/numSamples must be a positive integer/);
  });

  it('names the file and column of a bad csv, and refuses the test split', async () => {
    for (const split of ['bad', 'test', 'broken']) await mkdir(at('errors', split), { recursive: true });
    const bad = at('errors', 'bad', 'computer_network_bad.csv');
    await writeFile(bad, 'id,question,A,B,D,answer\n0,q,a,b,d,A\n');
    await expect(loadCeval(at('errors', 'bad'))).rejects.toThrow(new ConfigError(`${bad}: missing column 'C' (header: id,question,A,B,D,answer)`));
    await writeFile(at('errors', 'test', 'computer_network_test.csv'), 'id,question,A,B,C,D\n0,q,a,b,c,d\n');
    await expect(loadCeval(at('errors', 'test'))).rejects.toThrow(/computer_network_test\.csv: no 'answer' column — the CEval test split has no answers/);
    const broken = at('errors', 'broken', 'computer_network_broken.csv');
    await writeFile(broken, 'id,question,A,B,C,D,answer\n0,"q,a,b,c,d,A\n');
    await expect(loadCeval(at('errors', 'broken'))).rejects.toThrow(`${broken}: invalid csv`);
  });
});

describe('text and JSONL files', () => {
  it('splits plain text on blank lines', async () => {
    const file = at('para.txt');
    await writeFile(file, '  first paragraph\nstill first  \r\n\r\n \t \nsecond\n\n\n\nthird\n');
    expect(await loadTextFile(file)).toEqual(['first paragraph\nstill first', 'second', 'third']);
  });

  it('reads one text per JSONL line', async () => {
    const file = at('data.jsonl');
    await writeFile(file, '{"text": "一"}\n\n{"text": "two\\nlines", "id": 2}\r\n');
    expect(await loadJsonl(file)).toEqual(['一', 'two\nlines']);
  });

  it('names the file and line of a bad JSONL line', async () => {
    const file = at('bad.jsonl');
    await writeFile(file, '{"text": "ok"}\n{"text": \n');
    await expect(loadJsonl(file)).rejects.toThrow(`${file} line 2: not valid JSON`);
    await writeFile(file, '{"text": "ok"}\n\n{"content": "no text"}\n');
    await expect(loadJsonl(file)).rejects.toThrow(new ConfigError(`${file} line 3: expected an object with a non-empty string "text" field`));
    await writeFile(file, '["text"]\n');
    await expect(loadJsonl(file)).rejects.toThrow(`${file} line 1: expected an object`);
  });

  it('rejects missing and empty files', async () => {
    await expect(loadTextFile(at('missing.txt'))).rejects.toThrow(new ConfigError(`${at('missing.txt')}: cannot read the calibration text file — file not found`));
    await expect(loadJsonl(at('missing.jsonl'))).rejects.toThrow(/missing\.jsonl: cannot read the calibration JSONL file — file not found/);
    await writeFile(at('empty.txt'), ' \n\n  \n');
    await expect(loadTextFile(at('empty.txt'))).rejects.toThrow(`${at('empty.txt')}: no calibration text`);
    await writeFile(at('empty.jsonl'), '\n');
    await expect(loadJsonl(at('empty.jsonl'))).rejects.toThrow(`${at('empty.jsonl')}: no calibration samples`);
  });
});

describe('binary data given as calibration text', () => {
  /** Deterministic pseudo-random bytes (xorshift32). */
  function randomBytes(n: number, seed: number): Uint8Array {
    const out = new Uint8Array(n);
    let x = seed;
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      out[i] = x & 0xff;
    }
    return out;
  }

  it('rejects bytes that are not UTF-8, naming the file and line', async () => {
    const file = at('garbage.txt');
    await writeFile(file, randomBytes(4096, 12345));
    await expect(loadTextFile(file)).rejects.toThrow(ConfigError);
    await expect(loadTextFile(file)).rejects.toThrow(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} line \\d+: the calibration text file is not valid UTF-8 text`));
    await writeFile(at('good.txt'), 'good text');
    await expect(loadCalibrationTexts({ files: [at('good.txt'), file] })).rejects.toThrow(/garbage\.txt line \d+: .*not valid UTF-8/);
    // A lone invalid byte on line 3 of otherwise good text.
    const one = at('latin1.txt');
    await writeFile(one, Buffer.concat([Buffer.from('good\n\nline three: caf'), Buffer.from([0xe9]), Buffer.from('\n')]));
    await expect(loadTextFile(one)).rejects.toThrow(new ConfigError(`${one} line 3: the calibration text file is not valid UTF-8 text (a binary file?)`));
  });

  it('rejects NUL characters (e.g. UTF-16 text) and text that is mostly control characters', async () => {
    const utf16 = at('utf16.txt');
    await writeFile(utf16, Buffer.from('first line\n\nsecond paragraph\n', 'utf16le'));
    await expect(loadTextFile(utf16)).rejects.toThrow(new ConfigError(`${utf16} line 1: the calibration text file holds a NUL character, so it is binary data, not text`));
    const controls = at('controls.txt');
    // Valid UTF-8, no NUL, but bytes 0x01–0x1f (whitespace aside) and DEL around a few letters.
    const bytes = Array.from({ length: 600 }, (_, i) => (i % 10 === 0 ? 0x61 : [1, 2, 3, 4, 5, 6, 7, 8, 14, 20, 27, 31, 127][i % 13]!));
    await writeFile(controls, Buffer.from(bytes));
    await expect(loadTextFile(controls)).rejects.toThrow(new RegExp(`controls\\.txt: binary data, not text — \\d+ of its \\d+ non-space characters are control characters`));
    // A few escape sequences in real text are fine.
    const colored = at('colored.txt');
    await writeFile(colored, 'a \u001b[31mred\u001b[0m word in a sentence\n\nand a tab\there');
    expect(await loadTextFile(colored)).toEqual(['a \u001b[31mred\u001b[0m word in a sentence', 'and a tab\there']);
  });

  it('names the JSONL line of bytes that are not UTF-8, and of a text that is binary', async () => {
    const file = at('binary.jsonl');
    await writeFile(file, Buffer.concat([Buffer.from('{"text": "ok"}\n{"text": "fine"}\n{"text": "'), Buffer.from(randomBytes(64, 7)), Buffer.from('"}\n')]));
    await expect(loadJsonl(file)).rejects.toThrow(new ConfigError(`${file} line 3: the calibration JSONL file is not valid UTF-8 text (a binary file?)`));
    await writeFile(file, '{"text": "ok"}\n{"text": "nul \\u0000 inside"}\n');
    await expect(loadJsonl(file)).rejects.toThrow(new ConfigError(`${file} line 2: the calibration text holds a NUL character, so it is binary data, not text`));
    await writeFile(file, '{"text": "ok"}\n\n{"text": "\\u0001\\u0002\\u0003\\u0004x"}\n');
    await expect(loadJsonl(file)).rejects.toThrow(new ConfigError(`${file} line 3: binary data, not text — 4 of its 5 non-space characters are control characters`));
  });

  it('rejects a CEval csv that is not UTF-8, naming it', async () => {
    await mkdir(at('binary-ceval', 'dev'), { recursive: true });
    const csv = at('binary-ceval', 'dev', 'computer_network_dev.csv');
    await writeFile(csv, Buffer.concat([Buffer.from('id,question,A,B,C,D,answer\n'), Buffer.from(randomBytes(256, 99))]));
    await expect(loadCeval(at('binary-ceval', 'dev'))).rejects.toThrow(new ConfigError(`${csv} line 2: the CEval csv is not valid UTF-8 text (a binary file?)`));
  });
});

describe('loadCalibrationTexts', () => {
  it('puts CEval first, picks the loader by extension and caps at numSamples', async () => {
    await writeFile(at('a.md'), 'alpha\n\nbeta');
    await writeFile(at('b.JSONL'), '{"text": "gamma"}\n{"text": "delta"}');
    const all = await loadCalibrationTexts({ files: [at('a.md'), at('b.JSONL')], ceval: at('full', 'val') });
    expect(all).toHaveLength(204);
    expect(all[0]!.startsWith(`${HEAD}计算机网络${TAIL}`)).toBe(true);
    expect(all.slice(200)).toEqual(['alpha', 'beta', 'gamma', 'delta']);
    const capped = await loadCalibrationTexts({ files: [at('a.md'), at('b.JSONL')], ceval: at('ceval', 'dev'), numSamples: 16 });
    expect(capped).toHaveLength(16);
    expect(capped.slice(14)).toEqual([expect.stringContaining('计算机组成第0题'), expect.stringContaining('计算机组成第1题')]); // CEval fills the cap
    expect(await loadCalibrationTexts({ files: [at('b.JSONL'), at('a.md')], numSamples: 3 })).toEqual(['gamma', 'delta', 'alpha']);
  });

  it('still reads every file, and needs at least one source', async () => {
    await expect(loadCalibrationTexts({ files: [at('a.md'), at('missing.txt')], numSamples: 1 })).rejects.toThrow(/missing\.txt/);
    await expect(loadCalibrationTexts({})).rejects.toThrow(new ConfigError('no calibration data: give calibration files or a CEval split folder'));
    await expect(loadCalibrationTexts({ files: [at('a.md')], numSamples: 1.5 })).rejects.toThrow(/numSamples/);
  });
});
