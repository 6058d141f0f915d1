import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '@qllm/core';
import { isW8A8Config, matchesTarget, parseCompressedTensorsConfig, schemeForLayer } from './compressed-tensors.js';
import { defaultSmoothQuantPreset, parsePtqConfig, readPtqConfigFile, resolveLayerConfig, unusedPolicies } from './ptq-config.js';

describe('parsePtqConfig', () => {
  it('fills the defaults of this method', () => {
    expect(parsePtqConfig({})).toEqual({
      mode: 'quantize', backend: 'cpu', weightQuantDtype: 'int8', actQuantDtype: 'int8', outliersSuppression: 'smooth',
      actQuantGranularity: 'per_tensor', weightQuantGranularity: 'per_channel', precisionRecovery: 'none',
      algoArgs: { alpha: 0.5 }, opnameBlacklist: [], layerPolicies: [],
    });
  });

  it('names the bad field', () => {
    expect(() => parsePtqConfig({ actQuantGranularity: 'per_channel' })).toThrow(ConfigError);
    expect(() => parsePtqConfig({ actQuantGranularity: 'per_channel' })).toThrow(/^PTQ config: invalid field — actQuantGranularity: /);
    expect(() => parsePtqConfig({ algoArgs: { alpha: 1.5 } }, 'cfg.json')).toThrow(/^cfg\.json: invalid field — algoArgs\.alpha: /);
    expect(() => parsePtqConfig({ weightQuantDtype: 'int4' })).toThrow(/weightQuantDtype/);
    expect(() => parsePtqConfig({ actQuantGranularty: 'per_token' })).toThrow(/actQuantGranularty/);
    expect(() => parsePtqConfig({ opnameBlacklist: [''] })).toThrow(/opnameBlacklist\.0/);
    expect(() => parsePtqConfig('smooth')).toThrow(/\(root\): expected an object/);
  });

  it("applies Golden Stick's per_token rule to the global config and to each policy", () => {
    expect(() => parsePtqConfig({ actQuantDtype: null, actQuantGranularity: 'per_token' }))
      .toThrow("PTQ config: invalid field — actQuantGranularity: 'per_token' needs actQuantDtype 'int8'");
    expect(() => parsePtqConfig({ actQuantDtype: null, layerPolicies: { '.*down_proj': { actQuantGranularity: 'per_token' } } }))
      .toThrow("PTQ config layer policy '.*down_proj': invalid field — actQuantGranularity: 'per_token' needs actQuantDtype 'int8'");
    expect(() => parsePtqConfig({ actQuantGranularity: 'per_token', layerPolicies: [['.*o_proj', { actQuantDtype: null }]] }))
      .toThrow(/layer policy '\.\*o_proj'.*per_token/);
    expect(parsePtqConfig({ actQuantDtype: null }).actQuantDtype).toBeNull();
  });

  it('accepts policies as an ordered list or as an object in insertion order', () => {
    const asObject = parsePtqConfig({ layerPolicies: { 'b.*': { algoArgs: { alpha: 0.8 } }, 'a.*': { outliersSuppression: 'none' } } });
    expect(asObject.layerPolicies).toEqual([['b.*', { algoArgs: { alpha: 0.8 } }], ['a.*', { outliersSuppression: 'none' }]]);
    const asList = parsePtqConfig({ layerPolicies: [['b.*', { algoArgs: { alpha: 0.8 } }], ['a.*', { outliersSuppression: 'none' }]] });
    expect(asList).toEqual(asObject);
  });

  it('rejects malformed policies, naming the regex', () => {
    expect(() => parsePtqConfig({ layerPolicies: [['x']] })).toThrow(/layerPolicies: expected a list of \[regex, policy\] pairs/);
    expect(() => parsePtqConfig({ layerPolicies: 'x' })).toThrow(/layerPolicies/);
    expect(() => parsePtqConfig({ layerPolicies: [['(', {}]] })).toThrow(/layer policy '\(': invalid regular expression/);
    expect(() => parsePtqConfig({ layerPolicies: [['', {}]] })).toThrow(/non-empty string/);
    expect(() => parsePtqConfig({ layerPolicies: { 'x.*': { actQuantGranularity: 'tensor' } } }))
      .toThrow(/^PTQ config layer policy 'x\.\*': invalid field — actQuantGranularity: /);
    expect(() => parsePtqConfig({ layerPolicies: { 'x.*': { mode: 'deploy' } } })).toThrow(/layer policy 'x\.\*'.*mode/);
  });

  it("normalises Golden Stick's snake_case names, also inside policies", () => {
    const c = parsePtqConfig({
      weight_quant_dtype: 'int8', act_quant_dtype: 'int8', outliers_suppression: 'none', act_quant_granularity: 'per_token',
      weight_quant_granularity: 'per_channel', precision_recovery: 'none', algo_args: { alpha: 0.7 }, opname_blacklist: ['lm_head'],
      layer_policies: { '.*o_proj': { outliers_suppression: 'smooth', act_quant_granularity: 'per_tensor', opname_blacklist: [] } },
    });
    expect(c).toMatchObject({
      outliersSuppression: 'none', actQuantGranularity: 'per_token', algoArgs: { alpha: 0.7 }, opnameBlacklist: ['lm_head'],
      layerPolicies: [['.*o_proj', { outliersSuppression: 'smooth', actQuantGranularity: 'per_tensor', opnameBlacklist: [] }]],
    });
    expect(() => parsePtqConfig({ opname_blacklist: [], opnameBlacklist: [] })).toThrow(/opnameBlacklist: given twice/);
  });
});

