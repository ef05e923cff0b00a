/**
 * Test-only: the TLS 1.3 record layer (RFC 8446 §5) around our QUIC-shaped TLS session, so
 * it can talk to OpenSSL through node:tls over TCP. Handshake bytes at the Initial level go
 * in plaintext records; later levels are protected with keys derived from the session's
 * traffic secrets with the TLS labels "key" and "iv" (RFC 8446 §7.3).
 */
import type { Socket } from 'node:net';
import { nodeCryptoProvider, type Aead } from '../../src/transport/crypto/index.ts';
import { hkdfExpandLabel, type CryptoSession, type EncryptionLevel, type TrafficSecrets } from '../../src/transport/quic/tls/index.ts';

const CT = { change_cipher_spec: 20, alert: 21, handshake: 22, application_data: 23 } as const;

class RecordKey {
  readonly aead: Aead;
  readonly iv: Uint8Array;
  seq = 0;
  constructor(secret: Uint8Array, suite: TrafficSecrets['suite']) {
    const p = nodeCryptoProvider;
    this.aead = p.aead(suite.aead, hkdfExpandLabel(p, suite, secret, 'key', new Uint8Array(0), suite.keyLength));
    this.iv = hkdfExpandLabel(p, suite, secret, 'iv', new Uint8Array(0), 12);
  }
  /** RFC 8446 §5.3: per-record nonce = iv XOR the 64-bit sequence number. */
  nonce(): Uint8Array {
    const n = this.iv.slice();
    let s = this.seq++;
    for (let i = 11; i >= 4 && s > 0; i--, s = Math.floor(s / 256)) n[i]! ^= s % 256;
    return n;
  }
}

export class RecordLayer {
  readonly #session: CryptoSession;
  readonly #socket: Socket;
  readonly #write = new Map<EncryptionLevel, RecordKey>();
  readonly #read = new Map<EncryptionLevel, RecordKey>();
  #inbox = Buffer.alloc(0);
  readonly received: Uint8Array[] = [];
  error: unknown;
  peerAlert: number | undefined;
  readonly #waiters: (() => void)[] = [];

  constructor(session: CryptoSession, socket: Socket) {
    this.#session = session;
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#inbox = Buffer.concat([this.#inbox, chunk]);
      try {
        this.#drainRecords();
      } catch (err) {
        this.error = err;
        socket.destroy();
      }
      this.#wake();
    });
    socket.on('close', () => this.#wake());
    this.flush();
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Resolve when `cond()` holds or the connection failed/closed. */
  async until(cond: () => boolean, what: string): Promise<void> {
    while (!cond()) {
      if (this.error !== undefined) throw this.error;
      if (this.#socket.destroyed) throw new Error(`connection closed while waiting for ${what} (peer alert ${this.peerAlert})`);
      await new Promise<void>((r) => this.#waiters.push(r));
    }
  }

  /** Send pending handshake bytes and install new secrets. */
  flush(): void {
    for (;;) {
      const out = this.#session.pollHandshakeData();
      if (out !== undefined) {
        this.#send(out.level, CT.handshake, out.data);
        continue;
      }
      const s = this.#session.pollSecrets();
      if (s === undefined) break;
      this.#write.set(s.level, new RecordKey(s.local, s.suite));
      this.#read.set(s.level, new RecordKey(s.remote, s.suite));
    }
  }

  // Secrets must be installed before the data of their level is sent: install eagerly.
  #installAll(): void {
    for (let s = this.#session.pollSecrets(); s; s = this.#session.pollSecrets()) {
      this.#write.set(s.level, new RecordKey(s.local, s.suite));
      this.#read.set(s.level, new RecordKey(s.remote, s.suite));
    }
  }

  sendApplicationData(data: Uint8Array): void {
    this.#send('application', CT.application_data, data);
  }

  #send(level: EncryptionLevel, type: number, data: Uint8Array): void {
    this.#installAll();
    if (level === 'initial') {
      this.#socket.write(Buffer.concat([Buffer.from([type, 0x03, 0x03, data.length >> 8, data.length & 0xff]), data]));
      return;
    }
    const key = this.#write.get(level);
    if (!key) throw new Error(`no write key for ${level}`);
    // TLSInnerPlaintext = content ‖ real type (RFC 8446 §5.2); max 2^14 bytes per record.
    for (let off = 0; off < data.length || off === 0; off += 16384) {
      const chunk = data.subarray(off, off + 16384);
      const inner = Buffer.concat([chunk, Buffer.from([type])]);
      const len = inner.length + 16;
      const header = Buffer.from([CT.application_data, 0x03, 0x03, len >> 8, len & 0xff]);
      this.#socket.write(Buffer.concat([header, key.aead.seal(key.nonce(), header, inner)]));
      if (data.length === 0) break;
    }
  }

  #readLevel(): EncryptionLevel {
    return this.#session.isHandshaking ? 'handshake' : 'application';
  }

  #drainRecords(): void {
    while (this.#inbox.length >= 5) {
      const type = this.#inbox[0]!;
      const len = this.#inbox.readUInt16BE(3);
      if (this.#inbox.length < 5 + len) return;
      const header = this.#inbox.subarray(0, 5);
      const body = this.#inbox.subarray(5, 5 + len);
      this.#inbox = this.#inbox.subarray(5 + len);
      if (type === CT.change_cipher_spec) continue; // middlebox compatibility (RFC 8446 §5)
      if (type === CT.alert) {
        this.peerAlert = body[1];
        throw new Error(`peer sent alert ${body[1]}`);
      }
      if (type === CT.handshake) {
        this.#session.handleHandshakeData('initial', body);
        this.flush();
        continue;
      }
      const level = this.#readLevel();
      const key = this.#read.get(level);
      if (!key) throw new Error(`encrypted record before ${level} keys`);
      const inner = key.aead.open(key.nonce(), header, body);
      if (inner === null) throw new Error('record did not authenticate');
      let end = inner.length;
      while (end > 0 && inner[end - 1] === 0) end--;
      const realType = inner[end - 1];
      const content = inner.subarray(0, end - 1);
      if (realType === CT.handshake) {
        this.#session.handleHandshakeData(level, content);
        this.flush();
      } else if (realType === CT.application_data) {
        this.received.push(content.slice());
      } else if (realType === CT.alert) {
        this.peerAlert = content[1];
        if (content[1] !== 0) throw new Error(`peer sent alert ${content[1]}`);
      }
    }
  }

  get receivedBytes(): number {
    return this.received.reduce((n, b) => n + b.length, 0);
  }
}
