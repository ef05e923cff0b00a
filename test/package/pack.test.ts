/**
 * The package the way a user gets it (issue 11 item 9): `npm pack`, the tarball installed into
 * an empty project, then that project imports `sdnet` and `sdnet/relay-server`, connects two
 * endpoints directly and through a relay and echoes a stream, type-checks against the
 * installed declarations, and runs the installed binaries.
 *
 * `dist/` is built by test/global-setup.ts with the command `prepare` runs, so the pack skips
 * scripts rather than compile twice. Dependencies install from npm's cache when it has them
 * (`--prefer-offline`): `npm ci` of this repository put them there.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as {
  exports: Record<string, Record<string, string>>;
  bin: Record<string, string>;
  devDependencies: Record<string, string>;
};
// Child processes (npm's scripts, the `#!/usr/bin/env node` shims) use this test's node.
const env = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}` };

function run(cmd: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, env, maxBuffer: 16 * 1024 * 1024, timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

let work: string;
let project: string;
let packed: string[];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'sdnet-pack-'));
  const out = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], root);
  const [info] = JSON.parse(out) as { filename: string; files: { path: string }[] }[];
  packed = info!.files.map((f) => f.path);
  project = join(work, 'consumer');
  await mkdir(project);
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  await run(
    'npm',
    ['install', '--prefer-offline', '--no-audit', '--no-fund', '--no-package-lock', join(work, info!.filename), `@types/node@${pkg.devDependencies['@types/node']}`],
    project,
  );
}, 180_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('npm pack → install → use', () => {
  it('the tarball holds every file exports and bin name, and no tests or build state', () => {
    const targets = Object.values(pkg.exports).flatMap((e) => Object.values(e));
    expect(targets.length).toBeGreaterThanOrEqual(4);
    for (const t of [...targets, ...Object.values(pkg.bin)]) expect(packed, t).toContain(t.replace(/^\.\//, ''));
    // The page of `sdnet up --web` is served from the package.
    for (const f of ['web/index.html', 'web/app.js', 'web/style.css']) expect(packed, f).toContain(f);
    expect(packed.filter((p) => p.startsWith('test/') || p.startsWith('src/') || p.endsWith('.tsbuildinfo'))).toEqual([]);
  });

  it("imports 'sdnet' and 'sdnet/relay-server', connects two endpoints and echoes a stream, directly and through a relay", async () => {
    await writeFile(
      join(project, 'echo.mjs'),
      `import { Endpoint, EndpointAddr } from 'sdnet';
import { startRelayServer } from 'sdnet/relay-server';

const relay = await startRelayServer({ host: '127.0.0.1', port: 0, metrics: false, rateLimit: false });
const server = await Endpoint.bind({ alpns: ['pack/1'], bindAddr: '127.0.0.1:0', relays: [relay.url] });
const client = await Endpoint.bind({ bindAddr: '127.0.0.1:0' });
await server.online();
void (async () => {
  for await (const incoming of server.accept()) {
    const conn = await incoming.accept();
    const { readable, writable } = await conn.acceptBi();
    readable.pipeTo(writable).catch(() => {});
  }
})();
async function echo(addr, text) {
  const conn = await client.connect(addr, 'pack/1');
  const { readable, writable } = await conn.openBi();
  const w = writable.getWriter();
  await w.write(new TextEncoder().encode(text));
  await w.close();
  let got = '';
  for await (const chunk of readable) got += new TextDecoder().decode(chunk);
  const result = { got, peer: conn.remoteId.toString() === server.id.toString(), relayed: conn.stats().relayed };
  conn.close();
  return result;
}
const direct = await echo(EndpointAddr.from({ id: server.id, directAddresses: server.boundSockets }), 'direct hello');
const relayed = await echo(EndpointAddr.from({ id: server.id, relayUrls: [relay.url] }), 'relayed hello');
console.log(JSON.stringify({ direct, relayed }));
await Promise.all([client.close(), server.close()]);
await relay.close();
`,
    );
    const out = await run(process.execPath, ['echo.mjs'], project);
    expect(JSON.parse(out)).toEqual({
      direct: { got: 'direct hello', peer: true, relayed: false },
      relayed: { got: 'relayed hello', peer: true, relayed: true },
    });
  }, 60_000);

  it('type-checks a consumer against the installed declarations, naming the types public signatures use', async () => {
    await writeFile(
      join(project, 'check.ts'),
      `import {
  ConnectionError, Endpoint, EndpointAddr, SdnetError, TlsAlertError, TransportError, TransportErrorCode,
  type CloseKind, type ConnectionSettings, type ConnectionStats, type CryptoProvider, type EndpointOptions,
  type EndpointStats, type PathAddr, type PathSocketStats, type RelayInfo, type RelayTransport,
} from 'sdnet';
import { startRelayServer, type RelayServerHandle, type RelayServerOptions } from 'sdnet/relay-server';

// A type that failed to resolve would silently become \`any\`: these fail to compile then.
type IsAny<T> = 0 extends 1 & T ? true : false;
type NotAny<T> = IsAny<T> extends true ? never : T;
const settings: NotAny<Partial<ConnectionSettings>> = { maxIdleTimeout: 10_000, congestion: 'cubic' };
const options: NotAny<EndpointOptions> = { settings, bindAddr: '127.0.0.1:0' };
const relayOptions: NotAny<RelayServerOptions> = { port: 0 };
const relay: NotAny<RelayServerHandle> = await startRelayServer(relayOptions);
const ep: Endpoint = await Endpoint.bind({ ...options, relays: [relay.url] });
const stats: NotAny<EndpointStats> = ep.stats();
const paths: NotAny<PathSocketStats> = ep.stats().paths;
const relays: NotAny<RelayInfo>[] = ep.relays();
const addr: EndpointAddr = ep.addr();
try {
  const conn = await ep.connect(addr, 'x');
  const path: NotAny<PathAddr> = conn.path;
  const cs: NotAny<ConnectionStats> = conn.stats();
  console.log(path.key, cs.rtt);
} catch (e: unknown) {
  if (e instanceof ConnectionError) {
    const kind: NotAny<CloseKind> = e.kind;
    console.log(kind, e.transportCode === TransportErrorCode.CRYPTO_ERROR);
  }
  if (e instanceof TransportError) console.log(e.transportCode, e.frameType);
  if (e instanceof TlsAlertError) console.log(e.alert, e.quicErrorCode);
  if (e instanceof SdnetError) console.log(e.code);
}
const transport: NotAny<RelayTransport> | undefined = undefined;
const provider: NotAny<CryptoProvider> | undefined = undefined;
console.log(stats.connections, paths.udpSent, relays.length, transport, provider);
// @ts-expect-error a typo in an option is caught: the declarations are real, not \`any\`
await Endpoint.bind({ bindAdr: '127.0.0.1:0' });
`,
    );
    await writeFile(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { target: 'es2023', lib: ['es2023', 'dom'], module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true, skipLibCheck: true, types: ['node'] },
        files: ['check.ts'],
      }),
    );
    await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', project], project);
  }, 60_000);

  it('runs the installed binaries', async () => {
    const bin = join(project, 'node_modules/.bin');
    await run(join(bin, 'sdnet'), ['keygen', '--out', join(project, 'secret.key')], project);
    const { id } = JSON.parse(await run(join(bin, 'sdnet'), ['id', '--key', join(project, 'secret.key'), '--json'], project)) as { id: string };
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    const ticket = (await run(join(bin, 'sdnet'), ['ticket', 'encode', '--id', id, '--addr', '192.0.2.1:4433'], project)).trim();
    const decoded = JSON.parse(await run(join(bin, 'sdnet'), ['ticket', 'decode', ticket], project)) as unknown;
    expect(decoded).toMatchObject({ id, directAddresses: ['192.0.2.1:4433'] });
    expect(await run(join(bin, 'sdnet-relay'), ['--help'], project)).toContain('Usage: sdnet-relay');
  }, 30_000);
});
