/** One token's log-probability, as vLLM's `Logprob`. */
export interface Logprob {
  logprob: number;
  /** 1-based rank among the whole vocabulary (1 + tokens with a strictly greater logit). */
  rank: number;
  decodedToken?: string;
}

/** One completion of a request, as vLLM's `CompletionOutput`. */
export interface CompletionOutput {
  index: number;
  text: string;
  tokenIds: number[];
  /** Sum of the chosen tokens' logprobs; null unless logprobs were requested. */
  cumulativeLogprob: number | null;
  /** Per generated token: token id → Logprob (the top-k and the chosen token); null unless requested. */
  logprobs: Array<Record<number, Logprob>> | null;
  /** 'stop' (EOS, a stop token or string), 'length' (maxTokens or the context), 'abort'; null while running. */
  finishReason: 'stop' | 'length' | 'abort' | null;
  /** The stop token id or stop string that ended the completion; null for EOS or length. */
  stopReason: number | string | null;
}

/** One request's result, as vLLM's `RequestOutput`. Times are seconds since the epoch. */
export interface RequestOutput {
  requestId: string;
  prompt: string | null;
  promptTokenIds: number[];
  outputs: CompletionOutput[];
  finished: boolean;
  /** vLLM's RequestMetrics: when the request arrived, was first scheduled, got its first and last token, finished. */
  metrics?: {
    arrivalTime: number;
    firstScheduledTime?: number;
    firstTokenTime?: number;
    lastTokenTime?: number;
    finishedTime?: number;
    numGenerationTokens: number;
  };
}

/** vLLM's CompletionOutput as JSON (snake_case); logprobs are plain numbers keyed by the token id as a string. */
export interface VllmCompletionOutputJson {
  index: number;
  text: string;
  token_ids: number[];
  cumulative_logprob: number | null;
  logprobs: Array<Record<string, number>> | null;
  finish_reason: 'stop' | 'length' | 'abort' | null;
  stop_reason: number | string | null;
}

/** vLLM's RequestOutput as JSON: the contract `--json` output and golden files are compared on. */
export interface VllmRequestOutputJson {
  prompt: string | null;
  prompt_token_ids: number[];
  outputs: VllmCompletionOutputJson[];
  /** vLLM's RequestMetrics, seconds since the epoch (null where the request never got that far). */
  metrics?: {
    arrival_time: number;
    first_scheduled_time: number | null;
    first_token_time: number | null;
    last_token_time: number | null;
    finished_time: number | null;
  };
}

/**
 * The snake_case JSON form of a RequestOutput. A -Infinity logprob (a token with a -Infinity logit) stays -Infinity
 * here; JSON.stringify writes it as null.
 */
export function toVllmJson(out: RequestOutput): VllmRequestOutputJson {
  return {
    prompt: out.prompt,
    prompt_token_ids: [...out.promptTokenIds],
    outputs: out.outputs.map((o) => ({
      index: o.index,
      text: o.text,
      token_ids: [...o.tokenIds],
      cumulative_logprob: o.cumulativeLogprob,
      logprobs: o.logprobs === null ? null : o.logprobs.map(plainLogprobs),
      finish_reason: o.finishReason,
      stop_reason: o.stopReason,
    })),
    ...(out.metrics && {
      metrics: {
        arrival_time: out.metrics.arrivalTime,
        first_scheduled_time: out.metrics.firstScheduledTime ?? null,
        first_token_time: out.metrics.firstTokenTime ?? null,
        last_token_time: out.metrics.lastTokenTime ?? null,
        finished_time: out.metrics.finishedTime ?? null,
      },
    }),
  };
}

function plainLogprobs(entry: Record<number, Logprob>): Record<string, number> {
  const plain: Record<string, number> = {};
  for (const [id, lp] of Object.entries(entry)) plain[id] = lp.logprob;
  return plain;
}
