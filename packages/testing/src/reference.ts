// A float64 reference forward pass of Qwen3ForCausalLM, written to be obviously correct rather than fast
// (in the spirit of tinygrad's ops_python). It follows HF transformers' modeling_qwen3.py step by step:
//
//   h = embed_tokens[ids]
//   for each layer:
//     x = input_layernorm(h)
//     q = q_norm(q_proj(x) per head), k = k_norm(k_proj(x) per head), v = v_proj(x)
//     q, k = rope(q), rope(k)                       (non-interleaved rotate_half: j pairs with j + hd/2)
//     a[h] = softmax(q[h] . k[kv(h)]^T / sqrt(hd) + causal) . v[kv(h)],  kv(h) = floor(h / (H / K))
//     h = h + o_proj(a)
//     h = h + down_proj(silu(gate_proj(x')) * up_proj(x')),  x' = post_attention_layernorm(h)
//   logits = lm_head(norm(h))                       (lm_head = embed_tokens when tied)
//
// Everything is float64, including RoPE's inv_freq and cos/sin. No KV cache: every call recomputes from scratch.
import { argmax, logSoftmax } from './logprobs.js';

/** The subset of a Qwen3 config.json the forward pass needs. */
export interface Qwen3RefConfig {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  tieWordEmbeddings: boolean;
}

/** Weights by HF tensor name (e.g. `model.layers.0.self_attn.q_proj.weight`), row-major; linear weights are [out, in]. */
export type RefWeights = (name: string) => Float64Array;

function positiveInt(raw: Record<string, unknown>, key: string, fallback?: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    throw new TypeError(`config.json: "${key}" must be a positive integer (got ${JSON.stringify(raw[key])})`);
  }
  return v;
}

function positiveNumber(v: unknown, key: string): number {
  if (typeof v !== 'number' || !(v > 0)) throw new TypeError(`config.json: "${key}" must be a positive number (got ${JSON.stringify(v)})`);
  return v;
}

/**
 * Reads the HF config.json keys of a Qwen3 model. Accepts both the transformers 4.x layout (`rope_theta`) and the
 * 5.x one (`rope_parameters.rope_theta`). Missing optional keys take Qwen3Config's defaults
 * (head_dim = hidden/heads, rope_theta 10000, rms_norm_eps 1e-6, tie_word_embeddings false).
 */
export function refConfigFromHf(raw: Record<string, unknown>): Qwen3RefConfig {
  const hiddenSize = positiveInt(raw, 'hidden_size');
  const numHeads = positiveInt(raw, 'num_attention_heads');
  const numKvHeads = positiveInt(raw, 'num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new TypeError(`config.json: num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`);
  }
  const headDim = positiveInt(raw, 'head_dim', hiddenSize / numHeads);
  if (headDim % 2 !== 0) throw new TypeError(`config.json: head_dim (${headDim}) must be even for RoPE`);
  const ropeParams = raw['rope_parameters'] as Record<string, unknown> | null | undefined;
  const ropeTheta = raw['rope_theta'] ?? ropeParams?.['rope_theta'] ?? 10000;
  const tie = raw['tie_word_embeddings'] ?? false;
  if (typeof tie !== 'boolean') throw new TypeError(`config.json: "tie_word_embeddings" must be a boolean`);
  return {
    hiddenSize,
    intermediateSize: positiveInt(raw, 'intermediate_size'),
    numLayers: positiveInt(raw, 'num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: positiveInt(raw, 'vocab_size'),
    rmsNormEps: positiveNumber(raw['rms_norm_eps'] ?? 1e-6, 'rms_norm_eps'),
    ropeTheta: positiveNumber(ropeTheta, 'rope_theta'),
    tieWordEmbeddings: tie,
  };
}

interface LayerWeights {
  inputNorm: Float64Array;
  q: Float64Array;
  k: Float64Array;
  v: Float64Array;
  o: Float64Array;
  qNorm: Float64Array;
  kNorm: Float64Array;
  postNorm: Float64Array;
  gate: Float64Array;
  up: Float64Array;
  down: Float64Array;
}

/** out[r] = sum_c W[r, c] * x[c], W row-major [rows, x.length]. */
function matvec(w: Float64Array, x: Float64Array, out: Float64Array): Float64Array {
  const cols = x.length;
  for (let r = 0; r < out.length; r++) {
    let s = 0;
    const base = r * cols;
    for (let c = 0; c < cols; c++) s += w[base + c]! * x[c]!;
    out[r] = s;
  }
  return out;
}

/** RMSNorm of x (in place allowed): x / sqrt(mean(x^2) + eps) * weight. */
function rmsNorm(x: Float64Array, weight: Float64Array, eps: number, out: Float64Array): Float64Array {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i]! * x[i]!;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  for (let i = 0; i < x.length; i++) out[i] = x[i]! * inv * weight[i]!;
  return out;
}

