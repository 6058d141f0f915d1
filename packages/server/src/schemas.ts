/**
 * Request bodies as zod schemas: OpenAI's fields plus vLLM's sampling extras, strict (an unknown field is a 400
 * naming it, not silently ignored). Types only: value ranges are SamplingParams' own rules (one home per rule), and
 * limits that depend on the model (context length, slots, vocabulary, max_logprobs) are checked against the engine.
 * A `null` is the same as leaving the field out, as OpenAI's clients send it.
 */
import { z } from 'zod';

/** A bad value as an error message shows it: short, and never a throw of its own (deep nesting overflows stringify). */
function show(value: unknown): string {
  let text: string;
  try {
    text = typeof value === 'number' ? String(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    text = Array.isArray(value) ? '[...]' : '{...}';
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
const expected = (what: string) => ({ error: (issue: { input?: unknown }) => `must be ${what}, got ${show(issue.input)}` });

/** Most stop strings, messages, prompts or ids a request may carry (the body limit bounds them too). */
const MAX_ITEMS = 1 << 20;
/** Most prompts one completions request may batch. */
export const MAX_PROMPTS = 64;

const int = () => z.int(expected('an integer'));
const num = () => z.number(expected('a finite number'));
const bool = () => z.boolean(expected('true or false'));
const str = () => z.string(expected('a string'));
const tokenId = () => z.int(expected('a token id (a non-negative integer)')).min(0, expected('a token id (a non-negative integer)'));
const ids = () => z.array(tokenId(), expected('an array of token ids')).max(MAX_ITEMS);

const streamOptions = z.strictObject(
  { include_usage: bool().nullish(), continuous_usage_stats: bool().nullish() },
  expected('an object like {"include_usage": true}'),
);

/** Sampling fields shared by both endpoints (OpenAI's, then vLLM's extras). */
const sampling = {
  model: str().nullish(),
  max_tokens: int().nullish(),
  temperature: num().nullish(),
  top_p: num().nullish(),
  n: int().nullish(),
  stream: bool().nullish(),
  stream_options: streamOptions.nullish(),
  stop: z.union([str(), z.array(str()).max(MAX_ITEMS)], expected('a string or an array of strings')).nullish(),
  presence_penalty: num().nullish(),
  frequency_penalty: num().nullish(),
  seed: int().nullish(),
  user: str().nullish(),
  // vLLM's extra sampling parameters
  top_k: int().nullish(),
  min_p: num().nullish(),
  repetition_penalty: num().nullish(),
  ignore_eos: bool().nullish(),
  min_tokens: int().nullish(),
  stop_token_ids: ids().nullish(),
  skip_special_tokens: bool().nullish(),
  include_stop_str_in_output: bool().nullish(),
  return_tokens_as_token_ids: bool().nullish(),
};

const prompt = z.union(
  [
    str().min(1, expected('a non-empty string')),
    z.array(str().min(1, expected('a non-empty string'))).min(1).max(MAX_PROMPTS),
    ids().min(1),
    z.array(ids().min(1)).min(1).max(MAX_PROMPTS),
  ],
  expected(`a string, an array of token ids, or an array (at most ${MAX_PROMPTS}) of either`),
);

export const completionRequest = z.strictObject(
  // vLLM's return_token_ids: each choice carries its prompt's and its output's token ids (streamed: the output's new ones).
  { ...sampling, prompt, logprobs: int().nullish(), echo: bool().nullish(), return_token_ids: bool().nullish() },
  expected('a JSON object'),
);
export type CompletionRequest = z.infer<typeof completionRequest>;

const textPart = z.strictObject({ type: z.literal('text', expected("'text' (only text parts are supported)")), text: str() });
const content = z.union([str(), z.array(textPart).max(MAX_ITEMS)], expected('a string or an array of text parts'));

const message = z.strictObject(
  {
    role: z.enum(['system', 'developer', 'user', 'assistant', 'tool'], expected("one of 'system', 'developer', 'user', 'assistant', 'tool'")),
    content: content.nullish(),
    name: str().nullish(),
    reasoning_content: str().nullish(),
    tool_call_id: str().nullish(),
  },
  expected('a message object like {"role": "user", "content": "..."}'),
);
export type ChatMessageInput = z.infer<typeof message>;

/** Template variables a request may set. Values are plain scalars; keys the server sets itself are refused. */
const RESERVED_TEMPLATE_KEYS = ['messages', 'tools', 'add_generation_prompt', 'bos_token', 'eos_token', 'pad_token', 'unk_token'];
const templateKwargs = z
  .record(
    str().max(64),
    z.union([str(), num(), bool(), z.null()], expected('a string, number, boolean or null')),
    expected('an object of template variables'),
  )
  .refine((o) => Object.keys(o).length <= 32, { error: 'must have at most 32 variables' })
  .refine((o) => !RESERVED_TEMPLATE_KEYS.some((k) => Object.hasOwn(o, k)), {
    error: `may not set ${RESERVED_TEMPLATE_KEYS.map((k) => `'${k}'`).join(', ')}`,
  });

const chatTemplateFields = {
  messages: z.array(message, expected('an array of messages')).min(1, expected('a non-empty array of messages')).max(MAX_ITEMS),
  add_generation_prompt: bool().nullish(),
  chat_template_kwargs: templateKwargs.nullish(),
};

export const chatRequest = z.strictObject(
  { ...sampling, ...chatTemplateFields, max_completion_tokens: int().nullish(), logprobs: bool().nullish(), top_logprobs: int().nullish() },
  expected('a JSON object'),
);
export type ChatRequest = z.infer<typeof chatRequest>;

/** vLLM's /tokenize: a completion prompt, or chat messages rendered through the chat template (one of the two). */
export const tokenizeRequest = z
  .strictObject(
    {
      model: str().nullish(),
      prompt: str().optional(),
      messages: chatTemplateFields.messages.optional(),
      add_generation_prompt: chatTemplateFields.add_generation_prompt,
      chat_template_kwargs: chatTemplateFields.chat_template_kwargs,
      add_special_tokens: bool().nullish(),
    },
    expected('a JSON object'),
  )
  .refine((r) => (r.prompt === undefined) !== (r.messages === undefined), { error: "give exactly one of 'prompt' and 'messages'" });
export type TokenizeRequest = z.infer<typeof tokenizeRequest>;

export const detokenizeRequest = z.strictObject({ model: str().nullish(), tokens: ids() }, expected('a JSON object'));
