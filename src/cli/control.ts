/**
 * The control socket: `sdnet up` listens on `<data>/sdnet.sock` (a Unix socket, mode 0600, in
 * the 0700 data dir: only its owner reaches it), and the other commands of the same data dir
 * send their request there instead of starting a second service.
 *
 * Protocol: one request per connection, a JSON line `{"cmd": "...", "args": {...}}`; one JSON
 * line back, `{"ok": true, "result": ...}` or `{"ok": false, "error": {"code", "message"}}`.
 * Requests are bounded (64 KiB) and a silent client is dropped after 10 s.
 *
 * @module
 */
import { chmod, lstat, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { SdnetError } from '../util/errors.ts';

/** Largest request line (bytes). */
const MAX_REQUEST_BYTES = 64 * 1024;
/** Largest response (bytes), e.g. a long device list. */
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;
/** A client that sends no complete request in this long is dropped (ms). */
const REQUEST_TIMEOUT_MS = 10_000;

export type ControlHandler = (cmd: string, args: Record<string, unknown>) => Promise<unknown>;

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
}

function errorBody(err: unknown): { code: string; message: string; [k: string]: unknown } {
  const e = err as { code?: unknown; message?: unknown; closeCode?: unknown };
  return {
    code: typeof e?.code === 'string' ? e.code : 'ERR_INTERNAL',
    message: typeof e?.message === 'string' ? e.message : String(err),
    ...(typeof e?.closeCode === 'number' ? { closeCode: e.closeCode } : {}),
  };
}

/** Listen on `path` (a stale socket file from a dead service is replaced). */
export async function startControlServer(path: string, handler: ControlHandler): Promise<ControlServer> {
  try {
    const info = await lstat(path);
    // Only ever remove a socket: never a file someone put there.
    if (info.isSocket()) await unlink(path);
  } catch {
    // no stale socket
  }
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.setTimeout(REQUEST_TIMEOUT_MS, () => socket.destroy());
    let buf = '';
    let handled = false;
    socket.on('data', (chunk: Buffer) => {
      if (handled) return;
      buf += chunk.toString('utf8');
      if (buf.length > MAX_REQUEST_BYTES) {
        handled = true;
        socket.end(`${JSON.stringify({ ok: false, error: { code: 'ERR_CONTROL_REQUEST_TOO_LARGE', message: 'Request too large' } })}\n`);
        return;
      }
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      handled = true;
      socket.setTimeout(0);
      void (async () => {
        let reply: unknown;
        try {
          const req = JSON.parse(buf.slice(0, nl)) as { cmd?: unknown; args?: unknown };
          if (typeof req.cmd !== 'string') throw new SdnetError('ERR_CONTROL_BAD_REQUEST', 'A request names a cmd');
          const args = typeof req.args === 'object' && req.args !== null ? (req.args as Record<string, unknown>) : {};
          reply = { ok: true, result: (await handler(req.cmd, args)) ?? null };
        } catch (err) {
          reply = { ok: false, error: errorBody(err instanceof SyntaxError ? new SdnetError('ERR_CONTROL_BAD_REQUEST', 'Request is not JSON') : err) };
        }
        if (!socket.destroyed) socket.end(`${JSON.stringify(reply)}\n`);
      })();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Owner only (the data dir is 0700 as well, so nobody else could reach it meanwhile).
  await chmod(path, 0o600);
  return {
    path,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await unlink(path).catch(() => undefined);
    },
  };
}

/**
 * Send a command to the service listening on `path`. Resolves `{ running: false }` when no
 * service listens there (no socket, or a stale one).
 *
 * @throws {SdnetError} with the service's error code when the command failed there
 */
export function callControl(path: string, cmd: string, args: Record<string, unknown>, options: { timeoutMs?: number } = {}): Promise<{ running: false } | { running: true; result: unknown }> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let buf = '';
    let connected = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new SdnetError('ERR_CONTROL_TIMEOUT', `The service did not answer within ${options.timeoutMs ?? 60_000} ms`));
    }, options.timeoutMs ?? 60_000);
    socket.on('connect', () => {
      connected = true;
      socket.write(`${JSON.stringify({ cmd, args })}\n`);
    });
    socket.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      if (buf.length > MAX_RESPONSE_BYTES) socket.destroy(new Error('response too large'));
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (!connected && (err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'ENOTSOCK')) resolve({ running: false });
      else reject(new SdnetError('ERR_CONTROL_FAILED', `Control socket ${path}: ${err.message}`));
    });
    socket.on('close', () => {
      clearTimeout(timer);
      if (!connected) return;
      const line = buf.split('\n')[0] ?? '';
      let reply: { ok?: unknown; result?: unknown; error?: { code?: unknown; message?: unknown; closeCode?: unknown } };
      try {
        reply = JSON.parse(line) as typeof reply;
      } catch {
        reject(new SdnetError('ERR_CONTROL_FAILED', 'The service closed the control socket without an answer'));
        return;
      }
      if (reply.ok === true) resolve({ running: true, result: reply.result });
      else {
        const e = reply.error ?? {};
        const err = new SdnetError(typeof e.code === 'string' ? e.code : 'ERR_CONTROL_FAILED', typeof e.message === 'string' ? e.message : 'The command failed');
        if (typeof e.closeCode === 'number') Object.assign(err, { closeCode: e.closeCode });
        reject(err);
      }
    });
  });
}
