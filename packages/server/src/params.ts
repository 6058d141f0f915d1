/**
 * An OpenAI request's fields → SamplingParams, as vLLM's `to_sampling_params`: the model's generation_config.json
 * defaults, then the request's fields; ranges are SamplingParams' own rules (a ConfigError naming the field becomes
 * a 400 naming the request's field). Then the limits of this engine, checked before anything is queued so that each
 * is a 400 naming the field: the context length, the KV-cache slots, the vocabulary and max_logprobs.
 */
import { SamplingParams, type SamplingParamsInit } from 'qllm';
import { badRequest, fromEngine, type ParamNames } from './errors.js';
import type { ChatRequest, CompletionRequest } from './schemas.js';

/** What the engine allows, read once at start-up. */
export interface EngineLimits {
  maxModelLen: number;
  slots: number;
  vocabSize: number;
  maxLogprobs: number;
  /** generation_config.json's defaults (vLLM's get_default_sampling_params). */
  defaults: SamplingParams;
  /** generation_config.json's max_new_tokens, if it has one. */
  defaultMaxTokens: number | undefined;
}

type SamplingFields = Omit<CompletionRequest, 'prompt' | 'logprobs' | 'echo'> & Partial<Pick<ChatRequest, 'max_completion_tokens'>>;

export interface ParamsRequest {
  fields: SamplingFields;
  /** SamplingParams.logprobs: completions' `logprobs`, or chat's `top_logprobs` when `logprobs` is true. */
  logprobs: number | undefined;
  /** The request field that logprobs came from ('logprobs' or 'top_logprobs'). */
  logprobsField: string;
  /** Where prompt-length errors point ('prompt' or 'messages'). */
  promptField: string;
  /** Each prompt's token ids. */
  prompts: ReadonlyArray<readonly number[]>;
}

/** `o` without its null and undefined fields. */
const defined = <T extends object>(o: T) =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== null)) as { [K in keyof T]?: Exclude<T[K], null> };

/** One SamplingParams per prompt (their default max_tokens differ with the prompt's length). */
export function toSamplingParams(req: ParamsRequest, limits: EngineLimits): SamplingParams[] {
  const f = req.fields;
  const maxTokensField = f.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens';
  const maxTokens = f.max_completion_tokens ?? f.max_tokens ?? undefined;
  const names: ParamNames = { maxTokens: maxTokensField, logprobs: req.logprobsField };
  const d = limits.defaults;
  const init: Partial<SamplingParamsInit> = {
    temperature: d.temperature,
    topP: d.topP,
    topK: d.topK,
    minP: d.minP,
    repetitionPenalty: d.repetitionPenalty,
    ...defined({
      n: f.n,
      temperature: f.temperature,
      topP: f.top_p,
      topK: f.top_k,
      minP: f.min_p,
      presencePenalty: f.presence_penalty,
      frequencyPenalty: f.frequency_penalty,
      repetitionPenalty: f.repetition_penalty,
      seed: f.seed,
      stop: f.stop,
      stopTokenIds: f.stop_token_ids,
      ignoreEos: f.ignore_eos,
      minTokens: f.min_tokens,
      skipSpecialTokens: f.skip_special_tokens,
      includeStopStrInOutput: f.include_stop_str_in_output,
      logprobs: req.logprobs,
    }),
  };
  // Validate the request's own fields once (ranges, types), with the largest max_tokens any prompt could get.
  let base: SamplingParams;
  try {
    base = new SamplingParams({ ...init, maxTokens: maxTokens ?? limits.maxModelLen });
  } catch (e) {
    throw fromEngine(e, names);
  }
  if (base.n > limits.slots) {
    throw badRequest(`n = ${base.n} completions need ${base.n} KV-cache slots, but this server has ${limits.slots} (--max-num-seqs)`, 'n');
  }
  if (base.logprobs !== undefined && base.logprobs > limits.maxLogprobs) {
    throw badRequest(`${req.logprobsField} ${base.logprobs} is more than this server's max_logprobs ${limits.maxLogprobs}`, req.logprobsField);
  }
  return req.prompts.map((ids, i) => {
    const where = req.prompts.length > 1 ? ` (prompt ${i})` : '';
    const bad = ids.find((id) => id >= limits.vocabSize);
    if (bad !== undefined) throw badRequest(`token id ${bad}${where} is outside the vocabulary [0, ${limits.vocabSize})`, req.promptField, 'invalid_value');
    const room = limits.maxModelLen - ids.length;
    if (room < 1) {
      throw badRequest(
        `This model's maximum context length is ${limits.maxModelLen} tokens, but the ${req.promptField}${where} ` +
          `${req.promptField === 'messages' ? 'are' : 'is'} ${ids.length} tokens long, which leaves no room for a completion.`,
        req.promptField,
        'context_length_exceeded',
      );
    }
    if (maxTokens !== undefined && maxTokens > room) {
      throw badRequest(
        `This model's maximum context length is ${limits.maxModelLen} tokens. However, you requested ${ids.length + maxTokens} tokens ` +
          `(${ids.length} in the ${req.promptField}${where}, ${maxTokens} in the completion). Please reduce the length of the ` +
          `${req.promptField} or ${maxTokensField}.`,
        maxTokensField,
        'context_length_exceeded',
      );
    }
    const tokens = maxTokens ?? Math.min(room, limits.defaultMaxTokens ?? room);
    if (tokens === base.maxTokens) return base;
    try {
      return new SamplingParams({ ...base, maxTokens: tokens });
    } catch (e) {
      throw fromEngine(e, names);
    }
  });
}
