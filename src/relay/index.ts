/**
 * iroh's relay protocol: the sans-IO protocol core and the relay client.
 *
 * @module
 */
export * from './client/index.ts';
export {
  Ecn,
  FrameType,
  KeyCache,
  MAX_PACKET_SIZE,
  MAX_FRAME_SIZE,
  StatusCode,
  type ProtocolVersion,
} from './protocol/index.ts';
