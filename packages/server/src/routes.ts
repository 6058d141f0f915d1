/** The routes besides generation: /health, /metrics, /v1/models, /tokenize and /detokenize (vLLM's). */
import type { FastifyInstance } from 'fastify';
import { renderChat } from './chat.js';
import { checkModel, parseBody, unixSeconds, type ServerContext } from './context.js';
import { ApiError, badRequest } from './errors.js';
import { detokenizeRequest, tokenizeRequest } from './schemas.js';

export function registerUtilityRoutes(app: FastifyInstance, ctx: ServerContext, closing: () => boolean): void {
  const created = unixSeconds();

  // Readiness and liveness: 200 once the model is loaded (the server listens only then), 503 while shutting down
  // (checked in the onRequest hook), so a load balancer stops sending before the replica goes away.
  app.get('/health', async (_request, reply) => {
    if (closing()) throw new ApiError(503, 'the server is shutting down', null, 'service_unavailable');
    return reply.code(200).send();
  });

  app.get('/metrics', async (_request, reply) => {
    const text = await ctx.metrics.registry.metrics();
    return reply.type(ctx.metrics.registry.contentType).send(text);
  });

  app.get('/v1/models', async () => ({
    object: 'list',
    data: [
      {
        id: ctx.modelName,
        object: 'model',
        created,
        owned_by: 'qllm',
        root: ctx.modelName,
        parent: null,
        max_model_len: ctx.limits.maxModelLen,
      },
    ],
  }));

  app.post('/tokenize', async (request) => {
    const body = parseBody(tokenizeRequest, request.body);
    checkModel(ctx, body.model);
    const ids =
      body.messages !== undefined
        ? (await renderChat(ctx, { ...body, messages: body.messages }, body.add_special_tokens ?? false)).ids
        : await ctx.encoder.encode(body.prompt!, body.add_special_tokens ?? true);
    return { count: ids.length, max_model_len: ctx.limits.maxModelLen, tokens: ids, token_strs: null };
  });

  app.post('/detokenize', async (request) => {
    const body = parseBody(detokenizeRequest, request.body);
    checkModel(ctx, body.model);
    const i = body.tokens.findIndex((id) => id >= ctx.limits.vocabSize);
    if (i >= 0) throw badRequest(`tokens[${i}]: token id ${body.tokens[i]} is outside the vocabulary [0, ${ctx.limits.vocabSize})`, `tokens[${i}]`);
    return { prompt: ctx.tokenizer.decode(body.tokens) };
  });
}
