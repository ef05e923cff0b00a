/**
 * Crypto per packet: both providers next to the bare node:crypto / @noble calls they wrap
 * (the anchors of shared/docs/perf-anchors.md §3, measured again in this run). The figure
 * to read is `ratio` = provider time / anchor time (1.0 = no overhead; < 1 = faster).
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { gcm } from '@noble/ciphers/aes.js';
import { nobleCryptoProvider, nodeCryptoProvider } from '../src/transport/crypto/index.ts';
import { report, timeIt } from './harness.ts';

const key16 = new Uint8Array(randomBytes(16));
const nonce = new Uint8Array(randomBytes(12));
const aad = new Uint8Array(randomBytes(20));
const payload = new Uint8Array(randomBytes(1200));
const sample = new Uint8Array(randomBytes(16));
const message = new Uint8Array(randomBytes(64));

// Anchors: the bare primitives, as perf-anchors.md measured them.
const anchorSeal = timeIt(() => {
  const c = createCipheriv('aes-128-gcm', key16, nonce, { authTagLength: 16 });
  c.setAAD(aad);
  c.update(payload);
  c.final();
  c.getAuthTag();
});
report({ bench: 'crypto', name: 'anchor node aes-128-gcm seal 1200B (createCipheriv per packet)', nsPerOp: anchorSeal });
const anchorHp = timeIt(() => createCipheriv('aes-128-ecb', key16, null).update(sample));
report({ bench: 'crypto', name: 'anchor node aes-128-ecb header mask (cipher per packet)', nsPerOp: anchorHp });
const anchorNobleSeal = timeIt(() => gcm(key16, nonce, aad).encrypt(payload), { targetMs: 100, runs: 3 });
report({ bench: 'crypto', name: 'anchor noble aes-128-gcm seal 1200B', nsPerOp: anchorNobleSeal });

for (const p of [nodeCryptoProvider, nobleCryptoProvider]) {
  const aead = p.aead('aes-128-gcm', key16);
  const sealed = aead.seal(nonce, aad, payload);
  const seal = timeIt(() => aead.seal(nonce, aad, payload), { targetMs: p === nobleCryptoProvider ? 100 : 200 });
  report({ bench: 'crypto', name: `${p.name} aead seal 1200B`, nsPerOp: seal, ratio: +(seal / (p === nodeCryptoProvider ? anchorSeal : anchorNobleSeal)).toFixed(2) });
  const open = timeIt(() => aead.open(nonce, aad, sealed), { targetMs: p === nobleCryptoProvider ? 100 : 200 });
  report({ bench: 'crypto', name: `${p.name} aead open 1200B`, nsPerOp: open });
  const cha = p.aead('chacha20-poly1305', new Uint8Array(32));
  report({ bench: 'crypto', name: `${p.name} chacha20-poly1305 seal 1200B`, nsPerOp: timeIt(() => cha.seal(nonce, aad, payload), { targetMs: 100 }) });
  const hp = p.headerProtection('aes-128', key16);
  const hpNs = timeIt(() => hp.mask(sample));
  report({ bench: 'crypto', name: `${p.name} aes header mask`, nsPerOp: hpNs, ratio: +(hpNs / anchorHp).toFixed(3) });
  const hpc = p.headerProtection('chacha20', new Uint8Array(32));
  report({ bench: 'crypto', name: `${p.name} chacha20 header mask`, nsPerOp: timeIt(() => hpc.mask(sample)) });
  const signer = p.ed25519Signer(new Uint8Array(32).fill(1));
  const sig = signer.sign(message);
  const verifier = p.ed25519Verifier(signer.publicKey);
  report({ bench: 'crypto', name: `${p.name} ed25519 sign`, nsPerOp: timeIt(() => signer.sign(message), { targetMs: 100, runs: 3 }) });
  report({ bench: 'crypto', name: `${p.name} ed25519 verify (strict)`, nsPerOp: timeIt(() => verifier.verify(message, sig), { targetMs: 100, runs: 3 }) });
  const a = p.x25519Generate();
  const b = p.x25519Generate();
  report({ bench: 'crypto', name: `${p.name} x25519 keygen+derive`, nsPerOp: timeIt(() => p.x25519Generate().deriveSharedSecret(b.publicKey), { targetMs: 100, runs: 3 }) });
  report({ bench: 'crypto', name: `${p.name} hkdf-expand 32B sha256`, nsPerOp: timeIt(() => p.hkdfExpand('sha256', message.subarray(0, 32), message, 32)) });
  report({ bench: 'crypto', name: `${p.name} blake3 derive_key 16B`, nsPerOp: timeIt(() => p.blake3DeriveKey('iroh-relay handshake v1 challenge signature', key16)) });
  void a;
}
