export { createSmoothQuantMethod, smoothQuant, type SmoothQuantMethodSettings } from './smoothquant-method.js';
export { quantize, type QuantizeOptions, type QuantizeResult } from './quantize.js';
export { formatFidelityTable, type FidelityReport } from './fidelity.js';
export { buildQuantizationConfig, isW8A8Config, matchesTarget, schemeForLayer } from './compressed-tensors.js';
export { dynamicPerTokenInt8Linear, staticInt8Linear } from './int8-linear.js';
export * from './ptq-config.js';
export * from './calibration-data.js';
export * from './quant-math.js';
