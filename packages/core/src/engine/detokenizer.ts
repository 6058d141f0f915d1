import type { QllmTokenizer } from '../loading/tokenizer.js';

/**
 * Incremental detokenization with stop strings, after vLLM V1's `IncrementalDetokenizer`
 * (vllm/v1/engine/detokenizer.py) and `detokenize_incrementally` (vllm/transformers_utils/detokenizer_utils.py).
 *
 * As in vLLM, each step decodes only a short window of recent token ids: a few tokens of already-emitted context
 * (the prefix_offset..read_offset tokens, which let the tokenizer decode the new tokens in context) followed by the
 * tokens not yet emitted. The new text is the window's text past what was already emitted, and a step whose text
 * ends in U+FFFD (a byte-level token that stops inside a UTF-8 character) emits nothing until a later token
 * completes it.
 *
 * Differences from vLLM, all so that the result is exactly `tokenizer.decode(outputIds)` and the work per token stays
 * bounded whatever the model emits:
 * - The emitted position inside the window is kept as a character count rather than re-decoding the prefix tokens
 *   each step (one decode of the window per token instead of two). Old tokens are dropped from the front of the window
 *   once they are more than CONTEXT tokens behind the first pending one; the emitted position is then re-aligned from
 *   the end of the text (a few bytes into the new window the UTF-8 decoder is in step again, and the context tokens
 *   are all emitted, so the text from the emitted position on is the same).
 * - Tokens that decode to nothing on their own (special tokens under skipSpecialTokens, the model's padding ids) are
 *   not kept in the window: vLLM's window grows by one per such token.
 * - If the text still ends in U+FFFD after MAX_WAIT tokens (never for valid text split at token boundaries: a character
 *   is at most 4 bytes; but possible for garbage, or for tokens that each end inside the next character), everything
 *   before the final U+FFFD is emitted (it can no longer change). vLLM would withhold all of it and keep growing the
 *   window until the end.
 * - On finish, text still withheld (a final incomplete character, as U+FFFD) is flushed, as `decode` would give it.
 * - The stop string that starts earliest wins (vLLM takes the first in the list that matches anywhere); at the same
 *   start, the shortest (it is the one that completed first).
 */

export interface DetokenizerOptions {
  skipSpecialTokens: boolean;
  stop: readonly string[];
  includeStopStrInOutput: boolean;
}

/** Emitted tokens kept in the window before the first pending one (vLLM's initial detokenization offset, 5). */
const CONTEXT = 5;
/** Steps the text may end in U+FFFD before what precedes that U+FFFD is emitted anyway. */
const MAX_WAIT = 4;
/** A UTF-8 sequence left incomplete at the end is at most 3 bytes, so it lies within the last 3 (non-empty) tokens. */
const MAX_INCOMPLETE_TOKENS = 3;
const REPLACEMENT = '\uFFFD';

export class IncrementalDetokenizer {
  /** Recent token ids: context (all emitted), then tokens whose text may not be emitted yet. */
  private window: number[];
  /** decode(window). */
  private windowText: string;
  /** Characters of windowText already emitted (or prompt context). windowText[0, emitted) no longer changes. */
  private emitted: number;
  /** Index in window of the first token whose text may not be fully emitted. */
  private pendingFrom: number;
  /** Steps since the text last ended outside an incomplete character. */
  private waitSteps = 0;
  private text = '';
  private stopped: string | undefined;
  private flushed = false;
  private lastOutputOffset = 0;
  private readonly stop: readonly string[];
  /** Characters withheld from streaming while a stop string may still be completing (vLLM's stop_buffer_length). */
  private readonly stopBufferLength: number;

  constructor(
    private readonly tokenizer: QllmTokenizer,
    promptTokenIds: readonly number[],
    private readonly options: DetokenizerOptions,
  ) {
    this.stop = options.stop.filter((s) => s.length > 0);
    const longest = this.stop.reduce((m, s) => Math.max(m, s.length), 0);
    this.stopBufferLength = this.stop.length && !options.includeStopStrInOutput ? longest - 1 : 0;
    // The prompt's last tokens are context for the first output tokens (e.g. a token that completes a character
    // begun in the prompt). If the prompt itself ends inside a character, that character belongs to the output.
    this.window = promptTokenIds.slice(-CONTEXT);
    this.windowText = this.decode(this.window);
    this.emitted = stableLength(this.windowText);
    this.pendingFrom = this.window.length;
  }

  /** The output text so far (after stop truncation); text withheld for an incomplete character is not in it. */
  get outputText(): string {
    return this.text;
  }

  /** The stop string that ended the output, if one did. */
  get stopString(): string | undefined {
    return this.stopped;
  }

