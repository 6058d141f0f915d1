export { createWeightOnlyInt8Method, weightOnlyInt8, WEIGHT_ONLY_INT8_RTN, type WeightOnlyInt8MethodSettings } from './weight-only-int8-method.js';
export { quantizeWeightOnlyInt8, type WeightOnlyInt8Options, type WeightOnlyInt8Report } from './quantize.js';
export { buildQuantizationConfig, parseQuantizationConfig, QUANT_METHOD, type WeightOnlyInt8Config } from './quantization-config.js';
export { int8WeightLinear } from './int8-weight-linear.js';
export { quantizeRowsRtn, roundHalfEven, type RtnResult } from './rtn.js';
