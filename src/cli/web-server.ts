/**
 * The local web page of `sdnet up --web [ADDR]`: plain HTML/CSS/JS from the package's `web/`
 * directory (no build step), a JSON API over the same commands as the control socket, and
 * the service's events live over server-sent events.
 *
 * Who may use it: whoever has the URL. A random 256-bit token is in the URL `up` prints, and
 * every request must carry it (`?token=` or the `x-sdnet-token` header), compared in constant
 * time; without it nothing is served, not even the page. The Host header must name the
 * address we listen on (a DNS-rebinding page cannot borrow the browser), responses carry a
 * strict Content-Security-Policy and `Referrer-Policy: no-referrer` (the token is in the
 * URL), and requests and SSE clients are bounded.
 *
 * @module
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { SdnetError } from '../util/errors.ts';
import { encodeQr, qrRows } from './qr.ts';

/** Largest request body (bytes). */
const MAX_BODY_BYTES = 64 * 1024;
/** Most event-stream clients at once. */
const MAX_SSE_CLIENTS = 16;
/** Comment line sent to keep idle event streams open (ms). */
const SSE_HEARTBEAT_MS = 15_000;

/** Files of `web/` the server hands out, with their types. */
const STATIC: Record<string, string> = {
  '/': 'index.html',
  '/index.html': 'index.html',
  '/app.js': 'app.js',
  '/style.css': 'style.css',
};
const TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };

/** The package's web/ dir, from dist/src/cli (installed) or src/cli (tests run the source). */
export function webDir(): string {
  const fromDist = import.meta.url.includes('/dist/src/cli/');
  return fileURLToPath(new URL(fromDist ? '../../../web/' : '../../web/', import.meta.url));
}

/** `text` as a QR code in SVG (one path, dark modules on white, 4-module quiet zone). */
export function qrSvg(text: string): string {
  const rows = qrRows(encodeQr(text));
  const n = rows.length;
  let d = '';
  for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) if (rows[r]![c]) d += `M${c} ${r}h1v1h-1z`;
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${n} ${n}" shape-rendering="crispEdges"><rect width="${n}" height="${n}" fill="#fff"/><path d="${d}" fill="#000"/></svg>`;
}

export interface WebServerOptions {
  /** `HOST:PORT` to listen on (default 127.0.0.1:0). */
  addr?: string;
  /** Runs a command as the control socket does (`devices`, `msg`, `pair-invite`, …). */
  execute: (cmd: string, args: Record<string, unknown>) => Promise<unknown>;
  /** A snapshot for a page that (re)connects. */
  state: () => unknown;
  /** Test hook: a fixed token. */
  token?: string;
}

export interface WebServer {
  /** The URL with the token, to open in a browser. */
  readonly url: string;
  readonly port: number;
  /** Send an event to every open page. */
  broadcast(event: unknown): void;
  close(): Promise<void>;
}