  /**
   * Add generated tokens (usually one); returns the stop string that fired, if any (output text is then truncated per
   * includeStopStrInOutput). Once a stop string has fired, further tokens are ignored.
   */
  update(newTokenIds: readonly number[]): string | undefined {
    if (this.stopped !== undefined) return undefined;
    if (this.flushed) throw new Error('IncrementalDetokenizer.update: the output was already finished');
    let delta = '';
    try {
      for (const id of newTokenIds) delta += this.step(id);
    } finally {
      // If a token throws (an id outside the vocabulary), the text of the ones before it is still kept.
      if (delta) this.text += delta;
    }
    return delta ? this.checkStop(delta.length) : undefined;
  }

  /**
   * Ends the output: text withheld for an incomplete character is added (as `decode` gives it, with U+FFFD) and
   * checked for stop strings. Returns the stop string if that text completed one. Idempotent; getNextOutputText
   * calls it when `finished`.
   */
  finish(): string | undefined {
    if (this.flushed || this.stopped !== undefined) return undefined;
    this.flushed = true;
    const rest = this.windowText.slice(this.emitted);
    this.emitted = this.windowText.length;
    this.pendingFrom = this.window.length;
    if (!rest) return undefined;
    this.text += rest;
    return this.checkStop(rest.length);
  }

  /**
   * Text not yet returned by a previous call (delta) or all of it (not delta). While not finished (and not stopped),
   * the last (longest stop string − 1) characters are withheld so that a stop string split across steps never streams.
   */
  getNextOutputText(finished: boolean, delta: boolean): string {
    if (finished) this.finish();
    const buffer = finished || this.stopped !== undefined ? 0 : this.stopBufferLength;
    let end = Math.max(0, this.text.length - buffer);
    // Never end a piece between the two halves of a surrogate pair.
    if (end > 0 && end < this.text.length && isHighSurrogate(this.text.charCodeAt(end - 1))) end--;
    if (!delta) return this.text.slice(0, end);
    const start = this.lastOutputOffset;
    if (start >= end) return '';
    this.lastOutputOffset = end;
    return this.text.slice(start, end);
  }

  /** One token: returns the text it makes final (often '', e.g. mid-character). */
  private step(id: number): string {
    const window = this.window;
    window.push(id);
    let text: string;
    try {
      text = this.decode(window);
    } catch (e) {
      window.pop(); // e.g. an id outside the vocabulary: leave the state as it was
      throw e;
    }
    if (text === this.windowText && this.decode([id]) === '') {
      // No text of its own (a skipped special token, a padding id): it changes nothing, now or later.
      window.pop();
      return '';
    }
    this.windowText = text;
    let out = '';
    if (!text.endsWith(REPLACEMENT)) {
      out = text.slice(this.emitted);
      this.emitted = text.length;
      this.pendingFrom = window.length;
      this.waitSteps = 0;
    } else if (++this.waitSteps > MAX_WAIT) {
      // Only the final U+FFFD (an incomplete sequence, at most the last 3 tokens' bytes) can still change.
      const stable = text.length - 1;
      if (stable > this.emitted) {
        out = text.slice(this.emitted, stable);
        this.emitted = stable;
      }
      this.pendingFrom = Math.max(this.pendingFrom, window.length - MAX_INCOMPLETE_TOKENS);
    }
    if (this.pendingFrom >= 2 * CONTEXT) this.trimWindow();
    return out;
  }

  /** Drops all but CONTEXT tokens before the first pending one. */
  private trimWindow(): void {
    const drop = this.pendingFrom - CONTEXT;
    const window = this.window.slice(drop);
    const text = this.decode(window);
    const pending = this.windowText.length - this.emitted;
    const emitted = text.length - pending;
    // The text from the emitted position on must be the same in both windows (it is, see the file comment); if not,
    // keep the longer window rather than risk wrong output.
    if (emitted < 0 || text.slice(emitted) !== this.windowText.slice(this.emitted)) return;
    this.window = window;
    this.windowText = text;
    this.emitted = emitted;
    this.pendingFrom -= drop;
  }

  private decode(ids: readonly number[]): string {
    return ids.length === 0 ? '' : this.tokenizer.decode(ids, { skipSpecialTokens: this.options.skipSpecialTokens });
  }

  /**
   * Looks for a stop string ending in the last `newChars` characters (vLLM's StopChecker.check_stop_strings) and
   * truncates the text at the one that starts earliest.
   */
  private checkStop(newChars: number): string | undefined {
    if (!this.stop.length) return undefined;
    const text = this.text;
    let best: string | undefined;
    let bestAt = Infinity;
    for (const s of this.stop) {
      // A new match ends in the new text, so starts at most s.length − 1 characters before it.
      const at = text.indexOf(s, Math.max(0, text.length - newChars - s.length + 1));
      if (at >= 0 && (at < bestAt || (at === bestAt && s.length < best!.length))) {
        best = s;
        bestAt = at;
      }
    }
    if (best === undefined) return undefined;
    this.text = text.slice(0, this.options.includeStopStrInOutput ? bestAt + best.length : bestAt);
    this.stopped = best;
    return best;
  }
}

/** Length of the text that can no longer change when more bytes follow: all but a final U+FFFD. */
function stableLength(text: string): number {
  return text.endsWith(REPLACEMENT) ? text.length - 1 : text.length;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}
