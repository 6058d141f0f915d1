import { layers, type GraphContextV1, type LinearSpec, type ModelArchitectureV1, type TensorSpec } from '@qllm/core';
import { parseQwen3Config, type Qwen3Config } from './qwen3-config.js';

const { rmsNorm, swiglu, ropeTables, applyRope, causalMask, keyPositions, groupedQueryAttention, splitHeads } = layers;

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
    const rope = ropeTables(g, io.positions, c.headDim, c.ropeTheta);
    const mask = causalMask(g, io.positions, keyPositions(g, io.pastKeys[0]!, io.inputIds));
    let x = g.op('Gather', [ctx.weight('model.embed_tokens.weight', [c.vocabSize, c.hiddenSize]), io.inputIds], { axis: 0 });
    const presentKeys: string[] = [];
    const presentValues: string[] = [];
    for (let i = 0; i < c.numLayers; i++) {
      const past = { key: io.pastKeys[i]!, value: io.pastValues[i]! };
      const layer = g.withScope(`layers.${i}`, () => decoderLayer(ctx, c, i, x, rope, mask, past));
      x = layer.hidden;
      presentKeys.push(layer.presentKey);
      presentValues.push(layer.presentValue);
    }
    // Only the requested rows reach the head (the last one while generating, all of them for prompt logprobs).
    const logits = head(ctx, c, g.op('Gather', [x, io.logitsIndices], { axis: 0 }));
    ctx.outputs({ logits, presentKeys, presentValues });
  },

  buildLayerGraph(ctx, c, i) {
    const { g } = ctx;
    const io = ctx.layerInputs();
    const rope = ropeTables(g, io.positions, c.headDim, c.ropeTheta);
    const mask = causalMask(g, io.positions, io.positions);
    ctx.layerOutputs(decoderLayer(ctx, c, i, io.hidden, rope, mask, undefined).hidden);
  },

  buildHeadGraph(ctx, c) {
    ctx.outputs({ logits: head(ctx, c, ctx.headInput()), presentKeys: [], presentValues: [] });
  },
};

/** One decoder layer: pre-norm attention with q/k norms and RoPE, then a pre-norm SwiGLU MLP, each residual. */
function decoderLayer(
  ctx: GraphContextV1, c: Qwen3Config, i: number, x: string,
  rope: { cos: string; sin: string }, mask: string, past: { key: string; value: string } | undefined,
) {
  const { g } = ctx;
  const p = `model.layers.${i}`;
  const L = decoderLinears(c, i);
  const eps = c.rmsNormEps;
  const h = rmsNorm(g, x, ctx.weight(`${p}.input_layernorm.weight`, [c.hiddenSize]), eps);
  // q_norm / k_norm act on each head's head_dim values, before RoPE.
  const qNorm = ctx.weight(`${p}.self_attn.q_norm.weight`, [c.headDim]);
  const kNorm = ctx.weight(`${p}.self_attn.k_norm.weight`, [c.headDim]);
  const q = applyRope(g, rmsNorm(g, splitHeads(g, ctx.linear(L.q, h), c.numHeads, c.headDim), qNorm, eps), rope, c.headDim);
  const k = applyRope(g, rmsNorm(g, splitHeads(g, ctx.linear(L.k, h), c.numKvHeads, c.headDim), kNorm, eps), rope, c.headDim);
  const v = splitHeads(g, ctx.linear(L.v, h), c.numKvHeads, c.headDim);
  const attn = groupedQueryAttention(g, q, k, v, past, mask, c);
  const r = g.op('Add', [x, ctx.linear(L.o, attn.out)]);
  const h2 = rmsNorm(g, r, ctx.weight(`${p}.post_attention_layernorm.weight`, [c.hiddenSize]), eps);
  const hidden = g.op('Add', [r, ctx.linear(L.down, swiglu(g, ctx.linear(L.gate, h2), ctx.linear(L.up, h2)))]);
  return { hidden, presentKey: attn.presentKey, presentValue: attn.presentValue };
}

/** Final norm, then the head. */
function head(ctx: GraphContextV1, c: Qwen3Config, x: string): string {
  return ctx.linear(lmHead(c), rmsNorm(ctx.g, x, ctx.weight('model.norm.weight', [c.hiddenSize]), c.rmsNormEps));
}
