/**
 * The engine's logprobs (per generated token: token id → { logprob, rank }, the top k and the chosen token) in
 * OpenAI's two shapes: the legacy completions object and chat's `content` list. Tokens are shown as their own
 * decoded text; a -Infinity logprob is written as -9999 (as vLLM does: JSON has no -Infinity).
 */
import type { Logprob, QllmTokenizer } from 'qllm';

export type TokenLogprobs = Record<number, Logprob>;

const finite = (lp: number) => (Number.isFinite(lp) ? lp : -9999);

export class TokenText {
  private readonly cache = new Map<number, string>();
  constructor(
    private readonly tokenizer: QllmTokenizer,
    /** vLLM's return_tokens_as_token_ids: show each token as `token_id:<id>`. */
    private readonly asIds = false,
  ) {}

  /** The same tokenizer and cache, showing tokens as `token_id:<id>` when `asIds`. */
  withIds(asIds: boolean | null | undefined): TokenText {
    if (!asIds) return this;
    return new TokenText(this.tokenizer, true);
  }

  get(id: number): string {
    if (this.asIds) return `token_id:${id}`;
    let text = this.cache.get(id);
    if (text === undefined) {
      text = this.tokenizer.decode([id]);
      if (this.cache.size < 65536) this.cache.set(id, text);
    }
    return text;
  }
}

/** The top `k` entries by rank (the chosen token is in the engine's entry even when it ranks lower). */
function top(entry: TokenLogprobs, k: number): Array<[number, Logprob]> {
  return Object.entries(entry)
    .map(([id, lp]) => [Number(id), lp] as [number, Logprob])
    .sort((a, b) => a[1].rank - b[1].rank)
    .slice(0, k);
}

export interface CompletionLogprobs {
  text_offset: number[];
  token_logprobs: Array<number | null>;
  tokens: string[];
  top_logprobs: Array<Record<string, number> | null>;
}

/** Completions' `logprobs` for new tokens, whose text starts at `offset` in the choice's text. */
export function completionLogprobs(
  ids: readonly number[],
  entries: readonly TokenLogprobs[],
  k: number,
  text: TokenText,
  offset: number,
): CompletionLogprobs {
  const out: CompletionLogprobs = { text_offset: [], token_logprobs: [], tokens: [], top_logprobs: [] };
  ids.forEach((id, i) => {
    const entry = entries[i] ?? {};
    const token = text.get(id);
    out.tokens.push(token);
    out.text_offset.push(offset);
    offset += token.length;
    out.token_logprobs.push(entry[id] ? finite(entry[id].logprob) : null);
    const tops: Record<string, number> = {};
    // vLLM: the chosen token first, then the top k.
    if (entry[id]) tops[token] = finite(entry[id].logprob);
    for (const [tid, lp] of top(entry, k)) tops[text.get(tid)] ??= finite(lp.logprob);
    out.top_logprobs.push(tops);
  });
  return out;
}

export interface ChatTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: Array<{ token: string; logprob: number; bytes: number[] }>;
}

/** Chat's `logprobs.content` entries for new tokens. */
export function chatLogprobs(ids: readonly number[], entries: readonly TokenLogprobs[], k: number, text: TokenText): ChatTokenLogprob[] {
  return ids.map((id, i) => {
    const entry = entries[i] ?? {};
    const token = text.get(id);
    return {
      token,
      logprob: finite(entry[id]?.logprob ?? -Infinity),
      bytes: [...Buffer.from(token, 'utf8')],
      top_logprobs: top(entry, k).map(([tid, lp]) => {
        const t = text.get(tid);
        return { token: t, logprob: finite(lp.logprob), bytes: [...Buffer.from(t, 'utf8')] };
      }),
    };
  });
}
