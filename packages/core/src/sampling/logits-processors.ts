/** The tokens a sequence has so far; processors read it, never change it. */
export interface SequenceState {
  readonly promptTokenIds: readonly number[];
  readonly outputTokenIds: readonly number[];
}

/** Changes one sequence's logits (length = vocab) in place before sampling. */
export type LogitsProcessor = (logits: Float32Array, state: SequenceState) => void;

/** The SamplingParams fields the processors read (a SamplingParams satisfies it). */
export interface LogitsProcessorConfig {
  readonly minTokens: number;
  readonly repetitionPenalty: number;
  readonly presencePenalty: number;
  readonly frequencyPenalty: number;
  readonly stopTokenIds: readonly number[];
}

/** While fewer than `minTokens` tokens have been generated, EOS and stop tokens get -Infinity (vLLM's MinTokensLogitsProcessor). */
export function minTokensProcessor(minTokens: number, eosAndStopIds: readonly number[]): LogitsProcessor {
  const ids = [...new Set(eosAndStopIds)];
  return (logits, state) => {
    if (state.outputTokenIds.length >= minTokens) return;
    for (const id of ids) if (id >= 0 && id < logits.length) logits[id] = -Infinity;
  };
}

/**
 * vLLM/HF repetition penalty over prompt + output tokens, once per distinct token: a positive logit is divided
 * by `penalty`, any other is multiplied by it (so penalty > 1 always makes a seen token less likely).
 */
export function repetitionPenaltyProcessor(penalty: number): LogitsProcessor {
  let seen: Uint8Array | undefined; // reused across steps; cleared after each use
  return (logits, state) => {
    if (seen?.length !== logits.length) seen = new Uint8Array(logits.length);
    const mark = seen;
    const n = logits.length;
    const visit = (ids: readonly number[]) => {
      for (const id of ids) {
        if (id < 0 || id >= n || mark[id]) continue;
        mark[id] = 1;
        const x = logits[id]!;
        logits[id] = x > 0 ? x / penalty : x * penalty;
      }
    };
    visit(state.promptTokenIds);
    visit(state.outputTokenIds);
    for (const id of state.promptTokenIds) if (id >= 0 && id < n) mark[id] = 0;
    for (const id of state.outputTokenIds) if (id >= 0 && id < n) mark[id] = 0;
  };
}

/**
 * OpenAI/vLLM presence and frequency penalties over the output tokens only:
 * `logit -= frequency * count + presence * (count > 0)`.
 */
export function presenceFrequencyPenaltyProcessor(presence: number, frequency: number): LogitsProcessor {
  return (logits, state) => {
    const counts = new Map<number, number>();
    for (const id of state.outputTokenIds) counts.set(id, (counts.get(id) ?? 0) + 1);
    for (const [id, count] of counts) {
      if (id >= 0 && id < logits.length) logits[id] = logits[id]! - frequency * count - presence;
    }
  };
}

/**
 * The processors `params` needs, in vLLM's order: min-tokens, then repetition, then frequency and presence penalties.
 * `eosTokenIds` are joined with `params.stopTokenIds` for min-tokens, as vLLM's `all_stop_token_ids`.
 */
export function buildLogitsProcessors(params: LogitsProcessorConfig, eosTokenIds: readonly number[]): LogitsProcessor[] {
  const processors: LogitsProcessor[] = [];
  const stopIds = [...new Set([...eosTokenIds, ...params.stopTokenIds])];
  if (params.minTokens > 0 && stopIds.length > 0) processors.push(minTokensProcessor(params.minTokens, stopIds));
  if (params.repetitionPenalty !== 1) processors.push(repetitionPenaltyProcessor(params.repetitionPenalty));
  if (params.presencePenalty !== 0 || params.frequencyPenalty !== 0) {
    processors.push(presenceFrequencyPenaltyProcessor(params.presencePenalty, params.frequencyPenalty));
  }
  return processors;
}
