/**
 * The local web page of `sdnet up --web`, in headless Chromium (Debian's /usr/bin/chromium,
 * driven by playwright-core): two `sdnet up --web` processes and a relay; the page of one
 * shows a code and its QR, the page of the other joins with it, both pages list the other
 * device as connected with its path, and a message typed in one page appears in the other.
 * Screenshots of both pages go to test-results/ as the test's artifact.
 *
 * Also without a browser: nothing is served without the token in the URL, a wrong token or
 * a foreign Host header is refused.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startRelayServer, type RelayServerHandle } from '../../relay-server/src/index.ts';
import { killAll, runSdnet, startUp, type UpProcess } from '../helpers/sdnet-proc.ts';

const CHROMIUM = process.env.SDNET_CHROMIUM ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.log(`skipping the browser test: no Chromium at ${CHROMIUM} (apt-get install chromium, or set SDNET_CHROMIUM)`);

let root: string;
let relay: RelayServerHandle;
const ups: Record<string, { up: UpProcess; url: string; dataDir: string }> = {};

async function startDevice(name: string): Promise<{ up: UpProcess; url: string; dataDir: string }> {
  const dataDir = join(root, name);
  const init = await runSdnet(['init', '--data', dataDir, '--name', name]);
  expect(init.code).toBe(0);
  const up = startUp(['--data', dataDir, '--relay', relay.url, '--bind', '127.0.0.1:0', '--web', '--json']);
  const web = await up.out.wait<{ url: string }>((o) => o.event === 'web', 60_000, `${name}'s web line`);
  return { up, url: web.url, dataDir };
}

/** GET `path` with an explicit Host header; resolves the status. */
function get(port: number, path: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sdnet-web-'));
  relay = await startRelayServer({ host: '127.0.0.1', port: 0, rateLimit: false });
  ups.alice = await startDevice('alice');
  ups.bob = await startDevice('bob');
}, 120_000);

afterAll(async () => {
  await killAll();
  await relay?.close({ graceful: false });
  await rm(root, { recursive: true, force: true });
});

describe('sdnet up --web', () => {
  it('serves nothing without the token, refuses a wrong one and a foreign Host', async () => {
    const url = new URL(ups.alice!.url);
    const port = Number(url.port);
    const token = url.searchParams.get('token')!;
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const host = `127.0.0.1:${port}`;
    for (const path of ['/', '/app.js', '/style.css', '/api/state', '/api/events']) expect(await get(port, path, host), path).toBe(403);
    // Another last character (it was 'A' one time in 16: a 43-character token of 32 bytes
    // ends in one of 16 characters, and the wrong token was then the right one).
    const wrong = `${token.slice(0, -1)}${token.endsWith('A') ? 'E' : 'A'}`;
    expect(wrong).not.toBe(token);
    expect(await get(port, `/?token=${wrong}`, host)).toBe(403);
    expect(await get(port, `/?token=${token}`, host)).toBe(200);
    expect(await get(port, `/api/state?token=${token}`, host)).toBe(200);
    // A DNS-rebinding page reaches us with its own name in Host.
    expect(await get(port, `/?token=${token}`, `attacker.example:${port}`)).toBe(421);
  });

  it.skipIf(!haveChromium)('pairs two devices through their pages, shows them connected with a path, and carries a message', async () => {
    let browser: Browser | undefined;
    try {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
      const context = await browser.newContext({ viewport: { width: 1100, height: 1000 } });
      const a: Page = await context.newPage();
      const b: Page = await context.newPage();
      const errors: string[] = [];
      for (const p of [a, b]) p.on('pageerror', (e) => errors.push(String(e)));
      await a.goto(ups.alice!.url);
      await b.goto(ups.bob!.url);
      for (const p of [a, b]) await p.locator('#live').filter({ hasText: 'live' }).waitFor({ timeout: 60_000 });
      expect(await a.locator('#self-name').textContent()).toBe('alice');

      await a.click('#invite');
      await a.locator('#code').filter({ hasText: /^([a-z]+ ){11}[a-z]+$/ }).waitFor({ timeout: 60_000 });
      const code = (await a.locator('#code').textContent())!;
      // The QR is an SVG drawn by the service.
      expect(await a.locator('#qr svg path').count()).toBe(1);
      await a.screenshot({ path: 'test-results/web-alice-code.png' });

      await b.fill('#join-code', code);
      await b.click('#join');
      await b.locator('#join-status').filter({ hasText: 'Paired with alice' }).waitFor({ timeout: 90_000 });
      await a.locator('#invite-status').filter({ hasText: 'Paired with bob' }).waitFor({ timeout: 60_000 });

      // Each page lists the other device as connected, with its path (live, no reload).
      for (const [p, other] of [
        [a, 'bob'],
        [b, 'alice'],
      ] as const) {
        const row = p.locator('#devices tbody tr').filter({ hasText: other }).filter({ hasText: 'connected' });
        await row.waitFor({ timeout: 60_000 });
        expect(await row.locator('td').nth(3).textContent()).toMatch(/^(direct|relay)$/);
      }

      await b.selectOption('#msg-to', { label: 'alice' });
      await b.fill('#msg-text', 'hello from the page');
      await b.click('#msg-send');
      await b.locator('#msg-status').filter({ hasText: /delivered in [\d.]+ ms/ }).waitFor({ timeout: 60_000 });
      await a.locator('#log li').filter({ hasText: 'message from bob: hello from the page' }).waitFor({ timeout: 60_000 });
      // The terminal of alice's sdnet up saw the same message.
      await ups.alice!.up.out.wait((o) => o.event === 'message' && o.payload === 'hello from the page', 30_000, 'the message line');

      // A file from alice's page to bob: the transfers panel on both pages follows it to the end.
      const fileDir = await mkdtemp(join(tmpdir(), 'sdnet-web-file-'));
      const file = join(fileDir, 'from-the-page.bin');
      const bytes = randomBytes(4 * 1024 * 1024);
      await writeFile(file, bytes);
      await a.locator('#send-panel').waitFor({ state: 'visible', timeout: 30_000 });
      await a.selectOption('#send-to', { label: 'bob' });
      await a.fill('#send-path', file);
      await a.click('#send');
      for (const [p, other, dir] of [
        [a, 'bob', 'out'],
        [b, 'alice', 'in'],
      ] as const) {
        const row = p.locator('#transfers tbody tr').filter({ hasText: other }).filter({ hasText: dir }).filter({ hasText: 'completed' });
        await row.waitFor({ timeout: 120_000 });
        expect(await row.locator('td').nth(3).textContent()).toMatch(/4\.0 \/ 4\.0 MiB/);
        // One row for the transfer (its hashing stage before it had an id is the same row).
        expect(await p.locator('#transfers tbody tr').count()).toBe(1);
      }
      const received = await readFile(join(ups.bob!.dataDir, 'downloads', 'from-the-page.bin'));
      expect(createHash('sha256').update(received).digest('hex')).toBe(createHash('sha256').update(bytes).digest('hex'));

      await mkdir('test-results', { recursive: true });
      await a.screenshot({ path: 'test-results/web-alice.png', fullPage: true });
      await b.screenshot({ path: 'test-results/web-bob.png', fullPage: true });
      expect(errors).toEqual([]);
    } finally {
      await browser?.close();
    }
  }, 240_000);
});
