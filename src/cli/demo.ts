/**
 * `sdnet demo` (what `npm start` runs): a tour of what sdnet can do today, with real keys,
 * real files and real encodings. It grows into the full two-device demo as the transport,
 * relay and device layers land.
 *
 * @module
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  EndpointAddr,
  EndpointTicket,
  SocketAddr,
  encodeEd25519Spki,
  loadOrCreateSecretKey,
  tlsServerName,
} from '../identity/index.ts';
import { defaultCryptoProvider } from '../transport/crypto/index.ts';
import { toHex, utf8 } from '../util/bytes.ts';
import type { CliIo } from './io.ts';

/** Non-internal interface addresses, as an endpoint bound to `port` would advertise them. */
function localAddresses(port: number): SocketAddr[] {
  const out: SocketAddr[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const info of list ?? []) {
      if (info.internal || info.scopeid) continue;
      out.push(SocketAddr.parse(info.family === 'IPv4' ? `${info.address}:${port}` : `[${info.address}]:${port}`));
    }
  }
  return out.length > 0 ? out : [SocketAddr.parse(`127.0.0.1:${port}`)];
}

export async function demo(_args: string[], io: CliIo): Promise<number> {
  const say = (line = '') => io.stdout(`${line}\n`);
  const dir = await mkdtemp(join(tmpdir(), 'sdnet-demo-'));
  try {
    say('sdnet demo — identities and addresses, byte-for-byte iroh 1.0');
    say();
    const alicePath = join(dir, 'alice.key');
    const bobPath = join(dir, 'bob.key');
    const alice = (await loadOrCreateSecretKey(alicePath)).key;
    const bob = (await loadOrCreateSecretKey(bobPath)).key;
    const mode = ((await stat(alicePath)).mode & 0o777).toString(8);
    say(`1. Two devices create their identities (key files with mode ${mode}):`);
    for (const [name, key] of [['alice', alice], ['bob', bob]] as const) {
      const id = key.public();
      say(`   ${name.padEnd(5)} EndpointId ${id.toString()}`);
      say(`         short ${id.fmtShort()}   z-base-32 ${id.toZ32()}`);
      say(`         TLS name ${tlsServerName(id)}`);
    }
    say();
    say('2. Alice shares a ticket with her home relay and direct addresses:');
    const addr = EndpointAddr.from({ id: alice.public(), relayUrls: ['http://127.0.0.1:3340'], directAddresses: localAddresses(4433) });
    const ticket = new EndpointTicket(addr).toString();
    say(`   ${ticket}`);
    say();
    say('3. Bob decodes it:');
    const decoded = EndpointTicket.parse(ticket).addr;
    say(`   ${JSON.stringify(decoded.toJSON())}`);
    say(`   same address: ${decoded.equals(addr)}`);
    say();
    say('4. A relay challenges Alice; she proves her identity (iroh relay handshake, BLAKE3 + Ed25519):');
    const challenge = defaultCryptoProvider.randomBytes(16);
    const message = defaultCryptoProvider.blake3DeriveKey('iroh-relay handshake v1 challenge signature', challenge);
    const signature = alice.sign(message);
    say(`   challenge ${toHex(challenge)}`);
    say(`   signature ${signature.toString().slice(0, 32)}…`);
    say(`   verifies as Alice: ${decoded.id.verify(message, signature)}   as Bob: ${bob.public().verify(message, signature)}`);
    say(`   tampered message verifies: ${alice.public().verify(utf8('something else'), signature)}`);
    say();
    say(`5. In TLS, Alice's certificate is her 44-byte raw public key (RFC 7250): ${toHex(encodeEd25519Spki(alice.public()))}`);
    say();
    say('Next: `sdnet keygen`, `sdnet id`, `sdnet ticket decode <ticket>` (see `sdnet --help`).');
    return 0;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
