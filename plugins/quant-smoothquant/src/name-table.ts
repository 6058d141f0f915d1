/** The architecture's name table (HF ↔ MindFormers), indexed both ways. */
import { ConfigError, type ModelArchitectureV1, type ModelConfigV1, type TensorNameV1 } from '@qllm/core';

export class NameTable {
  private readonly byHf = new Map<string, TensorNameV1>();
  private readonly byMf = new Map<string, TensorNameV1>();

  constructor(readonly entries: readonly TensorNameV1[]) {
    for (const e of entries) {
      this.byHf.set(e.hf, e);
      this.byMf.set(e.mindformers, e);
    }
  }

  static of(architecture: ModelArchitectureV1<ModelConfigV1>, config: ModelConfigV1): NameTable {
    if (!architecture.tensorNames) {
      throw new ConfigError(`${architecture.name} has no name table (tensorNames): its MindFormers names are unknown`);
    }
    return new NameTable(architecture.tensorNames(config));
  }

  /** The entry of a HF tensor or linear module name. */
  hf(name: string): TensorNameV1 | undefined {
    return this.byHf.get(name);
  }

  /** The entry of a MindFormers tensor or linear module name. */
  mindformers(name: string): TensorNameV1 | undefined {
    return this.byMf.get(name);
  }

  linears(): TensorNameV1[] {
    return this.entries.filter((e) => e.kind === 'linear');
  }
}
