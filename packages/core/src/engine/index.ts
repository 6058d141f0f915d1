export { Engine, EngineBusyError, type EngineConfig, type EngineRequestInit } from './engine.js';
export { KvCacheBuffers, StepRunner, kvCacheBytes, type DecodeRow, type KvCacheLayout } from './step-runner.js';
export { IncrementalDetokenizer, type DetokenizerOptions } from './detokenizer.js';
export { Sequence, type FinishReason } from './sequence.js';
