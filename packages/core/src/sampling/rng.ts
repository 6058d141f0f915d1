import { ConfigError } from '../errors.js';

const TWO_32 = 0x1_0000_0000;

/** splitmix32: a 32-bit mixer, used only to spread a seed over the generator state. */
function splitmix32(a: number): number {
  let t = (a + 0x9e3779b9) | 0;
  t ^= t >>> 16;
  t = Math.imul(t, 0x21f0aaad);
  t ^= t >>> 15;
  t = Math.imul(t, 0x735a2d97);
  t ^= t >>> 15;
  return t >>> 0;
}

/**
 * A seedable PRNG: xoshiro128** on four 32-bit words. `new Rng(seed)` is reproducible across runs and platforms;
 * `new Rng()` seeds from crypto randomness. Not for cryptographic use.
 */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** `seed`: any integer (negative and > 2^32 values are fine); omitted → crypto randomness. */
  constructor(seed?: number) {
    let words: ArrayLike<number>;
    if (seed === undefined) {
      words = globalThis.crypto.getRandomValues(new Uint32Array(4));
    } else {
      if (!Number.isSafeInteger(seed)) throw new ConfigError(`Rng seed must be a safe integer, got ${seed}`);
      const lo = seed >>> 0;
      const hi = Math.floor(seed / TWO_32) >>> 0;
      const base = splitmix32(lo ^ splitmix32(hi));
      words = [0, 1, 2, 3].map((i) => splitmix32(base + Math.imul(i + 1, 0x9e3779b9)));
    }
    this.s0 = words[0]! | 0;
    this.s1 = words[1]! | 0;
    this.s2 = words[2]! | 0;
    this.s3 = words[3]! | 0;
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // the all-zero state is a fixed point
  }

  /** The next uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const s1 = this.s1;
    const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9);
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return r >>> 0;
  }

  /** A uniform float in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
