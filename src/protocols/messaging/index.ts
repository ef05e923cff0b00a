/**
 * Messaging over `sdnet/messaging/1`.
 *
 * @module
 */
export { MESSAGING_ALPN, MESSAGE_TYPES, MessageError, decodeMessage, encodeMessage, messageType, type HelloBody, type JsonValue, type Message } from './messages.ts';
export { MessagingError, MessagingProtocol, type ExchangeOptions, type MessagingHooks, type ReceivedData } from './messaging.ts';
