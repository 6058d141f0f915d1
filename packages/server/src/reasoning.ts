/**
 * Qwen3's reasoning parser, as vLLM's `--reasoning-parser qwen3`: the text of a `<think>...</think>` block is returned
 * as `reasoning_content`, the rest as `content`.
 *
 * - A `<think>` in the output (Qwen3's template lets the model open the block itself) is dropped.
 * - Output up to `</think>` is reasoning, the rest content.
 * - With thinking on (Qwen3's default) and no `</think>` yet, everything is reasoning (a truncated thought); with
 *   `enable_thinking: false` the template closes an empty block in the prompt, so everything is content.
 *
 * One splitter serves both streaming and non-streaming (fed the whole text at once), so the two always agree: the
 * streamed reasoning and content deltas add up to exactly the non-streamed fields. A tag cut across two deltas is
 * held back until it is whole.
 */
const START = '<think>';
const END = '</think>';

export interface ReasoningDelta {
  reasoning: string;
  content: string;
}

export class ReasoningSplitter {
  private inReasoning: boolean;
  private startSeen = false;
  private pending = '';

  constructor(thinking: boolean) {
    this.inReasoning = thinking;
  }

  /** Split the next piece of output text; `final` flushes what was held back. */
  push(text: string, final = false): ReasoningDelta {
    if (!this.inReasoning) return { reasoning: '', content: text };
    let buf = this.pending + text;
    this.pending = '';
    if (!this.startSeen) {
      const at = buf.indexOf(START);
      if (at >= 0) {
        buf = buf.slice(0, at) + buf.slice(at + START.length);
        this.startSeen = true;
      }
    }
    const end = buf.indexOf(END);
    if (end >= 0) {
      this.inReasoning = false;
      return { reasoning: buf.slice(0, end), content: buf.slice(end + END.length) };
    }
    if (!final) {
      const hold = partialTagSuffix(buf, this.startSeen ? [END] : [START, END]);
      this.pending = buf.slice(buf.length - hold);
      buf = buf.slice(0, buf.length - hold);
    }
    return { reasoning: buf, content: '' };
  }
}

/** Length of the longest suffix of `text` that is a proper prefix of one of the tags. */
function partialTagSuffix(text: string, tags: string[]): number {
  for (let n = Math.min(text.length, Math.max(...tags.map((t) => t.length)) - 1); n > 0; n--) {
    const tail = text.slice(text.length - n);
    if (tags.some((t) => t.startsWith(tail))) return n;
  }
  return 0;
}

/** The non-streaming split of a whole completion: `reasoning` null when there is none, `content` null when empty. */
export function splitReasoning(text: string, thinking: boolean): { reasoning: string | null; content: string | null } {
  const { reasoning, content } = new ReasoningSplitter(thinking).push(text, true);
  return { reasoning: thinking ? reasoning : null, content: thinking && content === '' ? null : content };
}