/** HF rotate_half RoPE on one head vector, in place: x' = x*cos + rotate_half(x)*sin. */
function rope(x: Float64Array, cos: Float64Array, sin: Float64Array): void {
  const half = x.length / 2;
  for (let i = 0; i < half; i++) {
    const a = x[i]!;
    const b = x[i + half]!;
    x[i] = a * cos[i]! - b * sin[i]!;
    x[i + half] = b * cos[i]! + a * sin[i]!;
  }
}

/** The residual add: h += y. */
function addInPlace(h: Float64Array, y: Float64Array): void {
  for (let i = 0; i < h.length; i++) h[i] = h[i]! + y[i]!;
}

function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

export class Qwen3Reference {
  readonly config: Qwen3RefConfig;
  private readonly embed: Float64Array;
  private readonly lmHead: Float64Array;
  private readonly finalNorm: Float64Array;
  private readonly layers: LayerWeights[] = [];
  private readonly invFreq: Float64Array;

  constructor(config: Qwen3RefConfig, weights: RefWeights) {
    this.config = config;
    const { hiddenSize: D, intermediateSize: I, numHeads: H, numKvHeads: K, headDim: hd, vocabSize: V } = config;
    const get = (name: string, size: number): Float64Array => {
      const w = weights(name);
      if (w.length !== size) throw new RangeError(`${name}: expected ${size} values, got ${w.length}`);
      return w;
    };
    this.embed = get('model.embed_tokens.weight', V * D);
    this.lmHead = config.tieWordEmbeddings ? this.embed : get('lm_head.weight', V * D);
    this.finalNorm = get('model.norm.weight', D);
    for (let l = 0; l < config.numLayers; l++) {
      const p = `model.layers.${l}.`;
      this.layers.push({
        inputNorm: get(`${p}input_layernorm.weight`, D),
        q: get(`${p}self_attn.q_proj.weight`, H * hd * D),
        k: get(`${p}self_attn.k_proj.weight`, K * hd * D),
        v: get(`${p}self_attn.v_proj.weight`, K * hd * D),
        o: get(`${p}self_attn.o_proj.weight`, D * H * hd),
        qNorm: get(`${p}self_attn.q_norm.weight`, hd),
        kNorm: get(`${p}self_attn.k_norm.weight`, hd),
        postNorm: get(`${p}post_attention_layernorm.weight`, D),
        gate: get(`${p}mlp.gate_proj.weight`, I * D),
        up: get(`${p}mlp.up_proj.weight`, I * D),
        down: get(`${p}mlp.down_proj.weight`, D * I),
      });
    }
    this.invFreq = new Float64Array(hd / 2);
    for (let i = 0; i < hd / 2; i++) this.invFreq[i] = 1 / Math.pow(config.ropeTheta, (2 * i) / hd);
  }

