/**
 * Streams as WHATWG web streams (the WebTransport shape: `{ readable, writable }`), with
 * backpressure from QUIC flow control: a write resolves once the bytes fit the stream's send
 * buffer; a read pulls only what the peer sent, and reading is what opens the window.
 *
 * @module
 */
import { SdnetError } from '../util/errors.ts';
import type { ConnectionHandle } from './connection.ts';

/** The peer reset the stream (RESET_STREAM) or asked us to stop (STOP_SENDING). */
export class StreamResetError extends SdnetError {
  /** The application error code the peer sent. */
  readonly streamCode: number;
  constructor(code: 'ERR_STREAM_RESET' | 'ERR_STREAM_STOPPED', streamCode: number) {
    super(code, code === 'ERR_STREAM_RESET' ? `Stream reset by peer with code ${streamCode}` : `Peer stopped reading (code ${streamCode})`);
    this.name = 'StreamResetError';
    this.streamCode = streamCode;
  }
}

/** A bidirectional stream. */
export interface BiStream {
  readonly id: number;
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
}

/** Largest chunk a read hands out (several packets coalesced). */
const READ_CHUNK = 256 * 1024;

function codeOf(reason: unknown): number {
  const c = (reason as { streamCode?: unknown; code?: unknown } | undefined)?.streamCode ?? (reason as { code?: unknown } | undefined)?.code;
  return typeof c === 'number' && Number.isSafeInteger(c) && c >= 0 ? c : 0;
}

export function readableFor(conn: ConnectionHandle, id: number): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        for (;;) {
          const parts: Uint8Array[] = [];
          let size = 0;
          let fin = false;
          while (size < READ_CHUNK) {
            const r = conn.core.readStream(id, READ_CHUNK - size);
            if (r.resetCode !== undefined) {
              conn.driver.schedule();
              controller.error(new StreamResetError('ERR_STREAM_RESET', r.resetCode));
              return;
            }
            if (r.data) {
              parts.push(r.data);
              size += r.data.length;
            }
            if (r.fin) fin = true;
            if (!r.data || r.fin) break;
          }
          if (parts.length > 0) {
            let chunk: Uint8Array;
            if (parts.length === 1) chunk = parts[0]!;
            else {
              chunk = new Uint8Array(size);
              let o = 0;
              for (const p of parts) {
                chunk.set(p, o);
                o += p.length;
              }
            }
            controller.enqueue(chunk);
            conn.driver.schedule(); // window updates
            if (fin) controller.close();
            return;
          }
          if (fin) {
            controller.close();
            return;
          }
          await conn.waitFor(id, 'readable');
        }
      },
      cancel(reason) {
        conn.core.stopSending(id, codeOf(reason));
        conn.driver.schedule();
      },
    },
    { highWaterMark: 0 },
  );
}

export function writableFor(conn: ConnectionHandle, id: number): WritableStream<Uint8Array> {
  return new WritableStream<Uint8Array>(
    {
      async write(chunk) {
        if (!(chunk instanceof Uint8Array)) throw new TypeError('Streams carry Uint8Array chunks');
        let off = 0;
        while (off < chunk.length) {
          const stop = conn.core.stopCode(id);
          if (stop !== undefined) throw new StreamResetError('ERR_STREAM_STOPPED', stop);
          const n = conn.core.writeStream(id, off === 0 ? chunk : chunk.subarray(off));
          off += n;
          conn.driver.schedule();
          if (off < chunk.length) await conn.waitFor(id, 'writable');
        }
      },
      async close() {
        conn.core.finishStream(id);
        conn.driver.schedule();
        // Resolve once the peer has everything, so closing the connection next loses nothing.
        await conn.waitFor(id, 'finished');
      },
      abort(reason) {
        conn.core.resetStream(id, codeOf(reason));
        conn.driver.schedule();
      },
    },
    { highWaterMark: 1 },
  );
}
