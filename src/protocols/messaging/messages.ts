/**
 * Messages of `sdnet/messaging/1`: JSON, externally tagged as Spacedrive's serde enums are
 * (`{"Ping":{"timestamp":…}}`, spacedrive-net.md §2.2, §6), one per length-prefixed frame.
 *
 * | message    | fields                                                        | answer        |
 * |------------|---------------------------------------------------------------|---------------|
 * | `Hello`    | device info and address (relay URLs, direct addresses)        | `Hello`       |
 * | `Ping`     | `timestamp` (ms), `payload` (JSON or null)                    | `Pong`        |
 * | `Pong`     | `timestamp`, `original_timestamp`                             | —             |
 * | `Data`     | `message_id`, `content_type`, `payload` (JSON)                | `Ack`         |
 * | `Ack`      | `message_id`, `success`, `error` (string or null)             | —             |
 * | `Request`  | `request_id`, `payload` (JSON)                                | `Response`    |
 * | `Response` | `request_id`, `ok`, `payload`, `error` ({code, message} or null) | —          |
 * | `Goodbye`  | `reason`, `timestamp`                                         | — (peer is shutting down) |
 *
 * Decoding is strict: a frame that is not JSON, not one object with exactly one known tag,
 * or whose fields have the wrong types is {@link StreamCode.MALFORMED_MESSAGE}; a well-formed
 * object with an unknown tag is {@link StreamCode.UNKNOWN_MESSAGE}. Either resets only that
 * stream.
 *
 * @module
 */
import { StreamCode } from '../codes.ts';
import { StreamProtocolError } from '../framing.ts';
import { MESSAGING_MAX_ID_LENGTH, MESSAGING_MAX_NAME_LENGTH, MESSAGING_MAX_REASON_LENGTH } from '../limits.ts';

/** The ALPN of the messaging protocol. */
export const MESSAGING_ALPN = 'sdnet/messaging/1';

/** Any JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface HelloBody {
  device_id: string;
  name: string;
  os: string;
  os_version: string;
  kind: string;
  app_version: string;
  relay_urls: string[];
  direct_addresses: string[];
}

export type Message =
  | { Hello: HelloBody }
  | { Ping: { timestamp: number; payload: JsonValue } }
  | { Pong: { timestamp: number; original_timestamp: number } }
  | { Data: { message_id: string; content_type: string; payload: JsonValue } }
  | { Ack: { message_id: string; success: boolean; error: string | null } }
  | { Request: { request_id: string; payload: JsonValue } }
  | { Response: { request_id: string; ok: boolean; payload: JsonValue; error: { code: string; message: string } | null } }
  | { Goodbye: { reason: string; timestamp: number } };

export type MessageType = Message extends infer M ? (M extends Record<infer K, unknown> ? K : never) : never;

export const MESSAGE_TYPES: readonly string[] = ['Hello', 'Ping', 'Pong', 'Data', 'Ack', 'Request', 'Response', 'Goodbye'];

/** A message that is not valid JSON or not a valid message. */
export class MessageError extends StreamProtocolError {
  constructor(code: 'ERR_MESSAGE_MALFORMED' | 'ERR_MESSAGE_UNKNOWN', message: string) {
    super(code, code === 'ERR_MESSAGE_UNKNOWN' ? StreamCode.UNKNOWN_MESSAGE : StreamCode.MALFORMED_MESSAGE, message);
    this.name = 'MessageError';
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeMessage(message: Message): Uint8Array {
  return encoder.encode(JSON.stringify(message));
}

const malformed = (why: string): MessageError => new MessageError('ERR_MESSAGE_MALFORMED', `Malformed message: ${why}`);

function str(o: Record<string, unknown>, key: string, max: number): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length > max) throw malformed(`${key} is not a string of at most ${max} characters`);
  return v;
}

function num(o: Record<string, unknown>, key: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw malformed(`${key} is not a number`);
  return v;
}

function bool(o: Record<string, unknown>, key: string): boolean {
  const v = o[key];
  if (typeof v !== 'boolean') throw malformed(`${key} is not a boolean`);
  return v;
}

function has(o: Record<string, unknown>, key: string): JsonValue {
  if (!(key in o)) throw malformed(`${key} is missing`);
  return o[key] as JsonValue;
}

