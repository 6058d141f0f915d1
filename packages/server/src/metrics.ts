/**
 * Prometheus metrics through prom-client, in a registry of the server's own (two servers in one process keep
 * theirs apart). Names follow vLLM's (`vllm:num_requests_waiting` → `qllm_num_requests_waiting`), with underscores so
 * that Kubernetes' custom-metrics adapters take them as they are.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { LLM } from 'qllm';

/** Latency buckets (seconds) as vLLM's time-to-first-token and inter-token histograms, trimmed for a CPU. */
const TTFT_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160];
const ITL_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 10];
const E2E_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640];

export class ServerMetrics {
  readonly registry = new Registry();
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly promptTokens: Counter;
  readonly generationTokens: Counter;
  readonly requestSuccess: Counter<'finished_reason'>;
  readonly ttft: Histogram;
  readonly interTokenLatency: Histogram;
  readonly e2eLatency: Histogram;
  readonly rejected: Counter<'reason'>;

  constructor(llm: LLM, slots: number, labels: { model_name: string }) {
    const registry = this.registry;
    registry.setDefaultLabels(labels);
    collectDefaultMetrics({ register: registry, prefix: 'qllm_' }); // qllm_process_resident_memory_bytes, qllm_nodejs_eventloop_lag_seconds, ...
    this.httpRequests = new Counter({
      name: 'qllm_http_requests_total',
      help: 'HTTP requests answered, by method, route and status code.',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    });
    this.promptTokens = new Counter({ name: 'qllm_prompt_tokens_total', help: 'Prompt tokens admitted.', registers: [registry] });
    this.generationTokens = new Counter({ name: 'qllm_generation_tokens_total', help: 'Tokens generated.', registers: [registry] });
    this.requestSuccess = new Counter({
      name: 'qllm_request_success_total',
      help: 'Completions finished, by finish reason (stop, length, abort).',
      labelNames: ['finished_reason'],
      registers: [registry],
    });
    this.rejected = new Counter({
      name: 'qllm_requests_rejected_total',
      help: 'Requests refused before generating: queue full (429) or shutting down (503).',
      labelNames: ['reason'],
      registers: [registry],
    });
    this.ttft = new Histogram({
      name: 'qllm_time_to_first_token_seconds',
      help: 'Seconds from a request arriving to its first generated token.',
      buckets: TTFT_BUCKETS,
      registers: [registry],
    });
    this.interTokenLatency = new Histogram({
      name: 'qllm_inter_token_latency_seconds',
      help: 'Seconds between successive outputs of one completion.',
      buckets: ITL_BUCKETS,
      registers: [registry],
    });
    this.e2eLatency = new Histogram({
      name: 'qllm_e2e_request_latency_seconds',
      help: 'Seconds from a request arriving to its last output.',
      buckets: E2E_BUCKETS,
      registers: [registry],
    });
    // The engine's own counts, read when scraped.
    const read = () => llm.stats();
    new Gauge({
      name: 'qllm_num_sequences_running',
      help: 'Sequences in the engine holding a KV-cache slot (prefilling or decoding).',
      registers: [registry],
      async collect() {
        this.set((await read()).running);
      },
    });
    new Gauge({
      name: 'qllm_num_requests_waiting',
      help: 'Requests in the engine waiting for KV-cache slots (scale out on this).',
      registers: [registry],
      async collect() {
        this.set((await read()).waiting);
      },
    });
    new Gauge({
      name: 'qllm_kv_cache_usage_perc',
      help: 'Fraction of KV-cache slots in use (1 = every slot holds a sequence).',
      registers: [registry],
      async collect() {
        this.set((await read()).slotsInUse / slots);
      },
    });
  }
}
