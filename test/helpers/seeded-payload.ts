/**
 * Reproducible test payloads and keys for the child-process peers of the network-namespace
 * tests: everything derives from a printed seed, so a failing run can be repeated with
 * `SDNET_SEED=<seed>`. `domain` keeps the payloads of different test files apart.
 */
import { createCipheriv, createHash } from 'node:crypto';

/** Payloads come in chunks of this size. */
export const PAYLOAD_CHUNK = 1 << 20;

/** 32 secret-key bytes derived from a seed string. */
export function seededKeyBytes(domain: string, keySeed: string): Uint8Array {
  return createHash('sha256').update(`sdnet ${domain} key ${keySeed}`).digest();
}

/**
 * The payload of one direction: the AES-128-CTR keystream under a key derived from `seed`
 * and `label`, cut into 1 MiB chunks. Incompressible and reproducible from the seed.
 */
export function* seededPayload(domain: string, seed: string, label: string, bytes: number): Generator<Uint8Array> {
  const key = createHash('sha256').update(`sdnet ${domain} payload ${seed} ${label}`).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const zeros = new Uint8Array(PAYLOAD_CHUNK);
  for (let done = 0; done < bytes; done += PAYLOAD_CHUNK) {
    const n = Math.min(PAYLOAD_CHUNK, bytes - done);
    yield new Uint8Array(cipher.update(n === PAYLOAD_CHUNK ? zeros : zeros.subarray(0, n)));
  }
}

/** SHA-256 (hex) of {@link seededPayload}. */
export function seededPayloadSha256(domain: string, seed: string, label: string, bytes: number): string {
  const h = createHash('sha256');
  for (const c of seededPayload(domain, seed, label, bytes)) h.update(c);
  return h.digest('hex');
}

/** Hashes the first `bytes` bytes it is given and keeps whatever comes after them (a trailer). */
export class PayloadReceiver {
  readonly #bytes: number;
  readonly #hash = createHash('sha256');
  #n = 0;
  readonly #rest: Uint8Array[] = [];

  constructor(bytes: number) {
    this.#bytes = bytes;
  }

  /** Returns the payload bytes counted so far. */
  push(chunk: Uint8Array): number {
    const take = Math.max(0, Math.min(chunk.length, this.#bytes - this.#n));
    if (take > 0) this.#hash.update(chunk.subarray(0, take));
    this.#n += take;
    if (take < chunk.length) this.#rest.push(chunk.subarray(take));
    return this.#n;
  }

  result(): { bytes: number; sha256: string; trailer: string } {
    return { bytes: this.#n, sha256: this.#hash.digest('hex'), trailer: Buffer.concat(this.#rest).toString('hex') };
  }
}