describe('resolveLayerConfig', () => {
  it('resolves the default preset like the Golden Stick example', () => {
    const preset = defaultSmoothQuantPreset();
    expect(resolveLayerConfig(preset, 'model.layers.0.self_attn.q_proj')).toEqual({
      quantize: true, outliersSuppression: 'smooth', actQuantDtype: 'int8', actQuantGranularity: 'per_tensor', alpha: 0.5,
    });
    expect(resolveLayerConfig(preset, 'model.layers.0.mlp.down_proj')).toEqual({
      quantize: true, outliersSuppression: 'none', actQuantDtype: 'int8', actQuantGranularity: 'per_token', alpha: 0.5,
    });
    expect(resolveLayerConfig(preset, 'lm_head').quantize).toBe(false);
    expect(resolveLayerConfig(preset, 'model.layers.35.mlp.gate_proj').outliersSuppression).toBe('smooth');
  });

  it('matches anchored at the start, not the whole name (Python re.match)', () => {
    const c = parsePtqConfig({ layerPolicies: [['model\\.layers\\.1\\.', { outliersSuppression: 'none' }], ['mlp', { algoArgs: { alpha: 0.9 } }]] });
    expect(resolveLayerConfig(c, 'model.layers.1.mlp.up_proj').outliersSuppression).toBe('none'); // prefix is enough
    expect(resolveLayerConfig(c, 'model.layers.11.mlp.up_proj').outliersSuppression).toBe('smooth'); // '1.' ≠ '11'
    expect(resolveLayerConfig(c, 'model.layers.2.mlp.up_proj').alpha).toBe(0.5); // 'mlp' is not at the start
    expect(resolveLayerConfig(c, 'mlp.fc').alpha).toBe(0.9);
    const alternation = parsePtqConfig({ layerPolicies: [['a|.*b', { outliersSuppression: 'none' }]] });
    expect(resolveLayerConfig(alternation, 'xb').outliersSuppression).toBe('none'); // the anchor covers every branch
    expect(resolveLayerConfig(alternation, 'xa').outliersSuppression).toBe('smooth');
  });

  it('throws when two policies match one layer, naming both and the layer', () => {
    const c = parsePtqConfig({ layerPolicies: { '.*proj': { algoArgs: { alpha: 0.6 } }, '.*down_proj': { outliersSuppression: 'none' } } });
    expect(() => resolveLayerConfig(c, 'model.layers.0.mlp.down_proj'))
      .toThrow(new ConfigError("PTQ config: layer model.layers.0.mlp.down_proj matches more than one layer policy: '.*proj' and '.*down_proj'"));
  });

  it('inherits unspecified fields from the global config', () => {
    const c = parsePtqConfig({ algoArgs: { alpha: 0.8 }, outliersSuppression: 'none', layerPolicies: { '.*q_proj': { actQuantGranularity: 'per_token' } } });
    expect(resolveLayerConfig(c, 'model.layers.0.self_attn.q_proj')).toMatchObject({ outliersSuppression: 'none', alpha: 0.8, actQuantGranularity: 'per_token' });
    const withArgs = parsePtqConfig({ algoArgs: { alpha: 0.8 }, layerPolicies: { '.*q_proj': { algoArgs: {} } } });
    expect(resolveLayerConfig(withArgs, 'model.layers.0.self_attn.q_proj').alpha).toBe(0.8);
  });

  it("blacklists by substring, with the resolved policy's blacklist", () => {
    const c = parsePtqConfig({
      opnameBlacklist: ['layers.0.', 'head'],
      layerPolicies: { '.*down_proj': { opnameBlacklist: ['layers.2.'] } },
    });
    expect(resolveLayerConfig(c, 'model.layers.0.self_attn.k_proj').quantize).toBe(false);
    expect(resolveLayerConfig(c, 'lm_head').quantize).toBe(false);
    expect(resolveLayerConfig(c, 'model.layers.10.self_attn.k_proj').quantize).toBe(true);
    expect(resolveLayerConfig(c, 'model.layers.0.mlp.down_proj').quantize).toBe(true); // the policy's own list replaces the global one
    expect(resolveLayerConfig(c, 'model.layers.2.mlp.down_proj').quantize).toBe(false);
  });
});

