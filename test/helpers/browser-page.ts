/**
 * The example page (`examples/browser/`) in headless Chromium, served by an sdnet relay with
 * `--static`: a temporary site directory holds the page and the bundle that
 * `scripts/bundle-browser.ts` built (test/global-setup.ts builds it before the suite).
 *
 * Chromium is Debian's `chromium` (`/usr/bin/chromium`, or `$CHROMIUM`), driven by
 * playwright-core; `.ci/run` installs it. Where it is missing, {@link chromiumUnavailable}
 * says why, and the tests skip with that reason printed.
 */
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';

const root = fileURLToPath(new URL('../..', import.meta.url));
export const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const bundlePath = join(root, 'dist/browser/sdnet.min.js');

/** Why the Chromium tests cannot run here, or undefined when they can. */
export function chromiumUnavailable(): string | undefined {
  if (!existsSync(chromiumPath)) return `no Chromium at ${chromiumPath} (apt-get install chromium, or set CHROMIUM)`;
  if (!existsSync(bundlePath)) return `no browser bundle at ${bundlePath} (npm run build)`;
  return undefined;
}

/** A directory with the example page and the bundle, for `staticDir`; `remove()` deletes it. */
export function exampleSite(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'sdnet-browser-site-'));
  const example = join(root, 'examples/browser');
  for (const f of readdirSync(example)) if (f.endsWith('.html') || f.endsWith('.js')) copyFileSync(join(example, f), join(dir, f));
  copyFileSync(bundlePath, join(dir, 'sdnet.min.js'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface ExamplePage {
  browser: Browser;
  page: Page;
  /** Page errors and console errors seen so far (for failure messages). */
  errors: string[];
  close(): Promise<void>;
}

/** Launch headless Chromium and open the example page at `url`, its module loaded. */
export async function openExamplePage(url: string): Promise<ExamplePage> {
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'], timeout: 120_000 });
  const errors: string[] = [];
  try {
    const page = await browser.newPage();
    page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
    });
    await page.goto(url, { timeout: 120_000 });
    await page.waitForFunction(() => 'sdnetExample' in window, undefined, { timeout: 120_000 });
    return { browser, page, errors, close: () => browser.close() };
  } catch (err) {
    await browser.close();
    throw new Error(`${(err as Error).message}\n${errors.join('\n')}`, { cause: err });
  }
}

/** What the example's `app.js` exports (`window.sdnetExample`), as the tests call it. */
export interface ExampleApi {
  ALPN: string;
  bind(options?: { relay?: string; alpns?: string[] }): Promise<PageEndpoint>;
  dialAndEcho(ep: PageEndpoint, target: string, options?: { relay?: string; bytes?: number; alpn?: string }): Promise<EchoResult>;
  serveEcho(ep: PageEndpoint, onConnection?: (conn: unknown) => void): Promise<void>;
}
/** The page's endpoint, opaque to the test (it stays in the page). */
export interface PageEndpoint {
  readonly id: { toString(): string };
  close(): Promise<void>;
}
export interface EchoResult {
  bytes: number;
  receivedBytes: number;
  sentHash: string;
  echoedHash: string;
  ms: number;
}
/** The page's globals the tests use. */
export type PageWindow = Window & { sdnetExample: ExampleApi; endpoints: Record<string, PageEndpoint> };
