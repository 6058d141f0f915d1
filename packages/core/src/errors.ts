/** Base class of every error qllm throws on purpose; the message always names the file, tensor or field at fault. */
export class QllmError extends Error {
  override name = 'QllmError';
}

/** A checkpoint file is missing, truncated, malformed, or disagrees with config.json. */
export class CheckpointError extends QllmError {
  override name = 'CheckpointError';
  constructor(
    message: string,
    readonly file?: string,
    readonly tensor?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A config file or option is invalid: the message names the file (or option) and the field. */
export class ConfigError extends QllmError {
  override name = 'ConfigError';
}

/** An unknown plugin name, or a duplicate registration. */
export class RegistryError extends QllmError {
  override name = 'RegistryError';
}

/**
 * A value as JSON for an error message: at most 80 characters, and never a throw of its own (JSON.stringify
 * overflows the stack on deeply nested input, which a corrupt file can hold).
 */
export function showJson(v: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = Array.isArray(v) ? '[...]' : '{...}';
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
