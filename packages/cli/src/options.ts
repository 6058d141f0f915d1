/**
 * Parsers for option-arguments. Numbers are read strictly — decimal only: no '' (which Number() reads as 0), hex,
 * octal or binary, no 'NaN' or 'Infinity', no trailing garbage, and no exponent for an integer — and a bad value is
 * an error naming the flag.
 */
export const collect = (value: string, previous: string[] = []) => [...previous, value];

/** An optionally signed decimal integer. */
const INTEGER = /^[+-]?\d+$/;
/** An optionally signed decimal number, with an optional fraction and exponent ('0.5', '.5', '5.', '1e-3'). */
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** A value as an error message quotes it (long values cut short). */
export function quote(value: string): string {
  return `'${value.length > 64 ? `${value.slice(0, 61)}...` : value}'`;
}

/** A finite decimal number passing `check` (`what` says what is expected, e.g. 'a number in [0, 1]'). */
export const num = (flag: string, check: (n: number) => boolean = () => true, what = 'a number') => (value: string) => {
  const text = value.trim();
  const n = Number(text);
  if (!DECIMAL.test(text) || !Number.isFinite(n) || !check(n)) throw new Error(`--${flag} expects ${what}, got ${quote(value)}`);
  return n;
};

/** A decimal integer (a safe integer) in [min, max]. */
export const int = (flag: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER) => (value: string) => {
  const text = value.trim();
  const n = Number(text);
  if (!INTEGER.test(text) || !Number.isSafeInteger(n) || n < min || n > max) {
    const what =
      min === Number.MIN_SAFE_INTEGER && max === Number.MAX_SAFE_INTEGER ? 'an integer'
      : max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}`
      : `an integer in [${min}, ${max}]`;
    throw new Error(`--${flag} expects ${what}, got ${quote(value)}`);
  }
  return n;
};

export const positiveInt = (flag: string, max = Number.MAX_SAFE_INTEGER) => int(flag, 1, max);

/**
 * `parse`, then `problem` (what is wrong with the parsed value, e.g. a SamplingParams field rule's
 * "must be in (0, 1], got 0"), reported under the flag's name.
 */
export const checked =
  (flag: string, parse: (value: string) => number, problem: (n: number) => string | undefined) => (value: string) => {
    const n = parse(value);
    const wrong = problem(n);
    if (wrong) throw new Error(`--${flag} ${wrong}`);
    return n;
  };

/** Largest token id accepted on the command line (int32, as SamplingParams' stopTokenIds); the model's vocabulary bounds it further. */
const MAX_TOKEN_ID = 2 ** 31 - 1;

/**
 * Token ids as `--prompt-token-ids` takes them: non-negative decimal integers separated by commas (whitespace around
 * each allowed). With `whitespace`, as in a `--prompt-token-ids-file`, whitespace alone separates too. Every item
 * must be an id: '1,,2', a trailing comma, '1e3' and '0x10' are errors naming `source` and the bad item.
 */
export function parseTokenIds(value: string, source = '--prompt-token-ids', { whitespace = false } = {}): number[] {
  const text = value.trim();
  const expects = `${source} expects ${whitespace ? 'comma- or whitespace-separated' : 'comma-separated'} non-negative integers`;
  if (text === '') throw new Error(`${expects}, got no ids`);
  const items = text.split(whitespace ? /\s*,\s*|\s+/ : ',');
  return items.map((raw, i) => {
    const item = raw.trim();
    const where = `item ${i + 1} of ${items.length}`;
    if (item === '') throw new Error(`${expects}, but ${where} is empty`);
    if (!/^\d+$/.test(item)) throw new Error(`${expects}, but ${where} is ${quote(item)}`);
    const id = Number(item);
    if (id > MAX_TOKEN_ID) throw new Error(`${expects}, but ${where} (${quote(item)}) is larger than ${MAX_TOKEN_ID}`);
    return id;
  });
}
