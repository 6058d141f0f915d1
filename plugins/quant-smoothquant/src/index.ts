export { createSmoothQuantMethod, linearSchemes, smoothQuant, type SmoothQuantMethodSettings } from './smoothquant-method.js';
export {
  DESCRIPTION_FILE, GOLDEN_STICK_SUFFIX, goldenStickLinearMethod, isGoldenStickConfig, recognizeGoldenStick, RenamedSource,
  type GoldenStickConfig, type GoldenStickLinear,
} from './golden-stick.js';
export { COMPRESSED_TENSORS_SUFFIX } from './compressed-tensors.js';
export { goldenStickInputScale, goldenStickStatic, quantizeWeightGoldenStick, toFp16 } from './golden-stick-math.js';
export type { LinearScheme, QuantizedLayer, QuantizedLinear, SmoothingPlacement } from './quantize-layer.js';
export { quantize, type QuantizeOptions, type QuantizeResult } from './quantize.js';
export { formatFidelityTable, type FidelityReport } from './fidelity.js';
export { buildQuantizationConfig, isW8A8Config, matchesTarget, schemeForLayer } from './compressed-tensors.js';
export { dynamicPerTokenInt8Linear, staticInt8Linear } from './int8-linear.js';
export * from './ptq-config.js';
export * from './calibration-data.js';
export * from './quant-math.js';
