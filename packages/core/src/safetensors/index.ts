export { Checkpoint, SafetensorsFile } from './reader.js';
export { writeSafetensors, writeShardedSafetensors, type TensorEntry } from './writer.js';
