/**
 * `sdnet-relay --static DIR` against hostile requests, over real sockets with the raw request
 * bytes (an HTTP client library would normalise `..` away before sending): path traversal in
 * every spelling, symlinks out of DIR, dotfiles, huge and deep paths, other methods, a flood —
 * each refused without the file's contents, the relay still serving and relaying afterwards.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RelayServerHandle } from '../../relay-server/src/index.ts';
import { ConfigError, parseCli } from '../../relay-server/src/config.ts';
import { MAX_STATIC_PATH_BYTES, MAX_STATIC_SEGMENTS } from '../../relay-server/src/limits.ts';
import { failOnEscapes, rawExchange, startTestRelay } from '../helpers/relay-test-utils.ts';

failOnEscapes();

const SECRET = 'TOP-SECRET-OUTSIDE-THE-STATIC-DIR';
const HIDDEN = 'HIDDEN-DOTFILE-CONTENT';
let base: string;
let site: string;
let relay: RelayServerHandle;
let port: number;

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'sdnet-static-'));
  site = join(base, 'site');
  mkdirSync(join(site, 'sub', 'deeper'), { recursive: true });
  mkdirSync(join(site, 'empty-dir'));
  writeFileSync(join(base, 'secret.txt'), SECRET);
  writeFileSync(join(site, 'index.html'), '<!doctype html><title>example</title>');
  writeFileSync(join(site, 'app.js'), 'export const answer = 42;\n');
  writeFileSync(join(site, '.env'), HIDDEN);
  writeFileSync(join(site, 'sub', 'index.html'), 'sub index');
  writeFileSync(join(site, 'sub', 'deeper', 'a b.txt'), 'spaced');
  writeFileSync(join(site, 'empty.txt'), '');
  symlinkSync(join(base, 'secret.txt'), join(site, 'link-out.txt'));
  symlinkSync(base, join(site, 'dir-out'));
  symlinkSync(join(site, 'app.js'), join(site, 'link-in.js'));
  relay = await startTestRelay({ staticDir: site });
  port = Number(new URL(relay.url).port);
});

afterAll(async () => {
  await relay?.close({ graceful: false });
  if (base) rmSync(base, { recursive: true, force: true });
});

/** One raw request; the status code and the whole response. */
async function get(path: string, method = 'GET'): Promise<{ status: number; response: string }> {
  const { response } = await rawExchange(port, `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`, 30_000);
  const m = /^HTTP\/1\.1 (\d{3})/.exec(response);
  return { status: m ? Number(m[1]) : 0, response };
}

