/**
 * An active attacker who relays or answers the rendezvous learns nothing testable offline.
 *
 * The argument (CPace, draft-irtf-cfrg-cpace §10 and AHH21; our binding in exchange.ts):
 *
 * - What is public about a code is R (32 bits); S (96 bits) is independent of R, so R says
 *   nothing about S. The relay, the rendezvous and the LAN see R and EndpointIds only.
 * - An attacker who *answers* for R (a forged rendezvous record, a fake mDNS answer) or
 *   *dials* the initiator itself is a CPace party of its own TLS connection: CI (the two
 *   TLS-authenticated ids) and sid (this connection's exporter) are known to it, and it must
 *   commit to one password S' when it sends its share (Y' = y'·g(S'), g from S', CI, sid).
 * - From the honest side it then receives one share, Y = y·g(S), a uniformly random element
 *   of a prime-order group: for *every* candidate S'' there is exactly one scalar y'' with
 *   Y = y''·g(S''), so Y alone is consistent with every password. A joiner that receives a
 *   wrong confirmation tag stops and sends only a fixed Abort: nothing more. An initiator
 *   sends its tag Tb = MAC(H("CPaceMac"‖sid‖ISK), Yb) with ISK over K = yb·Y'. To check a
 *   candidate S'' ≠ S' against Tb the attacker would need K = yb·y'·g(S') knowing only g(S''),
 *   yb·g(S'') and g(S'): a computational Diffie–Hellman instance in ristretto255. Only S' —
 *   the password fixed *before* the honest party answered — can be checked, which is exactly
 *   one online guess, and each online guess costs one of the code's 3 attempts.
 * - So checking a guess needs a fresh online exchange: 3 guesses at 96 bits per code,
 *   P(success) ≤ 3·2⁻⁹⁶.
 *
 * The tests record real failed exchanges (the attacker as a fake initiator behind a forged
 * rendezvous record, and as a fake joiner dialling the initiator), check that the transcript
 * holds no value computable from S alone, and that the attacker's offline check fails even for
 * the *true* S — it succeeds only when the password was committed in the share it sent.
 */
import { hmac } from '@noble/hashes/hmac.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { afterEach, describe, expect, it } from 'vitest';
import { Endpoint } from '../../src/endpoint/endpoint.ts';
import type { Connection } from '../../src/endpoint/connection.ts';
import { EndpointAddr } from '../../src/identity/endpoint-addr.ts';
import { SecretKey } from '../../src/identity/keys.ts';
import { FrameReader, FrameWriter } from '../../src/protocols/framing.ts';
import { PairingCode } from '../../src/protocols/pairing/code.ts';
import { calculateGenerator, confirmationTag, CpaceParty, deriveIsk, macKey, sampleScalar, scalarMultVfy, generatorString } from '../../src/protocols/pairing/cpace.ts';
import { AD_INITIATOR, AD_JOINER, channelIdentifier, PAIR_EXPORTER_LABEL } from '../../src/protocols/pairing/exchange.ts';
import { decodePairMessage, encodePairMessage, PAIR_ALPN, type PairMessage } from '../../src/protocols/pairing/messages.ts';
import { registerRendezvous } from '../../src/protocols/pairing/rendezvous.ts';
import { concatBytes, equalBytes, utf8 } from '../../src/util/bytes.ts';
import { failOnEscapes, startTestRelay, until } from '../helpers/relay-test-utils.ts';
import { Scope } from '../helpers/pairing.ts';

failOnEscapes();
const scope = new Scope();
afterEach(() => scope.cleanupAll());

/** Every value an attacker could compute from S alone (and public data), to look for in a transcript. */
function valuesOfSecret(code: PairingCode, ci: Uint8Array, sid: Uint8Array): Uint8Array[] {
  const S = code.secret();
  const words = utf8(code.words);
  const entropy = concatBytes(code.rendezvous, S);
  return [
    S,
    entropy,
    words,
    sha256(S),
    sha512(S),
    sha256(entropy),
    hmac(sha256, S, new Uint8Array(0)),
    hmac(sha512, S, sid),
    generatorString(S, ci, sid),
    sha512(generatorString(S, ci, sid)),
    calculateGenerator(S, ci, sid),
    calculateGenerator(S, new Uint8Array(0), new Uint8Array(0)),
    calculateGenerator(S, ci, new Uint8Array(32)),
  ];
}

