/** Parsers for numeric options: a bad value is an error naming the flag. */
export const collect = (value: string, previous: string[] = []) => [...previous, value];

export const num = (flag: string, check: (n: number) => boolean = () => true, what = 'a number') => (value: string) => {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || !check(n)) throw new Error(`--${flag} expects ${what}, got '${value}'`);
  return n;
};

export const int = (flag: string) => num(flag, Number.isInteger, 'an integer');
export const positiveInt = (flag: string) => num(flag, (n) => Number.isInteger(n) && n > 0, 'a positive integer');
