import type { z } from 'zod';
import { ConfigError } from './errors.js';

/** Parse `raw` with a zod schema; a failure is a ConfigError naming the file and each bad field. */
export function parseWithSchema<S extends z.ZodType>(schema: S, raw: unknown, source: string): z.output<S> {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
  throw new ConfigError(`${source}: invalid ${problems.length > 1 ? 'fields' : 'field'} — ${problems.join('; ')}`);
}