function parseAddr(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(addr) ?? /^()()(\d{1,5})$/.exec(addr);
  if (m === null) throw new SdnetError('ERR_INVALID_ARGUMENT', `--web takes HOST:PORT or PORT, not "${addr.slice(0, 100)}"`);
  const port = Number(m[3]);
  if (port > 65535) throw new SdnetError('ERR_INVALID_ARGUMENT', `--web: port ${port} is out of range`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

export async function startWebServer(options: WebServerOptions): Promise<WebServer> {
  const { host, port } = parseAddr(options.addr ?? '127.0.0.1:0');
  const token = options.token ?? randomBytes(32).toString('base64url');
  const tokenDigest = digest(token);
  const dir = webDir();
  const clients = new Set<ServerResponse>();
  let boundPort = 0;
  const hostName = host.includes(':') ? `[${host}]` : host;

  const allowedHosts = (): Set<string> => new Set([`${hostName}:${boundPort}`, `127.0.0.1:${boundPort}`, `localhost:${boundPort}`, `[::1]:${boundPort}`]);

  const send = (res: ServerResponse, status: number, type: string, body: string | Buffer): void => {
    res.writeHead(status, {
      'content-type': type,
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'x-frame-options': 'DENY',
      'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    });
    res.end(body);
  };
  const json = (res: ServerResponse, status: number, body: unknown): void => send(res, status, 'application/json', JSON.stringify(body));

  const readBody = (req: IncomingMessage): Promise<unknown> =>
    new Promise((resolve, reject) => {
      let size = 0;
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY_BYTES) {
          reject(new SdnetError('ERR_WEB_BODY_TOO_LARGE', 'Request body too large'));
          req.destroy();
          return;
        }
        parts.push(c);
      });
      req.on('end', () => {
        try {
          resolve(parts.length === 0 ? {} : JSON.parse(Buffer.concat(parts).toString('utf8')));
        } catch {
          reject(new SdnetError('ERR_WEB_BAD_REQUEST', 'Request body is not JSON'));
        }
      });
      req.on('error', reject);
    });

  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (!allowedHosts().has(req.headers.host ?? '')) return send(res, 421, 'text/plain', 'wrong Host\n');
      const given = url.searchParams.get('token') ?? (typeof req.headers['x-sdnet-token'] === 'string' ? req.headers['x-sdnet-token'] : '');
      if (!timingSafeEqual(digest(given), tokenDigest)) return send(res, 403, 'text/plain', 'the URL printed by sdnet up --web carries a token; this request has none or another\n');

      const file = STATIC[url.pathname];
      if (req.method === 'GET' && file !== undefined) {
        let body = await readFile(`${dir}${file}`, 'utf8');
        // The page's own links carry the token too (the browser sends no header for them).
        if (file === 'index.html') body = body.replaceAll('__TOKEN__', encodeURIComponent(token));
        return send(res, 200, TYPES[file.split('.').pop()!]!, body);
      }
      if (req.method === 'GET' && url.pathname === '/api/state') return json(res, 200, options.state());
      if (req.method === 'GET' && url.pathname === '/api/events') {
        if (clients.size >= MAX_SSE_CLIENTS) return send(res, 503, 'text/plain', 'too many pages open\n');
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-content-type-options': 'nosniff' });
        res.write(`data: ${JSON.stringify({ event: 'hello', state: options.state() })}\n\n`);
        clients.add(res);
        const beat = setInterval(() => res.write(': keep-alive\n\n'), SSE_HEARTBEAT_MS);
        req.on('close', () => {
          clearInterval(beat);
          clients.delete(res);
        });
        return;
      }
      if (req.method === 'POST' && url.pathname === '/api/cmd') {
        let body: { cmd?: unknown; args?: unknown };
        try {
          body = (await readBody(req)) as typeof body;
        } catch (err) {
          return json(res, 400, { ok: false, error: { code: (err as SdnetError).code ?? 'ERR_WEB_BAD_REQUEST', message: (err as Error).message } });
        }
        if (typeof body.cmd !== 'string') return json(res, 400, { ok: false, error: { code: 'ERR_WEB_BAD_REQUEST', message: 'A request names a cmd' } });
        const args = typeof body.args === 'object' && body.args !== null ? (body.args as Record<string, unknown>) : {};
        try {
          const result = (await options.execute(body.cmd, args)) as Record<string, unknown> | null;
          // The pairing QR as an image, drawn here (the page has no QR encoder).
          if (body.cmd === 'pair-invite' && result !== null && typeof result.qr === 'string') result.qrSvg = qrSvg(result.qr);
          return json(res, 200, { ok: true, result });
        } catch (err) {
          const e = err as { code?: unknown; message?: unknown };
          return json(res, 200, { ok: false, error: { code: typeof e.code === 'string' ? e.code : 'ERR_INTERNAL', message: typeof e.message === 'string' ? e.message.split('\n')[0] : String(err) } });
        }
      }
      return send(res, 404, 'text/plain', 'not found\n');
    })().catch(() => {
      if (!res.headersSent) send(res, 500, 'text/plain', 'internal error\n');
      else res.destroy();
    });
  });
  server.requestTimeout = 10 * 60_000;
  server.headersTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new SdnetError('ERR_WEB_LISTEN', `--web ${hostName}:${port}: ${err.code === 'EADDRINUSE' ? 'the address is in use' : err.message}`)));
    server.listen(port, host, () => resolve());
  });
  boundPort = (server.address() as AddressInfo).port;
  return {
    url: `http://${hostName}:${boundPort}/?token=${encodeURIComponent(token)}`,
    port: boundPort,
    broadcast(event) {
      const line = `data: ${JSON.stringify(event)}\n\n`;
      for (const c of clients) c.write(line);
    },
    async close() {
      for (const c of clients) c.end();
      clients.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