function strings(o: Record<string, unknown>, key: string, maxItems: number, maxLength: number): string[] {
  const v = o[key];
  if (!Array.isArray(v) || v.length > maxItems || v.some((x) => typeof x !== 'string' || x.length > maxLength)) throw malformed(`${key} is not a list of at most ${maxItems} strings`);
  return v as string[];
}

function body(o: unknown, tag: string): Record<string, unknown> {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw malformed(`${tag} does not carry an object`);
  return o as Record<string, unknown>;
}

/**
 * Decode one frame.
 *
 * @throws {MessageError} malformed or unknown (the stream is reset with its code)
 */
export function decodeMessage(frame: Uint8Array): Message {
  let v: unknown;
  try {
    v = JSON.parse(decoder.decode(frame));
  } catch {
    throw malformed('not UTF-8 JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw malformed('not a JSON object');
  const keys = Object.keys(v);
  if (keys.length !== 1) throw malformed(`expected one tag, got ${keys.length}`);
  const tag = keys[0]!;
  const raw = (v as Record<string, unknown>)[tag];
  switch (tag) {
    case 'Hello': {
      const o = body(raw, tag);
      return {
        Hello: {
          device_id: str(o, 'device_id', MESSAGING_MAX_ID_LENGTH),
          name: str(o, 'name', MESSAGING_MAX_NAME_LENGTH),
          os: str(o, 'os', MESSAGING_MAX_NAME_LENGTH),
          os_version: str(o, 'os_version', MESSAGING_MAX_NAME_LENGTH),
          kind: str(o, 'kind', MESSAGING_MAX_NAME_LENGTH),
          app_version: str(o, 'app_version', MESSAGING_MAX_NAME_LENGTH),
          relay_urls: strings(o, 'relay_urls', 8, 2048),
          direct_addresses: strings(o, 'direct_addresses', 32, 64),
        },
      };
    }
    case 'Ping': {
      const o = body(raw, tag);
      return { Ping: { timestamp: num(o, 'timestamp'), payload: has(o, 'payload') } };
    }
    case 'Pong': {
      const o = body(raw, tag);
      return { Pong: { timestamp: num(o, 'timestamp'), original_timestamp: num(o, 'original_timestamp') } };
    }
    case 'Data': {
      const o = body(raw, tag);
      return { Data: { message_id: str(o, 'message_id', MESSAGING_MAX_ID_LENGTH), content_type: str(o, 'content_type', MESSAGING_MAX_NAME_LENGTH), payload: has(o, 'payload') } };
    }
    case 'Ack': {
      const o = body(raw, tag);
      const error = o.error;
      if (error !== null && (typeof error !== 'string' || error.length > MESSAGING_MAX_REASON_LENGTH)) throw malformed('error is not a string or null');
      return { Ack: { message_id: str(o, 'message_id', MESSAGING_MAX_ID_LENGTH), success: bool(o, 'success'), error } };
    }
    case 'Request': {
      const o = body(raw, tag);
      return { Request: { request_id: str(o, 'request_id', MESSAGING_MAX_ID_LENGTH), payload: has(o, 'payload') } };
    }
    case 'Response': {
      const o = body(raw, tag);
      const e = o.error;
      let error: { code: string; message: string } | null = null;
      if (e !== null) {
        const eo = body(e, 'error');
        error = { code: str(eo, 'code', MESSAGING_MAX_NAME_LENGTH), message: str(eo, 'message', MESSAGING_MAX_REASON_LENGTH) };
      }
      return { Response: { request_id: str(o, 'request_id', MESSAGING_MAX_ID_LENGTH), ok: bool(o, 'ok'), payload: has(o, 'payload'), error } };
    }
    case 'Goodbye': {
      const o = body(raw, tag);
      return { Goodbye: { reason: str(o, 'reason', MESSAGING_MAX_REASON_LENGTH), timestamp: num(o, 'timestamp') } };
    }
    default:
      throw new MessageError('ERR_MESSAGE_UNKNOWN', `Unknown message type "${tag.slice(0, 64)}"`);
  }
}

/** The tag of a message. */
export function messageType(m: Message): string {
  return Object.keys(m)[0]!;
}
