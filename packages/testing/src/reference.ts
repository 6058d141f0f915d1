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
// Every linear layer is applied to the whole sequence at once, as one [tokens, in] matrix, through an optional
// LinearHook, so a quantization simulator (e.g. w8a8-reference.ts) can replace any layer's product.
import { argmax, logSoftmax } from './logprobs.js';
import type { Qwen3RefConfig } from './ref-config.js';

export { refConfigFromHf } from './ref-config.js';
export type { Qwen3RefConfig } from './ref-config.js';

/**
 * Called for every linear layer, named as in HF without `.weight` (`model.layers.0.self_attn.q_proj`, `lm_head`),
 * with the layer's input for the whole sequence as a row-major [tokens, inFeatures] matrix. Returns the output as a
 * row-major [tokens, outFeatures] matrix (which the reference may modify), or undefined for the float product
 * x·Wᵀ. It must not modify `x`.
 */
export type LinearHook = (
  name: string,
  x: Float64Array,
  inFeatures: number,
  outFeatures: number,
  tokens: number,
) => Float64Array | undefined;

export interface Qwen3ReferenceOptions {
  linear?: LinearHook;
}

/** Weights by HF tensor name (e.g. `model.layers.0.self_attn.q_proj.weight`), row-major; linear weights are [out, in]. */
export type RefWeights = (name: string) => Float64Array;

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

/** y[t, r] = sum_c W[r, c] * x[t, c]: x row-major [tokens, cols], W row-major [rows, cols]; y is [tokens, rows]. */
export function matmulWT(w: Float64Array, x: Float64Array, cols: number, rows: number, tokens: number): Float64Array {
  const y = new Float64Array(tokens * rows);
  for (let t = 0; t < tokens; t++) {
    const xOff = t * cols;
    for (let r = 0; r < rows; r++) {
      let s = 0;
      const base = r * cols;
      for (let c = 0; c < cols; c++) s += w[base + c]! * x[xOff + c]!;
      y[t * rows + r] = s;
    }
  }
  return y;
}