describe('unusedPolicies', () => {
  it('lists the regexes that match no layer', () => {
    const c = parsePtqConfig({ layerPolicies: [['.*down_proj', {}], ['.*w2.*', {}], ['mlp', {}]] });
    expect(unusedPolicies(c, ['model.layers.0.mlp.down_proj', 'model.layers.0.mlp.up_proj'])).toEqual(['.*w2.*', 'mlp']);
    expect(unusedPolicies(defaultSmoothQuantPreset(), ['model.layers.0.mlp.down_proj'])).toEqual([]);
  });
});

describe('readPtqConfigFile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'qllm-ptq-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a snake_case JSON file', async () => {
    const file = path.join(dir, 'ptq.json');
    await writeFile(file, JSON.stringify({
      mode: 'quantize', backend: 'cpu', act_quant_dtype: 'int8', outliers_suppression: 'smooth', algo_args: { alpha: 0.5 },
      opname_blacklist: ['lm_head'], layer_policies: { '.*down_proj.*': { outliers_suppression: 'none', act_quant_granularity: 'per_token' } },
    }));
    const c = await readPtqConfigFile(file);
    expect(resolveLayerConfig(c, 'model.layers.0.mlp.down_proj')).toMatchObject({ outliersSuppression: 'none', actQuantGranularity: 'per_token' });
    expect(c.opnameBlacklist).toEqual(['lm_head']);
  });

  it('names the path on a missing file, bad JSON or a bad field', async () => {
    const missing = path.join(dir, 'nope.json');
    await expect(readPtqConfigFile(missing)).rejects.toThrow(new ConfigError(`${missing}: cannot read the PTQ config — file not found`));
    const bad = path.join(dir, 'bad.json');
    await writeFile(bad, '{ "mode": ');
    await expect(readPtqConfigFile(bad)).rejects.toThrow(`${bad}: not valid JSON`);
    const wrong = path.join(dir, 'wrong.json');
    await writeFile(wrong, '{ "backend": "gpu" }');
    await expect(readPtqConfigFile(wrong)).rejects.toThrow(`${wrong}: invalid field — backend:`);
  });
});

/**
 * Runs `code` (an ES module body that may import this package's TypeScript sources by absolute path) in a child
 * process killed after `timeoutMs`: a regex that backtracks catastrophically blocks its thread, and only another
 * process can time it out. Resolves to what the code printed, parsed as JSON.
 */
