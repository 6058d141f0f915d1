/** Qwen3's reasoning split (vLLM's qwen3 parser): whole texts, and the same texts streamed in every way of cutting them. */
import { describe, expect, it } from 'vitest';
import { ReasoningSplitter, splitReasoning } from './reasoning.js';

describe('splitReasoning (non-streaming)', () => {
  it('splits a closed think block, dropping the tags', () => {
    expect(splitReasoning('<think>\nLet me see.\n</think>\n\nThe answer is 42.', true)).toEqual({
      reasoning: '\nLet me see.\n',
      content: '\n\nThe answer is 42.',
    });
  });

  it('takes text before </think> as reasoning when the prompt opened the block', () => {
    expect(splitReasoning('hmm</think>42', true)).toEqual({ reasoning: 'hmm', content: '42' });
  });

  it('with thinking on and no </think>: all reasoning (a truncated thought), content null', () => {
    expect(splitReasoning('<think>still thinking', true)).toEqual({ reasoning: 'still thinking', content: null });
  });

  it('with thinking off: all content, reasoning null, tags left alone', () => {
    expect(splitReasoning('plain <think>answer', false)).toEqual({ reasoning: null, content: 'plain <think>answer' });
  });

  it('an empty answer after the block is a null content', () => {
    expect(splitReasoning('<think>x</think>', true)).toEqual({ reasoning: 'x', content: null });
  });

  it('a </think> inside the answer stays in the content', () => {
    expect(splitReasoning('<think>a</think>b</think>c', true)).toEqual({ reasoning: 'a', content: 'b</think>c' });
  });
});

describe('ReasoningSplitter (streaming)', () => {
  const texts = [
    '<think>\nLet me see.\n</think>\n\nThe answer is 42.',
    'short</think>done',
    '<think>never closed, < and </ and </thin appear',
    'no tags at all',
    '<think></think>',
  ];

  for (const text of texts) {
    it(`cut anywhere, deltas add up to the whole split: ${JSON.stringify(text).slice(0, 40)}`, () => {
      const whole = splitReasoning(text, true);
      // Every two-cut split, and one character at a time.
      const cuttings: string[][] = [[...text]];
      for (let i = 0; i <= text.length; i++) for (let j = i; j <= text.length; j += 3) cuttings.push([text.slice(0, i), text.slice(i, j), text.slice(j)]);
      for (const pieces of cuttings) {
        const s = new ReasoningSplitter(true);
        let reasoning = '';
        let content = '';
        pieces.forEach((p, k) => {
          const d = s.push(p, k === pieces.length - 1);
          reasoning += d.reasoning;
          content += d.content;
          expect(d.reasoning.includes('<think>') || d.reasoning.includes('</think>')).toBe(false);
        });
        expect(reasoning).toBe(whole.reasoning ?? '');
        expect(content).toBe(whole.content ?? '');
      }
    });
  }

  it('holds back only a possible tag: other text is sent at once', () => {
    const s = new ReasoningSplitter(true);
    expect(s.push('abc</th')).toEqual({ reasoning: 'abc', content: '' });
    expect(s.push('ink>x')).toEqual({ reasoning: '', content: 'x' });
    expect(s.push('</think>')).toEqual({ reasoning: '', content: '</think>' });
  });
});
