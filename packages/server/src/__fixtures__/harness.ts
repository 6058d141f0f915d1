/** A real server on 127.0.0.1 (an ephemeral port) over a generated tiny Qwen3, and the official `openai` client on it. */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { LLM, type LLMOptions } from 'qllm';
import { makeTinyQwen3 } from '@qllm/testing';
import { createServer, type QllmServer, type ServerOptions } from '../index.js';

export const MODEL = 'tiny-qwen3';

export interface Harness {
  llm: LLM;
  server: QllmServer;
  url: string;
  client: OpenAI;
  /** Close the server (not the LLM). */
  stop(): Promise<void>;
}

/** A fresh tiny model folder in a temporary directory (greedy output is deterministic noise). */
export async function tinyModel(seed = 11): Promise<{ dir: string; remove: () => Promise<void> }> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'qllm-server-'));
  const dir = path.join(root, 'tiny');
  await makeTinyQwen3(dir, { seed });
  return { dir, remove: () => fs.rm(root, { recursive: true, force: true }) };
}

export function newLLM(dir: string, options: Partial<LLMOptions> = {}): LLM {
  return new LLM({ model: dir, threads: 2, maxNumSeqs: 4, maxModelLen: 256, ...options });
}

export async function startServer(llm: LLM, options: Partial<ServerOptions> = {}): Promise<Harness> {
  const server = await createServer({ llm, servedModelName: MODEL, ...options });
  const url = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: options.apiKey ?? 'unused', maxRetries: 0, timeout: 120_000 });
  return { llm, server, url, client, stop: () => server.close({ timeoutMs: 1000 }) };
}

/** POST a JSON body (or a raw string) with fetch: for what the openai client will not send. */
export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; json: any; text: string }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json, text };
}

/** One metric's value from /metrics (the first sample whose name and labels match). */
export async function metric(url: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return Number.NaN;
}

export async function waitFor(check: () => Promise<boolean>, timeoutMs = 30_000, what = 'condition'): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