async function runIsolated(code: string, timeoutMs: number): Promise<unknown> {
  const packageDir = fileURLToPath(new URL('..', import.meta.url));
  try {
    const { stdout } = await promisify(execFile)(
      process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', code],
      { cwd: packageDir, timeout: timeoutMs, killSignal: 'SIGKILL' },
    );
    return JSON.parse(stdout);
  } catch (e) {
    const err = e as { killed?: boolean; stderr?: string };
    throw new Error(err.killed ? `still running after ${timeoutMs} ms: the regex engine backtracks catastrophically` : `child failed: ${err.stderr}`);
  }
}

describe('regexes from configs (layer policies, compressed-tensors targets)', () => {
  const src = (file: string) => JSON.stringify(fileURLToPath(new URL(`./${file}`, import.meta.url)));
  const evil = ['(.*)*X', '(a+)+$', '(a|a)*b', '(.*a){20}', '([a-z.]+)*\\d!'];

  it('cannot hang quantize: nested quantifiers and overlapping alternations run in linear time', async () => {
    // On a backtracking engine each of these takes from seconds to hours on names like these.
    const names = ['model.layers.10.self_attn.q_proj.weight_and_then_some', `${'a'.repeat(40)}!`, 'a'.repeat(40), 'model.layers.3.mlp.down_proj'];
    const result = await runIsolated(`
      const { parsePtqConfig, resolveLayerConfig, unusedPolicies } = await import(${src('ptq-config.ts')});
      const { matchesTarget } = await import(${src('compressed-tensors.ts')});
      const names = ${JSON.stringify(names)};
      const out = {};
      for (const regex of ${JSON.stringify(evil)}) {
        const c = parsePtqConfig({ layerPolicies: [[regex, { algoArgs: { alpha: 0.9 } }]] });
        out[regex] = {
          alpha: names.map((n) => resolveLayerConfig(c, n).alpha),
          unused: unusedPolicies(c, names).length === 1,
          target: names.map((n) => matchesTarget('re:' + regex, n)),
        };
      }
      console.log(JSON.stringify(out));
    `, 30_000);
    expect(result).toEqual({
      '(.*)*X': { alpha: [0.5, 0.5, 0.5, 0.5], unused: true, target: [false, false, false, false] },
      '(a+)+$': { alpha: [0.5, 0.5, 0.9, 0.5], unused: false, target: [false, false, true, false] },
      '(a|a)*b': { alpha: [0.5, 0.5, 0.5, 0.5], unused: true, target: [false, false, false, false] },
      '(.*a){20}': { alpha: [0.5, 0.9, 0.9, 0.5], unused: false, target: [false, true, true, false] },
      '([a-z.]+)*\\d!': { alpha: [0.5, 0.5, 0.5, 0.5], unused: true, target: [false, false, false, false] },
    });
  }, 40_000);

  it('matches the usual patterns as before: Python re.match, anchored at the start only', () => {
    const c = parsePtqConfig({ layerPolicies: [['.*down_proj.*', { outliersSuppression: 'none' }], ['model\\.layers\\.(0|1)\\..*', { algoArgs: { alpha: 0.7 } }]] });
    expect(resolveLayerConfig(c, 'model.layers.3.mlp.down_proj').outliersSuppression).toBe('none');
    expect(resolveLayerConfig(c, 'model.layers.3.mlp.up_proj').outliersSuppression).toBe('smooth');
    expect(resolveLayerConfig(c, 'model.layers.1.self_attn.q_proj').alpha).toBe(0.7);
    expect(resolveLayerConfig(c, 'model.layers.10.self_attn.q_proj').alpha).toBe(0.5);
    expect(resolveLayerConfig(c, 'xmodel.layers.1.self_attn.q_proj').alpha).toBe(0.5);
    // Python's named groups and inline flags, which JavaScript's RegExp refused.
    const py = parsePtqConfig({ layerPolicies: [['(?P<block>model\\.layers\\.\\d+)\\.(?i:MLP)', { algoArgs: { alpha: 0.2 } }]] });
    expect(resolveLayerConfig(py, 'model.layers.7.mlp.gate_proj').alpha).toBe(0.2);
  });

  it('refuses backreferences, lookaround and overlong patterns, naming the policy', () => {
    expect(() => parsePtqConfig({ layerPolicies: [['(a)\\1', {}]] }, 'cfg.json'))
      .toThrow(/^cfg\.json layer policy '\(a\)\\1': invalid regular expression — .*\\1.*backreferences and lookaround are not supported/);
    expect(() => parsePtqConfig({ layerPolicies: [['.*(?!lm_head)', {}]] }, 'cfg.json')).toThrow(/layer policy '\.\*\(\?!lm_head\)': invalid regular expression/);
    expect(() => parsePtqConfig({ layerPolicies: [[`x${'y'.repeat(1000)}`, {}]] }, 'cfg.json'))
      .toThrow(/^cfg\.json layer policy 'xy+…': invalid regular expression — longer than 1000 characters \(1001\)$/);
    expect(() => matchesTarget('re:(a)\\1', 'a')).toThrow(new ConfigError("quantization_config target 're:(a)\\1': invalid regular expression — invalid escape sequence: `\\1` (RE2 syntax: backreferences and lookaround are not supported)"));
  });
});

