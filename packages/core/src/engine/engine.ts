/**
 * The batching engine, as vLLM's V1 EngineCore + Scheduler: requests wait in a queue, are admitted when their
 * sequences have KV-cache slots, are prefilled in chunks within a per-step token budget, and then decode together —
 * one batched forward per step for every running sequence. A finished or aborted sequence frees its slot at once.
 * `step()` returns the outputs of the requests it advanced; callers loop on it while `hasUnfinished()`.
 */
import { ConfigError } from '../errors.js';
import type { QllmTokenizer } from '../loading/index.js';
import type { RequestOutput } from '../llm/outputs.js';
import type { SamplingParams } from '../llm/sampling-params.js';
import type { Rng } from '../sampling/index.js';
import { Sequence } from './sequence.js';
import type { StepRunner } from './step-runner.js';

export interface EngineConfig {
  runner: StepRunner;
  vocabSize: number;
  tokenizer?: QllmTokenizer;
  eosTokenIds: readonly number[];
  /** Longest sequence (prompt + output); the cache's positions per slot. */
  maxModelLen: number;
  /** Tokens one step may compute (decode rows + prefill chunks); long prompts are prefilled in chunks of it. */
  maxNumBatchedTokens: number;
  /** Most requests waiting for a slot; past it addRequest throws (the server answers 429). Default unbounded. */
  maxQueue?: number;
}

/** What a request brings. */
export interface EngineRequestInit {
  prompt: string | null;
  promptTokenIds: readonly number[];
  params: SamplingParams;
  rng: Rng;
  /** 'delta': outputs carry only what is new since the last one (streaming); 'final': one output when finished. */
  outputKind: 'delta' | 'final';
  arrivalTime?: number;
}

interface Request extends EngineRequestInit {
  id: string;
  seqs: Sequence[];
  /** Prompt positions prefilled so far (into seqs[0]'s slot). */
  prefilled: number;
  arrivalTime: number;
  firstScheduledTime?: number;
  firstTokenTime?: number;
  lastTokenTime?: number;
  finishedTime?: number;
}

export class Engine {
  private readonly waiting: Request[] = [];
  /** Admitted requests (prefilling or decoding), in admission order. */
  private readonly running: Request[] = [];
  private readonly requests = new Map<string, Request>();
  private readonly freeSlots: number[];
  /** Outputs of requests aborted between steps, delivered by the next step. */
  private readonly pendingOutputs: RequestOutput[] = [];

  constructor(private readonly config: EngineConfig) {
    const slots = config.runner.cache.layout.slots;
    this.freeSlots = Array.from({ length: slots }, (_, i) => slots - 1 - i); // pop() gives the lowest slot
  }

  get numSlots(): number {
    return this.config.runner.cache.layout.slots;
  }

  get layout() {
    return this.config.runner.cache.layout;
  }

  /** The ids of every request not yet finished. */
  requestIds(): string[] {
    return [...this.requests.keys()];
  }

  /** Sequences decoding or prefilling, and requests waiting for slots (for metrics). */
  stats(): { running: number; waiting: number; slotsInUse: number } {
    return { running: this.running.reduce((a, r) => a + r.seqs.filter((s) => !s.finished).length, 0), waiting: this.waiting.length, slotsInUse: this.numSlots - this.freeSlots.length };
  }

  /** Queue a request; throws a ConfigError (and changes nothing) when it can never run. */
  addRequest(id: string, init: EngineRequestInit): void {
    const { promptTokenIds: prompt, params } = init;
    if (this.requests.has(id)) throw new ConfigError(`request ${id} is already in the engine`);
    if (prompt.length === 0) throw new ConfigError(`request ${id}: the prompt is empty`);
    const bad = prompt.find((t) => !Number.isInteger(t) || t < 0 || t >= this.config.vocabSize);
    if (bad !== undefined) throw new ConfigError(`request ${id}: prompt token id ${bad} is outside the vocabulary [0, ${this.config.vocabSize})`);
    const maxLen = this.config.maxModelLen;
    if (prompt.length >= maxLen) {
      throw new ConfigError(`request ${id}: the prompt has ${prompt.length} tokens, but maxModelLen ${maxLen} leaves no room for output`);
    }
    if (prompt.length + params.maxTokens > maxLen) {
      throw new ConfigError(
        `request ${id}: the prompt's ${prompt.length} tokens plus maxTokens ${params.maxTokens} exceed maxModelLen ${maxLen} ` +
          `(the KV cache holds ${maxLen} positions per sequence): lower maxTokens to at most ${maxLen - prompt.length}`,
      );
    }
    if (params.n > this.numSlots) throw new ConfigError(`request ${id}: n = ${params.n} completions need ${params.n} KV-cache slots, but the engine has maxNumSeqs ${this.numSlots}`);
    if (this.config.maxQueue !== undefined && this.waiting.length >= this.config.maxQueue) {
      throw new EngineBusyError(`request ${id}: ${this.waiting.length} requests are already waiting (maxQueue ${this.config.maxQueue})`);
    }
    const env = { tokenizer: this.config.tokenizer, eosTokenIds: this.config.eosTokenIds, maxModelLen: maxLen };
    const request: Request = {
      ...init,
      id,
      seqs: Array.from({ length: params.n }, (_, i) => new Sequence(i, prompt, params, init.rng, env)),
      prefilled: 0,
      arrivalTime: init.arrivalTime ?? Date.now() / 1000,
    };
    this.requests.set(id, request);
    this.waiting.push(request);
  }