/** Row t of a row-major [*, n] matrix, as a view. */
function row(m: Float64Array, t: number, n: number): Float64Array {
  return m.subarray(t * n, (t + 1) * n);
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
  private readonly hook: LinearHook | undefined;

  constructor(config: Qwen3RefConfig, weights: RefWeights, options: Qwen3ReferenceOptions = {}) {
    this.config = config;
    this.hook = options.linear;
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

  /** The linear layer `name` on all T rows of x ([T, inF] → [T, outF]): the hook's result, else x·Wᵀ. */
  private linear(name: string, w: Float64Array, x: Float64Array, inF: number, outF: number, T: number): Float64Array {
    const y = this.hook?.(name, x, inF, outF, T) ?? matmulWT(w, x, inF, outF, T);
    if (y.length !== T * outF) throw new RangeError(`${name}: the linear hook returned ${y.length} values, expected ${T}×${outF}`);
    return y;
  }

  /** Final hidden states (after model.norm) as one row-major [T, hidden] matrix. */
  private hiddenMatrix(tokenIds: readonly number[]): Float64Array {
    const { hiddenSize: D, intermediateSize: I, numHeads: H, numKvHeads: K, headDim: hd, vocabSize: V, rmsNormEps: eps } = this.config;
    const T = tokenIds.length;
    const nRep = H / K;
    const scale = 1 / Math.sqrt(hd);

    // Residual stream h[t] = embed_tokens[ids[t]].
    const h = new Float64Array(T * D);
    tokenIds.forEach((id, t) => {
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new RangeError(`token id ${id} is outside [0, ${V})`);
      h.set(this.embed.subarray(id * D, (id + 1) * D), t * D);
    });
    // RoPE tables per position.
    const cos: Float64Array[] = [];
    const sin: Float64Array[] = [];
    for (let t = 0; t < T; t++) {
      cos.push(this.invFreq.map((f) => Math.cos(t * f)));
      sin.push(this.invFreq.map((f) => Math.sin(t * f)));
    }
    const scores = new Float64Array(T);
    /** RMSNorm of every row of h. */
    const normRows = (weight: Float64Array): Float64Array => {
      const x = new Float64Array(T * D);
      for (let t = 0; t < T; t++) rmsNorm(row(h, t, D), weight, eps, row(x, t, D));
      return x;
    };

    this.layers.forEach((L, l) => {
      const p = `model.layers.${l}.`;
      // Projections of all positions, then per-head q/k RMSNorm and RoPE.
      const x = normRows(L.inputNorm);
      const q = this.linear(`${p}self_attn.q_proj`, L.q, x, D, H * hd, T);
      const k = this.linear(`${p}self_attn.k_proj`, L.k, x, D, K * hd, T);
      const v = this.linear(`${p}self_attn.v_proj`, L.v, x, D, K * hd, T);
      for (let t = 0; t < T; t++) {
        for (let head = 0; head < H; head++) {
          const qh = q.subarray((t * H + head) * hd, (t * H + head + 1) * hd);
          rmsNorm(qh, L.qNorm, eps, qh);
          rope(qh, cos[t]!, sin[t]!);
        }
        for (let head = 0; head < K; head++) {
          const kh = k.subarray((t * K + head) * hd, (t * K + head + 1) * hd);
          rmsNorm(kh, L.kNorm, eps, kh);
          rope(kh, cos[t]!, sin[t]!);
        }
      }
      // Causal attention of every position into attn [T, H*hd], then o_proj and the residual.
      const attn = new Float64Array(T * H * hd);
      for (let t = 0; t < T; t++) {
        for (let head = 0; head < H; head++) {
          const kvOff = Math.floor(head / nRep) * hd;
          const qOff = t * H * hd + head * hd;
          let max = -Infinity;
          for (let s = 0; s <= t; s++) {
            let dot = 0;
            for (let j = 0; j < hd; j++) dot += q[qOff + j]! * k[s * K * hd + kvOff + j]!;
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
            for (let s = 0; s <= t; s++) acc += scores[s]! * v[s * K * hd + kvOff + j]!;
            attn[qOff + j] = acc / sum;
          }
        }
      }
      addInPlace(h, this.linear(`${p}self_attn.o_proj`, L.o, attn, H * hd, D, T));
      // SwiGLU MLP and residual.
      const x2 = normRows(L.postNorm);
      const gate = this.linear(`${p}mlp.gate_proj`, L.gate, x2, D, I, T);
      const up = this.linear(`${p}mlp.up_proj`, L.up, x2, D, I, T);
      for (let i = 0; i < T * I; i++) gate[i] = silu(gate[i]!) * up[i]!;
      addInPlace(h, this.linear(`${p}mlp.down_proj`, L.down, gate, I, D, T));
    });
    for (let t = 0; t < T; t++) rmsNorm(row(h, t, D), this.finalNorm, eps, row(h, t, D));
    return h;
  }

  /** Final hidden states (after model.norm), one [hidden] vector per position. */
  hiddenStates(tokenIds: readonly number[]): Float64Array[] {
    const D = this.config.hiddenSize;
    const h = this.hiddenMatrix(tokenIds);
    return tokenIds.map((_, t) => row(h, t, D));
  }

  /** Raw logits lm_head(hidden) for one final hidden state (through the hook as a 1-token matrix). */
  logits(hidden: Float64Array): Float64Array {
    const D = this.config.hiddenSize;
    if (hidden.length !== D) throw new RangeError(`logits: expected a [${D}] hidden state, got ${hidden.length} values`);
    return this.linear('lm_head', this.lmHead, hidden, D, this.config.vocabSize, 1);
  }

  /** For every position t, the natural-log log-softmax over the vocabulary of the next token given ids[0..t]. */
  forward(tokenIds: readonly number[]): Float64Array[] {
    const { hiddenSize: D, vocabSize: V } = this.config;
    const T = tokenIds.length;
    const logits = this.linear('lm_head', this.lmHead, this.hiddenMatrix(tokenIds), D, V, T);
    return tokenIds.map((_, t) => logSoftmax(row(logits, t, V)));
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
      const lp = logSoftmax(this.logits(hs[hs.length - 1]!)); // lm_head of the last position only
      const next = argmax(lp);
      tokenIds.push(next);
      logprobs.push(lp);
      ids.push(next);
    }
    return { tokenIds, logprobs };
  }
}
