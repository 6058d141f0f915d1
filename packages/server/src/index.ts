export { createServer, DEFAULT_BODY_LIMIT, DEFAULT_MAX_QUEUE, type QllmServer, type ServerOptions } from './server.js';
export { ApiError, type OpenAiErrorBody } from './errors.js';
export { ReasoningSplitter, splitReasoning } from './reasoning.js';
