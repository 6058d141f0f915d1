/**
 * Errors as OpenAI's API returns them: `{"error": {"message", "type", "param", "code"}}`, one status per kind. Every
 * failure a request can cause ends up here, so no handler needs its own error shape.
 */
import { ConfigError, EngineBusyError } from 'qllm';
import type { ZodError } from 'zod';

export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | number | null };
}

/** An error with the HTTP status and OpenAI fields it is answered with. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    /** Extra response headers (429's Retry-After, 401's WWW-Authenticate). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  get type(): string {
    if (this.status === 401) return 'authentication_error';
    if (this.status === 404) return 'not_found_error';
    if (this.status === 429) return 'rate_limit_exceeded';
    if (this.status >= 500) return 'server_error';
    return 'invalid_request_error';
  }

  toJSON(): OpenAiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = null) => new ApiError(400, message, param, code);

/** A request path as OpenAI's errors name it: `messages[0].content`. */
export function paramPath(path: ReadonlyArray<PropertyKey>): string | null {
  let out = '';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : `${out ? '.' : ''}${String(key)}`;
  return out || null;
}

/** The first schema problem, naming the field (and, for unknown fields, the field's own name). */
export function fromZod(error: ZodError): ApiError {
  const issue = error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys;
    const where = paramPath([...issue.path, keys[0]!]);
    return badRequest(`unknown field${keys.length > 1 ? 's' : ''} ${keys.map((k) => `'${k}'`).join(', ')}${issue.path.length ? ` in ${paramPath(issue.path)}` : ''}`, where, 'unknown_field');
  }
  const param = paramPath(issue.path);
  return badRequest(param ? `${param}: ${issue.message}` : `request body: ${issue.message}`, param, 'invalid_value');
}

/** SamplingParams' camelCase field → the request's field it came from. */
export type ParamNames = Partial<Record<string, string>>;

/**
 * An engine or SamplingParams ConfigError as a 400 naming the request field (`SamplingParams.topP must be ...` →
 * param `top_p`); a full queue (the engine's EngineBusyError) as a 429.
 */
export function fromEngine(error: unknown, names: ParamNames = {}): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof EngineBusyError) return tooManyRequests(error.message);
  if (error instanceof ConfigError) {
    const m = /^SamplingParams\.(\w+) (.*)$/s.exec(error.message);
    if (m) {
      const param = names[m[1]!] ?? snake(m[1]!);
      // Other fields the message names (`must be <= maxTokens`) by their request names too.
      const text = m[2]!.replace(/\b[a-z]+[A-Z]\w*\b/g, (w) => names[w] ?? snake(w));
      return badRequest(`${param} ${text}`, param, 'invalid_value');
    }
    return badRequest(error.message);
  }
  return new ApiError(500, 'internal error while generating', null, 'internal_error');
}

export const tooManyRequests = (message: string, retryAfterS = 1) =>
  new ApiError(429, message, null, 'rate_limit_exceeded', { 'retry-after': String(retryAfterS) });

export const snake = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** Fastify's own errors (body parsing, size, media type) in OpenAI's shape. */
export function fromFastify(error: { statusCode?: number; code?: string; message: string }): ApiError {
  const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
  if (status >= 500) return new ApiError(500, 'internal server error', null, 'internal_error');
  const messages: Record<string, string> = {
    FST_ERR_CTP_INVALID_JSON_BODY: 'the request body is not valid JSON',
    FST_ERR_CTP_EMPTY_JSON_BODY: 'the request body is empty; expected a JSON object',
    FST_ERR_CTP_BODY_TOO_LARGE: 'the request body is too large',
    FST_ERR_CTP_INVALID_MEDIA_TYPE: "unsupported Content-Type: send 'application/json'",
    FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'the Content-Length does not match the body',
  };
  const message = (error.code && messages[error.code]) ?? (error.code === undefined && error instanceof SyntaxError ? 'the request body is not valid JSON' : error.message);
  return new ApiError(status, message, null, error.code?.toLowerCase() ?? null);
}
