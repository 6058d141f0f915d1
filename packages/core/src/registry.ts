import { RegistryError } from './errors.js';

/** A registered plugin: the value itself, or a lazy loader (imported only when the name is first used). */
export type RegistryEntry<T> = T | { load: () => Promise<T> | T };

export interface RegisterOptions {
  /** Replace an existing registration of the same name (default false: a duplicate name is an error). */
  override?: boolean;
}

/** A typed map from name to plugin, one per plugin kind. Built-ins register through the same API third parties use. */
export class Registry<T> {
  private readonly entries = new Map<string, RegistryEntry<T>>();
  private readonly resolved = new Map<string, T>();

  constructor(readonly kind: string) {}

  register(name: string, entry: RegistryEntry<T>, options: RegisterOptions = {}): void {
    if (this.entries.has(name) && !options.override) {
      throw new RegistryError(`${this.kind} '${name}' is already registered (pass { override: true } to replace it)`);
    }
    this.entries.set(name, entry);
    this.resolved.delete(name);
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  names(): string[] {
    return [...this.entries.keys()].sort();
  }

  async get(name: string): Promise<T> {
    const done = this.resolved.get(name);
    if (done) return done;
    const entry = this.entries.get(name);
    if (entry === undefined) {
      const known = this.names();
      throw new RegistryError(
        `unknown ${this.kind} '${name}'; registered: ${known.length ? known.join(', ') : '(none)'}`,
      );
    }
    const value = isLazy(entry) ? await entry.load() : entry;
    this.resolved.set(name, value);
    return value;
  }

  /** Resolve every registered entry (for detection loops). */
  async all(): Promise<Array<[string, T]>> {
    const out: Array<[string, T]> = [];
    for (const name of this.names()) out.push([name, await this.get(name)]);
    return out;
  }
}

function isLazy<T>(entry: RegistryEntry<T>): entry is { load: () => Promise<T> | T } {
  return typeof entry === 'object' && entry !== null && 'load' in entry && typeof (entry as { load: unknown }).load === 'function'
    && !('specificationVersion' in entry);
}
