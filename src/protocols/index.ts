/**
 * The protocol layer: the `Router` (ALPN → handler, iroh's shape), stable application error
 * codes, and the length-prefixed framing every device-layer protocol uses.
 *
 * @module
 */
export { Router, RouterBuilder, type AfterHandshake, type AfterHandshakeOutcome, type HandshakeInfo, type ProtocolHandler, type RouterEvent } from './router.ts';
export { CloseCode, StreamCode, closeCodeName, streamCodeName, type CloseCodeName, type StreamCodeName } from './codes.ts';
export { FrameError, FrameReader, FrameWriter, StreamProtocolError, encodeFrame } from './framing.ts';
export { FramedStream, StreamIdleError, type FramedStreamOptions } from './stream.ts';
export * from './messaging/index.ts';
export * from './pairing/index.ts';
export * from './transfer/index.ts';
