/**
 * Messaging codec: every message type round-trips; decoding is strict (not JSON, not one
 * tag, wrong field types → MALFORMED_MESSAGE; unknown tag → UNKNOWN_MESSAGE); random bytes
 * and random JSON only ever produce a MessageError.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MessageError, decodeMessage, encodeMessage, type Message } from '../../src/protocols/messaging/messages.ts';
import { StreamCode } from '../../src/protocols/codes.ts';
import { fcParams } from '../helpers/seed.ts';

const enc = (v: unknown): Uint8Array => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));

const SAMPLES: Message[] = [
  { Hello: { device_id: '8b0d8f38-4b6a-4c1e-9a51-5f0a3c2b1d00', name: 'a', os: 'linux', os_version: '6', kind: 'desktop', app_version: '0.1.0', relay_urls: ['https://r/'], direct_addresses: ['1.2.3.4:5'] } },
  { Ping: { timestamp: 1, payload: null } },
  { Pong: { timestamp: 2, original_timestamp: 1 } },
  { Data: { message_id: 'm1', content_type: 'text/plain', payload: 'hi' } },
  { Ack: { message_id: 'm1', success: false, error: 'no' } },
  { Request: { request_id: 'r1', payload: { a: [1, 2] } } },
  { Response: { request_id: 'r1', ok: false, payload: null, error: { code: 'ERR_X', message: 'x' } } },
  { Goodbye: { reason: 'bye', timestamp: 3 } },
];

describe('messaging codec', () => {
  it('round-trips every message type', () => {
    for (const m of SAMPLES) expect(decodeMessage(encodeMessage(m))).toEqual(m);
  });

  it.each([
    ['not JSON', '{"Ping":'],
    ['not UTF-8', new Uint8Array([0x7b, 0xff, 0x7d])],
    ['an array', [1]],
    ['two tags', { Ping: { timestamp: 1, payload: null }, Pong: { timestamp: 1, original_timestamp: 1 } }],
    ['no tag', {}],
    ['a string body', { Ping: 'x' }],
    ['a missing field', { Data: { message_id: 'x', content_type: 't' } }],
    ['a wrong type', { Pong: { timestamp: '1', original_timestamp: 1 } }],
    ['an over-long id', { Ack: { message_id: 'x'.repeat(65), success: true, error: null } }],
    ['a bad error object', { Response: { request_id: 'r', ok: false, payload: null, error: 'x' } }],
    ['too many addresses', { Hello: { ...(SAMPLES[0] as Extract<Message, { Hello: unknown }>).Hello, direct_addresses: Array(33).fill('1.2.3.4:5') } }],
  ])('%s is MALFORMED_MESSAGE', (_, v) => {
    const frame = v instanceof Uint8Array ? v : enc(v);
    expect(() => decodeMessage(frame)).toThrow(expect.objectContaining({ code: 'ERR_MESSAGE_MALFORMED', streamCode: StreamCode.MALFORMED_MESSAGE }));
  });

  it('an unknown tag is UNKNOWN_MESSAGE', () => {
    expect(() => decodeMessage(enc({ Library: { type: 'discovery_request' } }))).toThrow(expect.objectContaining({ code: 'ERR_MESSAGE_UNKNOWN', streamCode: StreamCode.UNKNOWN_MESSAGE }));
  });

  it('random bytes and random JSON only ever give a MessageError or a message (property)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.json().map((j) => new TextEncoder().encode(j)), fc.constantFrom(...SAMPLES).map((m) => encodeMessage(m))), (bytes) => {
        try {
          decodeMessage(bytes);
        } catch (err) {
          expect(err).toBeInstanceOf(MessageError);
        }
      }),
      fcParams('messaging decode', 2000),
    );
  });
});
