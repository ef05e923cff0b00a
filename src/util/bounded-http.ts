/**
 * One small HTTP(S) request with a bounded answer, a deadline and an abort signal (node:http):
 * what the pkarr client and the pairing rendezvous client both send to a relay. Failures are
 * the caller's own error class, made by `fail`.
 *
 * @module
 */
import http from 'node:http';
import https from 'node:https';
import type { NodeTlsOptions } from '../relay/client/node-transport.ts';

export interface BoundedRequest {
  readonly url: URL;
  readonly method: string;
  readonly body?: Uint8Array | string;
  readonly contentType?: string;
  /** The answer's body may hold at most this many bytes; more fails the request. */
  readonly maxBytes: number;
  readonly timeoutMs: number;
  readonly tls?: NodeTlsOptions | undefined;
  readonly signal?: AbortSignal | undefined;
  /** How the server is named in messages. */
  readonly name: string;
  /** The caller's error for `message` (with `options` when there is a cause). */
  readonly fail: (message: string, options?: { cause: unknown }) => Error;
}

/** Send `r`; resolves with the status and the whole body. */
export function boundedRequest(r: BoundedRequest): Promise<{ status: number; body: Uint8Array }> {
  const secure = r.url.protocol === 'https:';
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | undefined, value?: { status: number; body: Uint8Array }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      r.signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(value!);
    };
    const headers: Record<string, string | number> = { 'user-agent': 'sdnet' };
    if (r.body !== undefined) {
      headers['content-type'] = r.contentType ?? 'application/octet-stream';
      headers['content-length'] = typeof r.body === 'string' ? Buffer.byteLength(r.body) : r.body.length;
    }
    const req = (secure ? https : http).request(
      r.url,
      {
        method: r.method,
        headers,
        agent: false,
        ...(secure && r.tls?.ca ? { ca: r.tls.ca } : {}),
        ...(secure && r.tls?.servername ? { servername: r.tls.servername } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > r.maxBytes) {
            req.destroy();
            finish(r.fail(`${r.name} answered more than ${r.maxBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => finish(undefined, { status: res.statusCode ?? 0, body: new Uint8Array(Buffer.concat(chunks)) }));
        res.on('error', (err) => finish(r.fail(`${r.name}: ${err.message}`, { cause: err })));
      },
    );
    req.on('error', (err) => finish(r.fail(`${r.name}: ${err.message}`, { cause: err })));
    const timer = setTimeout(() => {
      req.destroy();
      finish(r.fail(`${r.name} did not answer within ${r.timeoutMs} ms`));
    }, r.timeoutMs);
    const onAbort = (): void => {
      req.destroy();
      finish(r.fail('aborted', { cause: r.signal?.reason }));
    };
    if (r.signal?.aborted) onAbort();
    else r.signal?.addEventListener('abort', onAbort, { once: true });
    req.end(r.body);
  });
}