  /** Abort a request: its sequences stop and free their slots now; its final output comes with the next step. */
  abort(id: string): boolean {
    const r = this.requests.get(id);
    if (!r) return false;
    for (const s of r.seqs) s.abort();
    this.finish(r);
    this.pendingOutputs.push(this.output(r));
    return true;
  }

  hasUnfinished(): boolean {
    return this.requests.size > 0 || this.pendingOutputs.length > 0;
  }

  /** One scheduling step: prefill chunks within the token budget, then one batched decode of the running sequences. */
  async step(): Promise<RequestOutput[]> {
    const outputs = this.pendingOutputs.splice(0);
    const now = () => Date.now() / 1000;
    let budget = this.config.maxNumBatchedTokens;

    // Decode rows first (one token each), as vLLM schedules running requests before waiting ones.
    const decoding: Sequence[] = [];
    for (const r of this.running) if (r.prefilled === r.promptTokenIds.length) for (const s of r.seqs) if (!s.finished) decoding.push(s);
    budget -= decoding.length;

    // Prompts prefilled in chunks by earlier steps go on first, then waiting requests are admitted while their
    // sequences get slots (first come, first served).
    for (const r of this.running) {
      if (budget <= 0) break;
      if (r.prefilled === r.promptTokenIds.length) continue;
      const chunk = Math.min(budget, r.promptTokenIds.length - r.prefilled);
      budget -= chunk;
      await this.prefill(r, chunk);
    }
    while (this.waiting.length && this.freeSlots.length >= this.waiting[0]!.params.n && budget > 0) {
      const r = this.waiting.shift()!;
      for (const s of r.seqs) s.slot = this.freeSlots.pop()!;
      r.firstScheduledTime = now();
      this.running.push(r);
      const chunk = Math.min(budget, r.promptTokenIds.length);
      budget -= chunk;
      await this.prefill(r, chunk);
    }

    if (decoding.length) {
      const rows = decoding.map((s) => ({ slot: s.slot, token: s.lastToken, past: s.numTokens - 1 }));
      const logits = await this.config.runner.decode(rows);
      const V = this.config.vocabSize;
      decoding.forEach((s, i) => {
        if (s.finished) return; // aborted while the step ran
        s.numComputed = s.numTokens;
        s.accept(logits.subarray(i * V, (i + 1) * V));
      });
      const t = now();
      for (const r of this.running) if (r.seqs.some((s) => decoding.includes(s))) r.lastTokenTime = t;
    }

    for (const r of [...this.running]) {
      const fresh = r.seqs.some((s) => s.outputIds.length > s.sentTokens) || r.seqs.every((s) => s.finished);
      if (r.seqs.every((s) => s.finished)) this.finish(r);
      else for (const s of r.seqs) if (s.finished && s.slot >= 0) this.release(s);
      if (fresh && (r.outputKind === 'delta' || r.finishedTime !== undefined)) outputs.push(this.output(r));
    }
    return outputs;
  }

  /** Prefill `count` more prompt tokens of r into its first sequence's slot; when the prompt is done, fork and sample. */
  private async prefill(r: Request, count: number): Promise<void> {
    const first = r.seqs[0]!;
    const from = r.prefilled;
    const to = from + count;
    const done = to === r.promptTokenIds.length;
    const logits = await this.config.runner.prefill(first.slot, r.promptTokenIds.slice(from, to), from, done ? [count - 1] : []);
    if (r.finishedTime !== undefined) return; // aborted while the chunk ran: its slots are already free
    r.prefilled = to;
    first.numComputed = to;
    if (!done) return;
    // n > 1: the other completions start from a copy of the prompt's cache and the same next-token logits.
    for (const s of r.seqs.slice(1)) {
      this.config.runner.cache.copySlot(first.slot, s.slot, to);
      s.numComputed = to;
    }
    for (const s of r.seqs) s.accept(r.seqs.length > 1 ? logits.slice() : logits);
    r.firstTokenTime = r.lastTokenTime = Date.now() / 1000;
  }

  private release(s: Sequence): void {
    if (s.slot >= 0) {
      this.freeSlots.push(s.slot);
      this.config.runner.cache.hold(s.slot, 0);
    }
    s.slot = -1;
    this.freeSlots.sort((a, b) => b - a); // lowest slot last: new sequences pack into low slots, keeping decode batches short
  }

  private finish(r: Request): void {
    for (const s of r.seqs) this.release(s);
    r.finishedTime ??= Date.now() / 1000;
    this.requests.delete(r.id);
    const w = this.waiting.indexOf(r);
    if (w >= 0) this.waiting.splice(w, 1);
    const i = this.running.indexOf(r);
    if (i >= 0) this.running.splice(i, 1);
  }

  private output(r: Request): RequestOutput {
    const delta = r.outputKind === 'delta';
    const finished = r.finishedTime !== undefined;
    return {
      requestId: r.id,
      prompt: r.prompt,
      promptTokenIds: [...r.promptTokenIds],
      outputs: r.seqs.map((s) => s.output(delta)),
      finished,
      metrics: {
        arrivalTime: r.arrivalTime,
        firstScheduledTime: r.firstScheduledTime,
        firstTokenTime: r.firstTokenTime,
        lastTokenTime: r.lastTokenTime,
        finishedTime: r.finishedTime,
        numGenerationTokens: r.seqs.reduce((a, s) => a + s.outputIds.length, 0),
      },
    };
  }
}

/** The engine's queue is full: try again later (the server's 429). */
export class EngineBusyError extends ConfigError {}
