import type { HostTensor, TensorInfo, TensorSource } from '@qllm/core';

/** A checkpoint with some tensors replaced or added in memory (a layer's freshly quantized tensors). */
export class OverlaySource implements TensorSource {
  constructor(
    private readonly base: TensorSource,
    private readonly tensors: ReadonlyMap<string, HostTensor>,
    private readonly label = '(quantized layer in memory)',
  ) {}

  names(): string[] {
    return [...new Set([...this.base.names(), ...this.tensors.keys()])];
  }

  has(name: string): boolean {
    return this.tensors.has(name) || this.base.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    return t ? { name, dtype: t.dtype, shape: t.shape, file: this.label } : this.base.info(name);
  }

  async read(name: string): Promise<HostTensor> {
    return this.tensors.get(name) ?? this.base.read(name);
  }
}