describe('sdnet-relay --static', () => {
  it('serves index.html at /, files with their type, HEAD without a body, and keeps the relay paths', async () => {
    const root = await get('/');
    expect(root.status).toBe(200);
    expect(root.response).toContain('<title>example</title>');
    expect(root.response.toLowerCase()).toContain('content-type: text/html');
    const js = await get('/app.js');
    expect(js.status).toBe(200);
    expect(js.response.toLowerCase()).toContain('content-type: text/javascript');
    expect(js.response.toLowerCase()).toContain('x-content-type-options: nosniff');
    expect(js.response).toContain('answer = 42');
    const head = await get('/app.js', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.response.toLowerCase()).toContain(`content-length: ${Buffer.byteLength('export const answer = 42;\n')}`);
    expect(head.response).not.toContain('answer = 42');
    expect((await get('/sub/')).response).toContain('sub index');
    expect((await get('/sub')).response).toContain('sub index');
    expect((await get('/sub/deeper/a%20b.txt')).response).toContain('spaced');
    expect((await get('/empty.txt')).status).toBe(200);
    expect((await get('/link-in.js')).response).toContain('answer = 42');
    expect((await get('/app.js?v=1')).status).toBe(200);
    // The relay's own paths win over files.
    expect((await get('/ping')).status).toBe(200);
    expect((await get('/healthz')).response).toContain('"status":"ok"');
    expect((await get('/relay')).status).toBe(426);
  });

  it('refuses path traversal in every spelling, without the file', async () => {
    const attempts = [
      '/../secret.txt',
      '/sub/../../secret.txt',
      '/%2e%2e/secret.txt',
      '/%2E%2E/secret.txt',
      '/.%2e/secret.txt',
      '/%2e%2e%2fsecret.txt',
      '/sub/%2e%2e%2f%2e%2e%2fsecret.txt',
      '/..%5csecret.txt',
      '/sub\\..\\..\\secret.txt',
      '/%252e%252e/secret.txt',
      '/./app.js',
      '//secret.txt',
      `/${'../'.repeat(10)}etc/passwd`,
      '/%c0%ae%c0%ae/secret.txt',
      '/app.js%00.html',
      '/%zz',
      'secret.txt',
      '/dir-out/secret.txt',
    ];
    for (const path of attempts) {
      const r = await get(path);
      expect(r.response, path).not.toContain(SECRET);
      expect(r.response, path).not.toContain('root:');
      expect([400, 404], path).toContain(r.status);
    }
  });

  it('follows no symlink out of the directory and serves no dotfile', async () => {
    const out = await get('/link-out.txt');
    expect(out.status).toBe(404);
    expect(out.response).not.toContain(SECRET);
    const dir = await get('/dir-out/');
    expect(dir.status).toBe(404);
    for (const path of ['/.env', '/%2eenv', '/sub/../.env']) {
      const r = await get(path);
      expect(r.status, path).toBe(404);
      expect(r.response).not.toContain(HIDDEN);
    }
    // No directory listing.
    const listing = await get('/empty-dir/');
    expect(listing.status).toBe(404);
  });

  it('refuses huge and deep paths with 414 (or the header limit) before touching the disk', async () => {
    const long = await get(`/${'a'.repeat(MAX_STATIC_PATH_BYTES + 1)}`);
    expect(long.status).toBe(414);
    const deep = await get(`/${'d/'.repeat(MAX_STATIC_SEGMENTS + 1)}x`);
    expect(deep.status).toBe(414);
    // Far larger than any header limit: refused by the HTTP layer, never reaches the files.
    const huge = await get(`/${'b'.repeat(200_000)}`);
    expect([414, 431, 400, 0]).toContain(huge.status);
    expect(huge.response).not.toContain(SECRET);
  });

  it('allows only GET and HEAD; other methods change nothing', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE']) {
      const r = await get('/app.js', method);
      expect(r.status, method).toBe(405);
      expect(r.response.toLowerCase()).toContain('allow: get, head');
    }
    expect(readFileSync(join(site, 'app.js'), 'utf8')).toBe('export const answer = 42;\n');
  });

  it('stays up through a flood of hostile requests and still serves and relays', async () => {
    const seed = Date.now() >>> 0;
    console.log(`[seed] static flood: SDNET_SEED=${seed}`);
    let x = seed || 1;
    const rand = () => ((x = (x * 1103515245 + 12345) >>> 0), x);
    const pieces = ['..', '%2e%2e', '%2f', '%5c', '.', 'sub', 'app.js', '%00', '%', 'link-out.txt', '.env', 'dir-out', '~', '%ff'];
    const paths = Array.from({ length: 300 }, () => `/${Array.from({ length: 1 + (rand() % 6) }, () => pieces[rand() % pieces.length]).join('/')}`);
    for (let i = 0; i < paths.length; i += 30) {
      const batch = await Promise.all(paths.slice(i, i + 30).map((p) => get(p)));
      for (const r of batch) {
        expect(r.response).not.toContain(SECRET);
        expect(r.response).not.toContain(HIDDEN);
        expect(r.status).toBeGreaterThanOrEqual(200);
      }
    }
    expect((await get('/app.js')).status).toBe(200);
    expect((await get('/ping')).status).toBe(200);
  });

  it('the flag needs an existing directory (exit 2 territory: a ConfigError)', () => {
    expect(() => parseCli(['--static', join(base, 'nope')])).toThrow(ConfigError);
    expect(() => parseCli(['--static', join(base, 'secret.txt')])).toThrow(ConfigError);
    expect(parseCli(['--static', site]).options.staticDir).toBe(site);
  });
});

describe('sdnet-relay without --static', () => {
  it('serves its own page and no files', async () => {
    const plain = await startTestRelay();
    try {
      const p = Number(new URL(plain.url).port);
      const index = await rawExchange(p, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 30_000);
      expect(index.response).toContain('sdnet relay');
      const file = await rawExchange(p, 'GET /app.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 30_000);
      expect(file.response).toMatch(/^HTTP\/1\.1 404/);
    } finally {
      await plain.close({ graceful: false });
    }
  });
});
