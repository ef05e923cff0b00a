/**
 * `sdnet-relay --static DIR`: serve the files under DIR (an example page and the browser
 * bundle, say) next to the relay, so a page and the relay it talks to share an origin.
 *
 * Only regular files strictly inside DIR are served, read-only, with GET and HEAD:
 * - the URL path is percent-decoded once; a malformed escape, a NUL, a backslash, a `.` or
 *   `..` segment, or a segment starting with `.` (dotfiles) is refused (404, like a missing
 *   file, so nothing about the tree leaks);
 * - paths longer than {@link MAX_STATIC_PATH_BYTES} or deeper than {@link MAX_STATIC_SEGMENTS}
 *   are refused (414) before touching the file system;
 * - the resolved real path (symlinks followed) must still be inside DIR's real path: a symlink
 *   pointing out of DIR is not followed out;
 * - a directory serves its `index.html`; nothing lists directories;
 * - responses say `X-Content-Type-Options: nosniff` and `Cache-Control: no-cache`.
 *
 * @module
 */
import { realpathSync } from 'node:fs';
import { open, realpath, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, sep } from 'node:path';
import { MAX_STATIC_FILE_BYTES, MAX_STATIC_PATH_BYTES, MAX_STATIC_SEGMENTS } from './limits.ts';

export { MAX_STATIC_FILE_BYTES, MAX_STATIC_PATH_BYTES, MAX_STATIC_SEGMENTS };

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
};

/** Serves the files of one directory. */
export class StaticFiles {
  /** The directory's real path (symlinks resolved once, at start). */
  readonly root: string;

  /** @throws if `dir` does not exist or is not readable */
  constructor(dir: string) {
    this.root = realpathSync(dir);
  }

  /**
   * Answer `req` for URL path `rawPath` (without the query). Never throws: every failure is an
   * HTTP status. Resolves once the response is handed over.
   */
  async serve(req: IncomingMessage, res: ServerResponse, rawPath: string): Promise<void> {
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('Method Not Allowed\n');
      return;
    }
    if (rawPath.length > MAX_STATIC_PATH_BYTES) {
      res.writeHead(414, { 'Content-Type': 'text/plain; charset=utf-8' }).end('URI Too Long\n');
      return;
    }
    const segments = this.#segments(rawPath);
    if (segments === 'too-deep') {
      res.writeHead(414, { 'Content-Type': 'text/plain; charset=utf-8' }).end('URI Too Long\n');
      return;
    }
    if (segments === undefined) {
      notFound(res);
      return;
    }
    try {
      await this.#send(req, res, segments);
    } catch {
      if (!res.headersSent) notFound(res);
      else res.destroy();
    }
  }

  /** The decoded path segments, or undefined when the path is refused. */
  #segments(rawPath: string): string[] | 'too-deep' | undefined {
    if (!rawPath.startsWith('/')) return undefined;
    const parts = rawPath.slice(1).split('/');
    if (parts.length > MAX_STATIC_SEGMENTS) return 'too-deep';
    const out: string[] = [];
    for (let i = 0; i < parts.length; i++) {
      let part: string;
      try {
        part = decodeURIComponent(parts[i]!);
      } catch {
        return undefined;
      }
      // An empty last segment is a directory's trailing slash; empty ones inside are refused.
      if (part === '') {
        if (i === parts.length - 1) continue;
        return undefined;
      }
      if (part.startsWith('.') || part.includes('/') || part.includes('\\') || part.includes('\0')) return undefined;
      out.push(part);
    }
    return out;
  }

  async #send(req: IncomingMessage, res: ServerResponse, segments: string[]): Promise<void> {
    let path = await this.#inside(join(this.root, ...segments));
    if (path !== undefined && (await stat(path)).isDirectory()) path = await this.#inside(join(path, 'index.html'));
    if (path === undefined) return notFound(res);
    const handle = await open(path, 'r');
    let handedOver = false;
    try {
      // The checks are on the opened file, so a swap after the path checks cannot widen them.
      const info = await handle.stat();
      if (!info.isFile() || info.size > MAX_STATIC_FILE_BYTES) return notFound(res);
      res.writeHead(200, {
        'Content-Type': TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream',
        'Content-Length': String(info.size),
        'X-Content-Type-Options': 'nosniff',
        'Cache-Control': 'no-cache',
      });
      if (req.method === 'HEAD' || info.size === 0) {
        res.end();
        return;
      }
      // The stream owns the descriptor from here and closes it when done or on error.
      const stream = handle.createReadStream({ start: 0, end: info.size - 1, autoClose: true });
      handedOver = true;
      stream.on('error', () => res.destroy());
      res.on('close', () => stream.destroy());
      stream.pipe(res);
    } finally {
      if (!handedOver) await handle.close().catch(() => undefined);
    }
  }

  /** `path`'s real path if it exists and is inside the root (a symlink out is refused). */
  async #inside(path: string): Promise<string | undefined> {
    let real: string;
    try {
      real = await realpath(path);
    } catch {
      return undefined;
    }
    return real === this.root || real.startsWith(this.root.endsWith(sep) ? this.root : this.root + sep) ? real : undefined;
  }
}

function notFound(res: ServerResponse): void {
  res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('Not Found\n');
}