/** Whether any 8-byte window of any value occurs in `haystack`. */
function leaks(haystack: Uint8Array, values: Uint8Array[]): string | undefined {
  const hex = Buffer.from(haystack).toString('hex');
  for (const [i, v] of values.entries()) {
    for (let o = 0; o + 8 <= v.length; o++) {
      const window = Buffer.from(v.subarray(o, o + 8)).toString('hex');
      // Byte-aligned occurrences only.
      for (let at = hex.indexOf(window); at >= 0; at = hex.indexOf(window, at + 1)) if (at % 2 === 0) return `value ${i} at offset ${o}`;
    }
  }
  return undefined;
}

function sidOf(conn: Connection): Uint8Array {
  return conn.exportKeyingMaterial(PAIR_EXPORTER_LABEL, new Uint8Array(0), 32);
}

async function attackerEndpoint(alpns: string[] = []): Promise<{ ep: Endpoint; key: SecretKey }> {
  const key = SecretKey.generate();
  const ep = await Endpoint.bind({ secretKey: key, bindAddr: ['127.0.0.1:0'], alpns });
  scope.add(() => ep.close({ graceMs: 0 }));
  return { ep, key };
}

describe('an attacker learns nothing testable offline', () => {
  it('as a fake joiner dialling the initiator: one guess per exchange; even the true S does not check out against the recorded reply', async () => {
    const alice = await scope.device('alice');
    const invite = await alice.networking.startPairingAsInitiator();
    const code = PairingCode.parse(invite.code);
    const aliceAddr = EndpointAddr.from({ id: alice.networking.identity.endpointId, directAddresses: alice.networking.addr().directAddresses.map(String) });
    const { ep: mallory } = await attackerEndpoint();

    /** One online attempt with password `guess`, recorded. */
    const attempt = async (guess: Uint8Array) => {
      const conn = await mallory.connect(aliceAddr, PAIR_ALPN);
      const sid = sidOf(conn);
      const ci = channelIdentifier({ initiator: aliceAddr.id, joiner: mallory.id, sid });
      const y = sampleScalar();
      const party = new CpaceParty('A', { prs: guess, ci, sid, ad: AD_JOINER, scalar: y });
      const bi = await conn.openBi();
      const w = new FrameWriter(bi.writable);
      const r = new FrameReader(bi.readable);
      const frames: Uint8Array[] = [];
      const start = encodePairMessage({ Start: { v: 1, r: code.rendezvousId, ya: party.share } });
      await w.write(start);
      const replyFrame = (await r.readFrame(1 << 16))!;
      frames.push(start, replyFrame);
      const reply = decodePairMessage(replyFrame) as Extract<PairMessage, { Reply: unknown }>;
      // Walk away without confirming (the initiator counts the try).
      await w.write(encodePairMessage({ Abort: { code: 'ERR_PAIRING_WRONG_CODE' } }));
      await w.close().catch(() => undefined);
      await r.readFrame(1 << 16).catch(() => undefined);
      conn.close(0, 'done');
      return { sid, ci, y, Ya: party.share, Yb: reply.Reply.yb, Tb: reply.Reply.tb, transcript: concatBytes(...frames) };
    };

    /**
     * The attacker's offline check of candidate S'': everything it can compute assuming S''
     * is the password — the share it would have sent, y·g(S''), and K = y·Yb — then the tag the
     * initiator would have sent over that transcript. For the password it committed in Ya
     * this is exactly the initiator's computation; for any other candidate it is not (the
     * initiator's K is yb·Ya, and turning y·Yb into it needs a CDH solution).
     */
    const offlineCheck = (rec: Awaited<ReturnType<typeof attempt>>, candidate: Uint8Array): boolean => {
      const share = new CpaceParty('A', { prs: candidate, ci: rec.ci, sid: rec.sid, ad: AD_JOINER, scalar: rec.y }).share;
      const K = scalarMultVfy(rec.y, rec.Yb);
      const isk = deriveIsk(rec.sid, K, share, AD_JOINER, rec.Yb, AD_INITIATOR);
      return equalBytes(confirmationTag(macKey(rec.sid, isk), rec.Yb, AD_INITIATOR), rec.Tb);
    };

    const wrongGuess = crypto.getRandomValues(new Uint8Array(12));
    const failed = await attempt(wrongGuess);
    // The transcript holds nothing computable from S alone.
    expect(leaks(failed.transcript, valuesOfSecret(code, failed.ci, failed.sid))).toBeUndefined();
    // (the scan does find such a value when one is there)
    expect(leaks(concatBytes(failed.transcript, calculateGenerator(code.secret(), failed.ci, failed.sid)), valuesOfSecret(code, failed.ci, failed.sid))).toBeDefined();
    // Offline, no candidate verifies — not the guess, not a random one, not even the true S.
    expect(offlineCheck(failed, wrongGuess)).toBe(false);
    expect(offlineCheck(failed, crypto.getRandomValues(new Uint8Array(12)))).toBe(false);
    expect(offlineCheck(failed, code.secret())).toBe(false);
    // Each online guess cost an attempt at the initiator, and stored nothing.
    await until(() => alice.networking.pairingStatus()[0]?.attemptsLeft === 2, 'one attempt used');
    expect(alice.networking.registry.devices()).toEqual([]);

    // The check is real: with S committed in the share (a lucky online guess) it succeeds.
    const lucky = await attempt(code.secret());
    expect(offlineCheck(lucky, code.secret())).toBe(true);
    // ... which is the second of only three online guesses this code allows.
    await until(() => alice.networking.pairingStatus()[0]?.attemptsLeft === 1, 'second attempt used');
  });

  it('as a fake initiator behind a forged rendezvous record: the joiner sends its share and a fixed Abort, nothing else; the real initiator at another relay still pairs', async () => {
    const relay1 = await startTestRelay();
    scope.add(() => relay1.close({ graceful: false }));
    const relay2 = await startTestRelay();
    scope.add(() => relay2.close({ graceful: false }));
    // Alice registers at relay2; Mallory, who saw R, holds it at relay1.
    const alice = await scope.device('alice', { relays: [relay2.url] });
    await alice.networking.endpoint.online();
    const invite = await alice.networking.startPairingAsInitiator();
    const code = PairingCode.parse(invite.code);
    const { ep: mallory, key: malloryKey } = await attackerEndpoint([PAIR_ALPN]);
    const recorded: { transcript: Uint8Array[]; sid?: Uint8Array; ci?: Uint8Array } = { transcript: [] };
    const served = (async () => {
      for await (const incoming of mallory.accept()) {
        const conn = await incoming.accept();
        const sid = sidOf(conn);
        const ci = channelIdentifier({ initiator: mallory.id, joiner: conn.remoteId, sid });
        recorded.sid = sid;
        recorded.ci = ci;
        const bi = await conn.acceptBi();
        const r = new FrameReader(bi.readable);
        const w = new FrameWriter(bi.writable);
        const startFrame = (await r.readFrame(1 << 16))!;
        const start = decodePairMessage(startFrame) as Extract<PairMessage, { Start: unknown }>;
        // A guess: answer as if S' were the password.
        const party = new CpaceParty('B', { prs: crypto.getRandomValues(new Uint8Array(12)), ci, sid, ad: AD_INITIATOR });
        const result = party.finish(start.Start.ya, AD_JOINER);
        const replyFrame = encodePairMessage({ Reply: { yb: party.share, tb: result.ownTag } });
        await w.write(replyFrame);
        const rest: Uint8Array[] = [];
        for (;;) {
          const f = await r.readFrame(1 << 16).catch(() => undefined);
          if (f === undefined) break;
          rest.push(f);
        }
        recorded.transcript.push(startFrame, replyFrame, ...rest);
        return rest.map((f) => decodePairMessage(f));
      }
      return [];
    })();
    // The forged record: R → Mallory, signed with her own key (the rendezvous cannot know better).
    await registerRendezvous(relay1.url, code.rendezvousId, { endpointId: mallory.id.toString(), relay: null, addrs: mallory.addr().directAddresses.map(String) }, 60_000, (b) => malloryKey.sign(b).toBytes());
    const bob = await scope.device('bob', { relays: [relay1.url, relay2.url] });
    const joined = await bob.networking.startPairingAsJoiner(invite.code);
    // The forged answer cost Bob nothing: he paired with Alice.
    expect(joined).toMatchObject({ endpointId: alice.networking.identity.endpointId.toString(), name: 'alice' });
    await invite.paired;
    // What Mallory got from Bob: his Start (R and his share) and one fixed Abort.
    const afterReply = await served;
    expect(afterReply).toEqual([{ Abort: { code: 'ERR_PAIRING_WRONG_CODE' } }]);
    const transcript = concatBytes(...recorded.transcript);
    expect(leaks(transcript, valuesOfSecret(code, recorded.ci!, recorded.sid!))).toBeUndefined();
    expect(leaks(concatBytes(transcript, sha256(code.secret())), valuesOfSecret(code, recorded.ci!, recorded.sid!))).toBeDefined();
    // Nothing of Bob's was stored by, or about, Mallory.
    expect(bob.networking.registry.get(mallory.id)).toBeUndefined();
  });
});
