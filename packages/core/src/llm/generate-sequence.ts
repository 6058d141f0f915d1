import type { QllmTokenizer } from '../loading/index.js';
import { buildLogitsProcessors, getSampler, topLogprobs, type Rng } from '../sampling/index.js';
import { KvCache, type ModelRunner } from './model-runner.js';
import type { CompletionOutput, Logprob } from './outputs.js';
import type { SamplingParams } from './sampling-params.js';

export interface SequenceContext {
  runner: ModelRunner;
  tokenizer?: QllmTokenizer;
  eosTokenIds: readonly number[];
  maxModelLen: number;
}

/**
 * Generate one completion for a prompt: prefill, then one token per step until EOS, a stop token or string,
 * maxTokens, or the context length. Logprobs are vLLM's raw logprobs (before temperature and penalties).
 */
export async function generateSequence(
  ctx: SequenceContext,
  promptTokenIds: readonly number[],
  params: SamplingParams,
  rng: Rng,
  index: number,
): Promise<CompletionOutput> {
  const processors = buildLogitsProcessors(params, ctx.eosTokenIds);
  const sampler = getSampler(params);
  const stopIds = new Set(params.stopTokenIds);
  const eos = new Set(params.ignoreEos ? [] : ctx.eosTokenIds);
  const wantLogprobs = params.logprobs !== undefined;
  const tokenIds: number[] = [];
  const logprobs: Array<Record<number, Logprob>> = [];
  let cumulative = 0;
  let finishReason: CompletionOutput['finishReason'] = 'length';
  let stopReason: CompletionOutput['stopReason'] = null;
  let text = '';
  const cache = new KvCache();
  const state = { promptTokenIds, outputTokenIds: tokenIds };
  try {
    let logits = await ctx.runner.forward(cache, promptTokenIds, [promptTokenIds.length - 1]);
    for (;;) {
      // Raw logprobs are taken before the processors change the logits in place.
      const raw = wantLogprobs ? logits.slice() : undefined;
      for (const p of processors) p(logits, state);
      const token = sampler.sample(logits, rng);
      tokenIds.push(token);
      if (raw) {
        const lp = topLogprobs(raw, params.logprobs!, token);
        cumulative += lp.chosenLogprob;
        const entry: Record<number, Logprob> = {};
        for (const [id, logprob, rank] of lp.top) entry[id] = { logprob, rank };
        logprobs.push(entry);
      }
      if (eos.has(token)) {
        finishReason = 'stop';
        break;
      }
      if (stopIds.has(token)) {
        finishReason = 'stop';
        stopReason = token;
        break;
      }
      if (params.stop.length && ctx.tokenizer) {
        text = ctx.tokenizer.decode(tokenIds, { skipSpecialTokens: params.skipSpecialTokens });
        const hit = findStop(text, params.stop);
        if (hit) {
          text = params.includeStopStrInOutput ? text.slice(0, hit.at + hit.stop.length) : text.slice(0, hit.at);
          finishReason = 'stop';
          stopReason = hit.stop;
          break;
        }
      }
      if (tokenIds.length >= params.maxTokens || cache.length + 1 >= ctx.maxModelLen) break;
      logits = await ctx.runner.forward(cache, [token], [0]);
    }
  } finally {
    ctx.runner.free(cache);
  }
  if (stopReason === null || typeof stopReason === 'number') {
    text = ctx.tokenizer ? ctx.tokenizer.decode(tokenIds, { skipSpecialTokens: params.skipSpecialTokens }) : '';
  }
  return {
    index,
    text,
    tokenIds,
    cumulativeLogprob: wantLogprobs ? cumulative : null,
    logprobs: wantLogprobs ? logprobs : null,
    finishReason,
    stopReason,
  };
}

function findStop(text: string, stops: readonly string[]): { at: number; stop: string } | undefined {
  let best: { at: number; stop: string } | undefined;
  for (const stop of stops) {
    const at = text.indexOf(stop);
    if (at >= 0 && (!best || at < best.at)) best = { at, stop };
  }
  return best;
}
