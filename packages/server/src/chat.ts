/**
 * `POST /v1/chat/completions`: the messages rendered through the model folder's chat template (as `LLM.chat`), with
 * `chat_template_kwargs` (Qwen3's `enable_thinking`), and Qwen3's `<think>` block returned as `reasoning_content`.
 */
import type { FastifyInstance } from 'fastify';
import { ConfigError, type ChatMessage, type RequestOutput } from 'qllm';
import { checkModel, generationContext, parseBody, requestId, unixSeconds, type ServerContext } from './context.js';
import { badRequest } from './errors.js';
import { Generation, streamGeneration } from './generation.js';
import { chatLogprobs, type ChatTokenLogprob } from './logprobs.js';
import { toSamplingParams } from './params.js';
import { ReasoningSplitter } from './reasoning.js';
import { chatRequest, type ChatMessageInput } from './schemas.js';

type TemplateFields = { messages: ChatMessageInput[]; add_generation_prompt?: boolean | null; chat_template_kwargs?: Record<string, unknown> | null };

/** The prompt text and ids of a conversation, as `LLM.chat` renders and encodes it. */
export async function renderChat(ctx: ServerContext, req: TemplateFields, addSpecialTokens = false): Promise<{ prompt: string; ids: number[] }> {
  const messages: ChatMessage[] = req.messages.map((m) => {
    const content = m.content == null ? '' : typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join('\n');
    const out: ChatMessage = { role: m.role, content };
    if (m.name != null) out.name = m.name;
    if (m.reasoning_content != null) out.reasoning_content = m.reasoning_content;
    if (m.tool_call_id != null) out.tool_call_id = m.tool_call_id;
    return out;
  });
  let prompt: string;
  try {
    prompt = ctx.tokenizer.applyChatTemplate(messages, {
      addGenerationPrompt: req.add_generation_prompt ?? true,
      extra: req.chat_template_kwargs ?? undefined,
    });
  } catch (e) {
    throw badRequest(e instanceof ConfigError ? `messages: ${e.message.replace(/^.*?: chat template failed/, 'the chat template failed')}` : 'messages: the chat template failed', 'messages');
  }
  return { prompt, ids: await ctx.encoder.encode(prompt, addSpecialTokens) };
}

interface Choice {
  content: string;
  reasoning: string;
  tokens: number;
  finishReason: string | null;
  stopReason: number | string | null;
  logprobs: ChatTokenLogprob[];
  splitter: ReasoningSplitter;
}

export function registerChat(app: FastifyInstance, ctx: ServerContext): void {
  app.post('/v1/chat/completions', async (request, reply) => {
    const body = parseBody(chatRequest, request.body);
    checkModel(ctx, body.model);
    if (body.stream_options != null && !body.stream) throw badRequest('stream_options is only allowed with stream: true', 'stream_options');
    if (body.top_logprobs != null && !body.logprobs) throw badRequest('top_logprobs needs logprobs: true', 'top_logprobs');
    const { prompt, ids } = await renderChat(ctx, body);
    const k = body.logprobs ? (body.top_logprobs ?? 0) : undefined;
    const [params] = toSamplingParams(
      { fields: body, logprobs: k, logprobsField: body.top_logprobs != null ? 'top_logprobs' : 'logprobs', promptField: 'messages', prompts: [ids] },
      ctx.limits,
    );
    const thinking = ctx.reasoning && body.chat_template_kwargs?.enable_thinking !== false;
    const tokenText = ctx.tokenText.withIds(body.return_tokens_as_token_ids);
    const id = requestId('chatcmpl');
    const created = unixSeconds();
    const choices: Choice[] = Array.from({ length: params!.n }, () => ({
      content: '',
      reasoning: '',
      tokens: 0,
      finishReason: null,
      stopReason: null,
      logprobs: [],
      splitter: new ReasoningSplitter(thinking),
    }));
    const usage = () => {
      const completion = choices.reduce((a, c) => a + c.tokens, 0);
      return { prompt_tokens: ids.length, completion_tokens: completion, total_tokens: ids.length + completion };
    };

    const apply = (out: RequestOutput) =>
      out.outputs.flatMap((o) => {
        const c = choices[o.index]!;
        if (c.finishReason !== null) return [];
        const { reasoning, content } = c.splitter.push(o.text, o.finishReason !== null);
        const lp = k !== undefined && o.logprobs ? chatLogprobs(o.tokenIds, o.logprobs, k, tokenText) : null;
        c.content += content;
        c.reasoning += reasoning;
        c.tokens += o.tokenIds.length;
        if (lp) c.logprobs.push(...lp);
        if (o.finishReason) {
          c.finishReason = o.finishReason;
          c.stopReason = o.stopReason;
        }
        if (!content && !reasoning && !o.finishReason && !lp?.length) return [];
        const delta: Record<string, string> = {};
        if (reasoning) delta.reasoning_content = reasoning;
        if (content) delta.content = content;
        return [{ index: o.index, delta, logprobs: lp ? { content: lp } : null, finish_reason: o.finishReason, stop_reason: o.finishReason ? o.stopReason : null }];
      });

    const gctx = generationContext(ctx, request, reply);
    let generation: Generation | undefined;
    try {
      generation = await Generation.start(gctx, [{ prompt, promptTokenIds: ids }], [params!]);
      if (!body.stream) {
        await generation.run((_, out) => void apply(out));
        return {
          id,
          object: 'chat.completion',
          created,
          model: ctx.modelName,
          choices: choices.map((c, index) => ({
            index,
            message: {
              role: 'assistant',
              content: thinking && c.content === '' ? null : c.content,
              ...(thinking && { reasoning_content: c.reasoning === '' ? null : c.reasoning }),
            },
            logprobs: k !== undefined ? { content: c.logprobs } : null,
            finish_reason: c.finishReason,
            stop_reason: c.stopReason,
          })),
          usage: usage(),
        };
      }
      await streamGeneration(reply, generation, {
        streamOptions: body.stream_options,
        chunk: (extra) => ({ id, object: 'chat.completion.chunk', created, model: ctx.modelName, ...extra }),
        usage,
        opening: choices.map((_, index) => ({ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null })),
        deltas: (_, out) => apply(out),
      });
      return reply;
    } finally {
      generation?.close();
      gctx.done();
    }
  });
}