describe('config keys named like Object.prototype members', () => {
  const keys = ['toString', 'constructor', '__proto__', 'hasOwnProperty'];
  // JSON.parse, as a config file is read: an object literal's __proto__ would set the prototype instead.
  const json = (text: string) => JSON.parse(text) as unknown;

  it.each(keys)("rejects '%s' as an unknown field like any other, at every level", (key) => {
    expect(() => parsePtqConfig(json(`{"${key}": 1}`), 'cfg.json')).toThrow(new ConfigError(`cfg.json: invalid field — (root): Unrecognized key: "${key}"`));
    expect(() => parsePtqConfig(json(`{"algoArgs": {"${key}": 1}}`), 'cfg.json')).toThrow(new ConfigError(`cfg.json: invalid field — algoArgs: Unrecognized key: "${key}"`));
    expect(() => parsePtqConfig(json(`{"layerPolicies": {"x": {"${key}": 1}}}`), 'cfg.json'))
      .toThrow(new ConfigError(`cfg.json layer policy 'x': invalid field — (root): Unrecognized key: "${key}"`));
  });

  it.each(keys)("accepts '%s' as a layer-policy regex (a user's name, not a field)", (key) => {
    const c = parsePtqConfig(json(`{"layerPolicies": {"${key}": {"algoArgs": {"alpha": 0.3}}, "other": {}}}`));
    expect(c.layerPolicies).toEqual([[key, { algoArgs: { alpha: 0.3 } }], ['other', {}]]);
    expect(resolveLayerConfig(c, `${key}.proj`).alpha).toBe(0.3);
    expect(resolveLayerConfig(c, 'model.layers.0.mlp.up_proj').alpha).toBe(0.5);
  });

  it('names the file for such a key in a --config file', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'qllm-ptq-keys-'));
    try {
      for (const key of keys) {
        const file = path.join(dir, `${key}.json`);
        await writeFile(file, `{"algo_args": {"alpha": 0.5}, "${key}": {}}`);
        await expect(readPtqConfigFile(file)).rejects.toThrow(new ConfigError(`${file}: invalid field — (root): Unrecognized key: "${key}"`));
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('keeps a compressed-tensors config group named __proto__', () => {
    const weights = { num_bits: 8, type: 'int', symmetric: true, strategy: 'channel', dynamic: false };
    const input = { num_bits: 8, type: 'int', symmetric: true, strategy: 'token', dynamic: true };
    const raw = json(`{"quant_method": "compressed-tensors", "format": "int-quantized", "config_groups": {"__proto__": ${JSON.stringify({ targets: ['Linear'], weights, input_activations: input })}}}`);
    const config = parseCompressedTensorsConfig(raw, 'config.json');
    expect(schemeForLayer(config, 'model.layers.0.mlp.down_proj')).toEqual({ kind: 'dynamic-per-token' });
    expect(isW8A8Config(raw as Record<string, unknown>)).toBe(true);
    expect(() => parseCompressedTensorsConfig(json('{"quant_method": "compressed-tensors", "format": "int-quantized", "config_groups": []}'), 'config.json'))
      .toThrow(/^config\.json quantization_config: invalid field — config_groups: expected an object \{ group name: group \}$/);
  });
});
