/**
 * Proxy pairing ("vouching", spacedrive-net.md §4.9): device A, paired with B and with C,
 * introduces B to C.
 *
 * 1. A → C `Introduce{id, vouchee: B, issued_at, sig}`. C checks that the connection's
 *    authenticated peer is a device it has paired (A) and that `sig` verifies under A's
 *    stored key (the EndpointId is the key), that the introduction is fresh (5 min) and names
 *    C; then it asks its user (`vouch-requested`) unless it opted into auto-accept, and
 *    answers `IntroduceReply{accepted, target: C}`.
 * 2. A → B `Introduced{id, target: C, issued_at, sig}` (checked the same way by B).
 * 3. B dials C (not paired yet: the pairing ALPN) with `VouchHello{id, voucher: A}`; C accepts
 *    only the EndpointId A vouched for, once, and both derive their link key from a TLS
 *    exporter of *this* B–C connection — A never knows it:
 *    HKDF-SHA256(ikm = exporter("EXPORTER-sdnet-vouch/1", id, 32), info = "sdnet-vouch/1 link" ‖ A ‖ B ‖ C).
 *    C stores B, answers `VouchDone`, B stores C, and B answers A `IntroducedReply{ok}`.
 *
 * Unlike Spacedrive (§4.10 item 2), nothing is accepted from a peer that is not paired with
 * us, and the introduction is signed by the voucher.
 *
 * @module
 */
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import type { Connection } from '../../endpoint/connection.ts';
import { EndpointAddr } from '../../identity/endpoint-addr.ts';
import { PublicKey } from '../../identity/keys.ts';
import { parseDeviceInfo, type DeviceInfo } from '../../service/identity.ts';
import { concatBytes, utf8 } from '../../util/bytes.ts';
import type { WireDevice } from './messages.ts';

/** TLS exporter label of a vouched link key. */
export const VOUCH_EXPORTER_LABEL = 'EXPORTER-sdnet-vouch/1';

/** A device as an introduction carries it, validated. */
export interface IntroducedDevice {
  readonly id: PublicKey;
  readonly info: DeviceInfo;
  readonly addr: EndpointAddr;
}

/** A device for the wire. */
export function wireDevice(id: PublicKey, info: DeviceInfo, addr: { relayUrls: readonly unknown[]; directAddresses: readonly unknown[] }): WireDevice {
  return {
    endpoint_id: id.toString(),
    info: { ...info },
    relay_urls: addr.relayUrls.slice(0, 4).map(String),
    direct_addresses: addr.directAddresses.slice(0, 12).map(String),
  };
}

/** Validate a device from the wire; undefined if malformed. */
export function readWireDevice(d: WireDevice): IntroducedDevice | undefined {
  let id: PublicKey;
  try {
    id = PublicKey.fromString(d.endpoint_id);
  } catch {
    return undefined;
  }
  const info = parseDeviceInfo(d.info);
  if (info === undefined) return undefined;
  let addr: EndpointAddr;
  try {
    addr = EndpointAddr.from({ id, relayUrls: d.relay_urls, directAddresses: d.direct_addresses });
  } catch {
    addr = EndpointAddr.from({ id });
  }
  return { id, info, addr };
}

/**
 * What the voucher signs: the kind (`introduce` to the target, `introduced` to the vouchee),
 * the introduction id, the voucher, the device introduced, the recipient, the time and the
 * device's info and addresses in canonical form.
 */
export function introductionBytes(kind: 'introduce' | 'introduced', id: string, voucher: PublicKey, subject: WireDevice, recipient: PublicKey, issuedAt: number): Uint8Array {
  const info = parseDeviceInfo(subject.info);
  return utf8(
    [
      'sdnet-vouch/1',
      kind,
      id,
      voucher.toString(),
      subject.endpoint_id,
      recipient.toString(),
      String(issuedAt),
      // parseDeviceInfo builds its fields in one fixed order: a canonical JSON.
      JSON.stringify(info ?? subject.info),
      subject.relay_urls.join(','),
      subject.direct_addresses.join(','),
    ].join('\n'),
  );
}

/** The link key of a vouched pair, from the B–C connection (see the module comment). */
export function vouchedLinkKey(connection: Connection, id: string, voucher: PublicKey, vouchee: PublicKey, target: PublicKey): Uint8Array {
  const ikm = connection.exportKeyingMaterial(VOUCH_EXPORTER_LABEL, utf8(id), 32);
  const key = hkdf(sha256, ikm, undefined, concatBytes(utf8('sdnet-vouch/1 link'), voucher.toBytes(), vouchee.toBytes(), target.toBytes()), 32);
  ikm.fill(0);
  return key;
}