  /** Final hidden states (after model.norm), one [hidden] vector per position. */
  hiddenStates(tokenIds: readonly number[]): Float64Array[] {
    const { hiddenSize: D, intermediateSize: I, numHeads: H, numKvHeads: K, headDim: hd, vocabSize: V, rmsNormEps: eps } = this.config;
    const T = tokenIds.length;
    const nRep = H / K;
    const scale = 1 / Math.sqrt(hd);

    // Residual stream h[t] = embed_tokens[ids[t]].
    const h = tokenIds.map((id) => {
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new RangeError(`token id ${id} is outside [0, ${V})`);
      return this.embed.slice(id * D, (id + 1) * D);
    });
    // RoPE tables per position.
    const cos: Float64Array[] = [];
    const sin: Float64Array[] = [];
    for (let t = 0; t < T; t++) {
      cos.push(this.invFreq.map((f) => Math.cos(t * f)));
      sin.push(this.invFreq.map((f) => Math.sin(t * f)));
    }

    const x = new Float64Array(D);
    const attn = new Float64Array(H * hd);
    const proj = new Float64Array(D);
    const gate = new Float64Array(I);
    const up = new Float64Array(I);
    const scores = new Float64Array(T);
    const q = Array.from({ length: T }, () => new Float64Array(H * hd));
    const k = Array.from({ length: T }, () => new Float64Array(K * hd));
    const v = Array.from({ length: T }, () => new Float64Array(K * hd));

    for (const L of this.layers) {
      // Projections, per-head q/k RMSNorm, then RoPE — for every position.
      for (let t = 0; t < T; t++) {
        rmsNorm(h[t]!, L.inputNorm, eps, x);
        matvec(L.q, x, q[t]!);
        matvec(L.k, x, k[t]!);
        matvec(L.v, x, v[t]!);
        for (let head = 0; head < H; head++) {
          const qh = q[t]!.subarray(head * hd, (head + 1) * hd);
          rmsNorm(qh, L.qNorm, eps, qh);
          rope(qh, cos[t]!, sin[t]!);
        }
        for (let head = 0; head < K; head++) {
          const kh = k[t]!.subarray(head * hd, (head + 1) * hd);
          rmsNorm(kh, L.kNorm, eps, kh);
          rope(kh, cos[t]!, sin[t]!);
        }
      }
      // Causal attention, o_proj and residual (all k/v were computed above, so h can be updated in place).
      for (let t = 0; t < T; t++) {
        for (let head = 0; head < H; head++) {
          const kvOff = Math.floor(head / nRep) * hd;
          const qOff = head * hd;
          let max = -Infinity;
          for (let s = 0; s <= t; s++) {
            let dot = 0;
            for (let j = 0; j < hd; j++) dot += q[t]![qOff + j]! * k[s]![kvOff + j]!;
            scores[s] = dot * scale;
            if (scores[s]! > max) max = scores[s]!;
          }
          let sum = 0;
          for (let s = 0; s <= t; s++) {
            scores[s] = Math.exp(scores[s]! - max);
            sum += scores[s]!;
          }
          for (let j = 0; j < hd; j++) {
            let acc = 0;
            for (let s = 0; s <= t; s++) acc += scores[s]! * v[s]![kvOff + j]!;
            attn[qOff + j] = acc / sum;
          }
        }
        matvec(L.o, attn, proj);
        addInPlace(h[t]!, proj);
      }
      // SwiGLU MLP and residual.
      for (let t = 0; t < T; t++) {
        rmsNorm(h[t]!, L.postNorm, eps, x);
        matvec(L.gate, x, gate);
        matvec(L.up, x, up);
        for (let i = 0; i < I; i++) gate[i] = silu(gate[i]!) * up[i]!;
        matvec(L.down, gate, proj);
        addInPlace(h[t]!, proj);
      }
    }
    return h.map((ht) => rmsNorm(ht, this.finalNorm, eps, ht));
  }

  /** Raw logits lm_head(hidden) for one final hidden state. */
  logits(hidden: Float64Array): Float64Array {
    return matvec(this.lmHead, hidden, new Float64Array(this.config.vocabSize));
  }

  /** For every position t, the natural-log log-softmax over the vocabulary of the next token given ids[0..t]. */
  forward(tokenIds: readonly number[]): Float64Array[] {
    return this.hiddenStates(tokenIds).map((hs) => logSoftmax(this.logits(hs)));
  }

  /**
   * Greedy decoding with full recomputation at every step. `tokenIds` are the `steps` generated ids (not the
   * prompt); `logprobs[i]` is the distribution that `tokenIds[i]` was chosen from (argmax, lowest id on ties).
   */
  greedy(promptIds: readonly number[], steps: number): { tokenIds: number[]; logprobs: Float64Array[] } {
    if (promptIds.length === 0) throw new RangeError('greedy: the prompt must hold at least one token');
    const ids = [...promptIds];
    const tokenIds: number[] = [];
    const logprobs: Float64Array[] = [];
    for (let step = 0; step < steps; step++) {
      const hs = this.hiddenStates(ids);
      const lp = logSoftmax(this.logits(hs[hs.length - 1]!));
      const next = argmax(lp);
      tokenIds.push(next);
      logprobs.push(lp);
      ids.push(next);
    }
    return { tokenIds, logprobs };
  }
}
