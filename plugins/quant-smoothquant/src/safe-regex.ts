/**
 * Regexes that come from configs (PTQ `layerPolicies`, compressed-tensors `re:` targets), run on a linear-time
 * engine (RE2JS, a pure-JS port of RE2) instead of the backtracking RegExp, so a pattern such as `(.*)*X`,
 * `(a+)+$` or `(a|a)*b` cannot hang quantization or model loading (catastrophic backtracking).
 *
 * The syntax is RE2's, which is Python's `re` minus backreferences and lookaround (those are rejected when the
 * pattern is compiled) and plus nothing surprising: `(?P<name>…)`, `(?i)`, `\d`, `[[:alpha:]]` all work.
 */
import { RE2JS } from 're2js';

/** Longer patterns are refused: layer-name regexes are short, and this bounds compile time and error messages. */
export const MAX_PATTERN_LENGTH = 1000;

/** A compiled config regex. */
export interface SafeRegex {
  /** Python `re.match`: the pattern must match at the start of the subject, not necessarily the whole of it. */
  matchesStart(subject: string): boolean;
}

const cache = new Map<string, SafeRegex>();
const CACHE_LIMIT = 512;

/**
 * Compile a config regex for the linear-time engine. Throws an Error whose message says what is wrong
 * (callers add which file / field the pattern came from).
 */
export function compileSafeRegex(pattern: string): SafeRegex {
  const hit = cache.get(pattern);
  if (hit) return hit;
  if (pattern.length > MAX_PATTERN_LENGTH) {
    throw new Error(`longer than ${MAX_PATTERN_LENGTH} characters (${pattern.length})`);
  }
  let re: RE2JS;
  try {
    re = RE2JS.compile(pattern);
  } catch (e) {
    let message = (e as Error).message.replace(/^error parsing regexp: /, '');
    if (message.length > 200) message = `${message.slice(0, 200)}…`;
    throw new Error(`${message} (RE2 syntax: backreferences and lookaround are not supported)`);
  }
  const compiled: SafeRegex = { matchesStart: (subject) => re.matcher(subject).lookingAt() };
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(pattern, compiled);
  return compiled;
}
