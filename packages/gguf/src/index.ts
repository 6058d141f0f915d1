export { exportGguf, GGUF_EXPORT_TYPES } from './export.js';
export type { ExportGgufOptions, ExportGgufResult, GgufExportType } from './export.js';
export { GgufFileWriter } from './writer.js';
export { quantizeQ8_0 } from './convert.js';
export { encodeHeader, GgmlType, LlamaFileType, TokenType } from './format.js';
export type { GgufTensorInfo, GgufValue, PlacedTensor } from './format.js';
export { QWEN3_ARCH, QWEN3_LAYER_TENSORS, qwen3TensorName } from './qwen3.js';
