/** `POST /v1/completions`: OpenAI's legacy completions, as vLLM serves them (batched prompts, token-id prompts, echo). */
import type { FastifyInstance } from 'fastify';
import type { PromptInput, RequestOutput } from 'qllm';
import { checkModel, generationContext, parseBody, requestId, unixSeconds, type ServerContext } from './context.js';
import { badRequest } from './errors.js';
import { Generation, streamGeneration } from './generation.js';
import { completionLogprobs, type CompletionLogprobs } from './logprobs.js';
import { toSamplingParams } from './params.js';
import { completionRequest, type CompletionRequest } from './schemas.js';

interface Prompt {
  text: string | null;
  ids: number[];
}

async function prompts(ctx: ServerContext, prompt: CompletionRequest['prompt']): Promise<Prompt[]> {
  const list: Array<string | number[]> =
    typeof prompt === 'string' ? [prompt]
    : prompt.length > 0 && typeof prompt[0] === 'number' ? [prompt as number[]]
    : (prompt as Array<string | number[]>);
  return Promise.all(list.map(async (p) => (typeof p === 'string' ? { text: p, ids: await ctx.encoder.encode(p) } : { text: null, ids: p })));
}

interface Choice {
  text: string;
  /** The output's token ids so far (for return_token_ids). */
  ids: number[];
  tokens: number;
  finishReason: string | null;
  stopReason: number | string | null;
  logprobs: CompletionLogprobs | null;
  /** Characters of text so far (text_offset of the next token). */
  offset: number;
  /** Whether the echoed prompt was sent. */
  started: boolean;
  /** Whether the prompt's token ids were sent (return_token_ids, streamed). */
  idsStarted: boolean;
}

export function registerCompletions(app: FastifyInstance, ctx: ServerContext): void {
  app.post('/v1/completions', async (request, reply) => {
    const body = parseBody(completionRequest, request.body);
    checkModel(ctx, body.model);
    if (body.stream_options != null && !body.stream) throw badRequest('stream_options is only allowed with stream: true', 'stream_options');
    if (body.echo && body.logprobs != null) {
      throw badRequest('echo with logprobs needs the prompt tokens\' logprobs, which this server does not compute', 'echo');
    }
    const list = await prompts(ctx, body.prompt);
    const k = body.logprobs ?? undefined;
    const params = toSamplingParams(
      { fields: body, logprobs: k, logprobsField: 'logprobs', promptField: 'prompt', prompts: list.map((p) => p.ids) },
      ctx.limits,
    );
    const n = params[0]!.n;
    const tokenText = ctx.tokenText.withIds(body.return_tokens_as_token_ids);
    const id = requestId('cmpl');
    const created = unixSeconds();
    const echo = list.map((p) => (body.echo ? (p.text ?? ctx.tokenizer.decode(p.ids)) : ''));
    const choices: Choice[] = list.flatMap((_, i) =>
      Array.from({ length: n }, () => ({ text: '', ids: [], tokens: 0, finishReason: null, stopReason: null, logprobs: null, offset: echo[i]!.length, started: false, idsStarted: false })),
    );
    const promptTokens = list.reduce((a, p) => a + p.ids.length, 0);
    const usage = () => {
      const completion = choices.reduce((a, c) => a + c.tokens, 0);
      return { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion };
    };
    const inputs: PromptInput[] = list.map((p) => (p.text !== null ? { prompt: p.text, promptTokenIds: p.ids } : { promptTokenIds: p.ids }));

    /** Apply one engine output to its choices; returns the choices' deltas (for streaming). */
    const apply = (i: number, out: RequestOutput) =>
      out.outputs.flatMap((o) => {
        const index = i * n + o.index;
        const c = choices[index]!;
        if (c.finishReason !== null) return [];
        const text = (c.started ? '' : echo[i]!) + o.text;
        c.started = true;
        if (body.return_token_ids) c.ids.push(...o.tokenIds);
        const lp = k !== undefined && o.logprobs ? completionLogprobs(o.tokenIds, o.logprobs, k, tokenText, c.offset) : null;
        c.text += text;
        c.tokens += o.tokenIds.length;
        c.offset += lp ? lp.tokens.reduce((a, t) => a + t.length, 0) : 0;
        if (lp) c.logprobs = c.logprobs ? mergeLogprobs(c.logprobs, lp) : lp;
        if (o.finishReason) {
          c.finishReason = o.finishReason;
          c.stopReason = o.stopReason;
        }
        if (!text && !o.finishReason && !o.tokenIds.length) return [];
        // vLLM's return_token_ids: the prompt's ids in a choice's first chunk, the new output ids in every chunk.
        const ids = body.return_token_ids ? { ...(!c.idsStarted && { prompt_token_ids: list[i]!.ids }), token_ids: o.tokenIds } : {};
        c.idsStarted = true;
        return [{ index, text, logprobs: lp, finish_reason: o.finishReason, stop_reason: o.finishReason ? o.stopReason : null, ...ids }];
      });

    const gctx = generationContext(ctx, request, reply);
    let generation: Generation | undefined;
    try {
      generation = await Generation.start(gctx, inputs, params);
      if (!body.stream) {
        await generation.run((i, out) => void apply(i, out));
        return {
          id,
          object: 'text_completion',
          created,
          model: ctx.modelName,
          choices: choices.map((c, index) => ({
            index,
            text: c.text,
            logprobs: k !== undefined ? (c.logprobs ?? { text_offset: [], token_logprobs: [], tokens: [], top_logprobs: [] }) : null,
            finish_reason: c.finishReason,
            stop_reason: c.stopReason,
            prompt_logprobs: null,
            ...(body.return_token_ids && { prompt_token_ids: list[Math.floor(index / n)]!.ids, token_ids: c.ids }),
          })),
          usage: usage(),
        };
      }
      await streamGeneration(reply, generation, {
        streamOptions: body.stream_options,
        chunk: (extra) => ({ id, object: 'text_completion', created, model: ctx.modelName, ...extra }),
        usage,
        deltas: apply,
      });
      return reply;
    } finally {
      generation?.close();
      gctx.done();
    }
  });
}

function mergeLogprobs(a: CompletionLogprobs, b: CompletionLogprobs): CompletionLogprobs {
  a.text_offset.push(...b.text_offset);
  a.token_logprobs.push(...b.token_logprobs);
  a.tokens.push(...b.tokens);
  a.top_logprobs.push(...b.top_logprobs);
  return a;
}
