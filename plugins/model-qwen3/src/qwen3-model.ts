import { layers, type AttentionSpecV1, type GraphContextV1, type LinearSpec, type ModelArchitectureV1, type TensorSpec } from '@qllm/core';
import { parseQwen3Config, type Qwen3Config } from './qwen3-config.js';
import { qwen3TensorNames } from './qwen3-names.js';

const { swiglu } = layers;

/** The linear layers of decoder layer i (HF names), and the head. */
function decoderLinears(c: Qwen3Config, i: number) {
  const p = `model.layers.${i}`;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const spec = (name: string, inFeatures: number, outFeatures: number): LinearSpec => ({ name: `${p}.${name}`, inFeatures, outFeatures, layer: i });
  return {
    q: spec('self_attn.q_proj', c.hiddenSize, q),
    k: spec('self_attn.k_proj', c.hiddenSize, kv),
    v: spec('self_attn.v_proj', c.hiddenSize, kv),
    o: spec('self_attn.o_proj', q, c.hiddenSize),
    gate: spec('mlp.gate_proj', c.hiddenSize, c.intermediateSize),
    up: spec('mlp.up_proj', c.hiddenSize, c.intermediateSize),
    down: spec('mlp.down_proj', c.intermediateSize, c.hiddenSize),
  };
}

function lmHead(c: Qwen3Config): LinearSpec {
  // A tied checkpoint may still carry lm_head.weight (Qwen3-0.6B does); HF ties it to the embedding, so do we.
  return { name: 'lm_head', inFeatures: c.hiddenSize, outFeatures: c.vocabSize, layer: -1, ...(c.tieWordEmbeddings ? { weight: 'model.embed_tokens.weight' } : {}) };
}

/** Qwen3ForCausalLM, as HF transformers' modeling_qwen3.py (reference/qwen3.md §1). */
export const qwen3: ModelArchitectureV1<Qwen3Config> = {
  specificationVersion: 'v1',
  name: 'Qwen3ForCausalLM',
  parseConfig: parseQwen3Config,
  tensorNames: qwen3TensorNames,

  expectedTensors(c) {
    const specs: TensorSpec[] = [{ name: 'model.embed_tokens.weight', shape: [c.vocabSize, c.hiddenSize] }];
    for (let i = 0; i < c.numLayers; i++) {
      const p = `model.layers.${i}`;
      specs.push(
        { name: `${p}.input_layernorm.weight`, shape: [c.hiddenSize] },
        { name: `${p}.post_attention_layernorm.weight`, shape: [c.hiddenSize] },
        { name: `${p}.self_attn.q_norm.weight`, shape: [c.headDim] },
        { name: `${p}.self_attn.k_norm.weight`, shape: [c.headDim] },
        ...Object.values(decoderLinears(c, i)).map((l) => ({ name: `${l.name}.weight`, shape: [l.outFeatures, l.inFeatures] })),
      );
    }
    specs.push({ name: 'model.norm.weight', shape: [c.hiddenSize] });
    specs.push({ name: 'lm_head.weight', shape: [c.vocabSize, c.hiddenSize], optional: c.tieWordEmbeddings });
    return specs;
  },

  linearLayers(c) {
    const all: LinearSpec[] = [];
    for (let i = 0; i < c.numLayers; i++) all.push(...Object.values(decoderLinears(c, i)));
    all.push(lmHead(c));
    return all;
  },

  embeddingWeight: () => 'model.embed_tokens.weight',

  smoothMappings(c, i) {
    const L = decoderLinears(c, i);
    const rep = c.numHeads / c.numKvHeads;
    // o_proj input channel (head h, dim d) is attention over v head floor(h / rep), dim d.
    const vChannel = (ch: number) => Math.floor(Math.floor(ch / c.headDim) / rep) * c.headDim + (ch % c.headDim);
    return [
      { norm: `model.layers.${i}.input_layernorm.weight`, linears: [L.q, L.k, L.v] },
      { producer: L.v, producerChannel: vChannel, linears: [L.o] },
      { norm: `model.layers.${i}.post_attention_layernorm.weight`, linears: [L.gate, L.up] },
    ];
  },

  buildGraph(ctx, c) {
    const { g } = ctx;
    const io = ctx.inputs();
    let x = ctx.embedding('model.embed_tokens.weight', [c.vocabSize, c.hiddenSize], io.inputIds);
    let residual: string | undefined;
    for (let i = 0; i < c.numLayers; i++) {
      const layer = g.withScope(`layers.${i}`, () => decoderLayer(ctx, c, i, x, residual));
      x = layer.out;
      residual = layer.residual;
    }
    // Only the requested rows reach the head (the last one of each sequence while generating).
    const final = ctx.rmsNorm(x, ctx.weight('model.norm.weight', [c.hiddenSize]), c.rmsNormEps, { residual }).out;
    ctx.outputs({ logits: ctx.linear(lmHead(c), g.op('Gather', [final, io.logitsIndices], { axis: 0 })) });
  },

  buildLayerGraph(ctx, c, i) {
    const { hidden } = ctx.layerInputs();
    const layer = decoderLayer(ctx, c, i, hidden, undefined);
    ctx.layerOutputs(ctx.g.op('Add', [layer.out, layer.residual]));
  },

  buildHeadGraph(ctx, c) {
    ctx.outputs({ logits: head(ctx, c, ctx.headInput()) });
  },
};

/**
 * One decoder layer: pre-norm attention with q/k norms and RoPE, then a pre-norm SwiGLU MLP, each residual. The
 * residual adds are carried into the next norm (`out` + `residual` is the layer's output), so a backend can fuse
 * add and norm.
 */
function decoderLayer(ctx: GraphContextV1, c: Qwen3Config, i: number, x: string, residual: string | undefined) {
  const { g } = ctx;
  const p = `model.layers.${i}`;
  const L = decoderLinears(c, i);
  const eps = c.rmsNormEps;
  const attn: AttentionSpecV1 = { numHeads: c.numHeads, numKvHeads: c.numKvHeads, headDim: c.headDim, ropeTheta: c.ropeTheta };
  const n1 = ctx.rmsNorm(x, ctx.weight(`${p}.input_layernorm.weight`, [c.hiddenSize]), eps, { residual });
  // q_norm / k_norm act on each head's head_dim values, before RoPE: [tokens·heads, head_dim], as attention takes it.
  const headNorm = (y: string, weight: string) => ctx.rmsNorm(g.op('Reshape', [y, g.ints([-1, c.headDim])]), ctx.weight(weight, [c.headDim]), eps).out;
  const [qProj, kProj, v] = ctx.linears([L.q, L.k, L.v], n1.out) as [string, string, string];
  const q = headNorm(qProj, `${p}.self_attn.q_norm.weight`);
  const k = headNorm(kProj, `${p}.self_attn.k_norm.weight`);
  const o = ctx.linear(L.o, ctx.attention(i, q, k, v, attn));
  const n2 = ctx.rmsNorm(o, ctx.weight(`${p}.post_attention_layernorm.weight`, [c.hiddenSize]), eps, { residual: n1.sum });
  const [gate, up] = ctx.linears([L.gate, L.up], n2.out) as [string, string];
  return { out: ctx.linear(L.down, swiglu(g, gate, up)), residual: n2.sum };
}

/** Final norm, then the head (the head graph: hidden states in, logits out). */
function head(ctx: GraphContextV1, c: Qwen3Config, x: string): string {
  return ctx.linear(lmHead(c), ctx.rmsNorm(x, ctx.weight('model.norm.weight', [c.hiddenSize]), c.rmsNormEps).out);
}
