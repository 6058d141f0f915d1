export { Checkpoint, SafetensorsFile } from './reader.js';
export { ShardedSafetensorsWriter, writeSafetensors, writeShardedSafetensors, type TensorEntry } from './writer.js';
