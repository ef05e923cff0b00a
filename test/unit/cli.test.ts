/**
 * The `sdnet` CLI: identity and ticket commands, and bad input (exit 2, one line, no stack).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { run } from '../../src/cli/main.ts';
import { EndpointAddr, EndpointTicket, SecretKey } from '../../src/identity/index.ts';
import { BASE32_RFC4648_LOWER, encodeBase32 } from '../../src/util/base32.ts';
import { fromHex } from '../../src/util/bytes.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
let home: string;
beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'sdnet-cli-'));
});
afterAll(async () => {
  await rm(home, { recursive: true, force: true });
});

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await run(argv, {
    stdout: (t) => (out += t),
    stderr: (t) => (err += t),
    env: { SDNET_HOME: home },
    signal: new AbortController().signal,
  });
  return { code, out, err };
}

const id0 = '3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29';

describe('sdnet keygen / id', () => {
  it('writes a 0600 key file and prints the same id as `sdnet id`', async () => {
    const path = join(home, 'a.key');
    const gen = await cli('keygen', '--out', path);
    expect(gen.code).toBe(0);
    expect(gen.out).toMatch(/^[0-9a-f]{64}\n$/);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const shown = await cli('id', '--key', path);
    expect(shown).toMatchObject({ code: 0, out: gen.out });
    const json = JSON.parse((await cli('id', '--key', path, '--json')).out);
    expect(json.id).toBe(gen.out.trim());
    expect(json.tlsServerName).toMatch(/\.iroh\.invalid$/);
  });

  it('refuses to overwrite an existing key without --force', async () => {
    const path = join(home, 'b.key');
    expect((await cli('keygen', '--out', path)).code).toBe(0);
    const again = await cli('keygen', '--out', path);
    expect(again.code).toBe(2);
    expect(again.err).toMatch(/already exists/);
    expect((await cli('keygen', '--out', path, '--force')).code).toBe(0);
  });

  it('uses the default key path from SDNET_HOME', async () => {
    const gen = await cli('keygen');
    expect((await cli('id')).out).toBe(gen.out);
  });

  it('reports a missing key file with exit 2', async () => {
    const r = await cli('id', '--key', join(home, 'nope.key'));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/no such file/);
  });
});

describe('sdnet ticket', () => {
  it('encodes and decodes the iroh vector', async () => {
    const enc = await cli('ticket', 'encode', '--id', id0, '--relay', 'http://127.0.0.1:3340', '--addr', '127.0.0.1:1024', '--addr', '[::1]:5');
    expect(enc.code).toBe(0);
    expect(enc.out.trim()).toBe(
      'endpointaa5wuj54z23killcuounaktpbvzwkmqvo4o6eq5ghlaerimllhncsayaczuhi5dqhixs6mjsg4xdalrqfyytumztgqyc6aiap4aaaamabaaqcaaaaaaaaaaaaaaaaaaaaaaaaaif',
    );
    const dec = await cli('ticket', 'decode', enc.out.trim());
    expect(dec.code).toBe(0);
    expect(JSON.parse(dec.out)).toEqual({ id: id0, relayUrls: ['http://127.0.0.1:3340/'], directAddresses: ['127.0.0.1:1024', '[::1]:5'] });
  });

  const valid = new EndpointTicket(EndpointAddr.from({ id: SecretKey.fromBytes(new Uint8Array(32)).public(), directAddresses: ['1.2.3.4:5'] }));
  const bytes = valid.toBytes();
  const b32 = (b: Uint8Array) => `endpoint${encodeBase32(b, BASE32_RFC4648_LOWER)}`;
  const badTickets: Array<[string, string, RegExp]> = [
    ['wrong prefix', `node${valid.toString().slice(8)}`, /expected prefix "endpoint"/],
    ['bad base32', `${valid.toString().slice(0, -2)}!1`, /invalid character/],
    ['truncated bytes', b32(bytes.subarray(0, bytes.length - 3)), /truncated/],
    ['trailing bytes', b32(Uint8Array.from([...bytes, 0, 0])), /trailing bytes/],
    ['bad key', b32(Uint8Array.from([0, ...fromHex('02'.padEnd(64, '0')), 0])), /public key/],
    ['unknown variant', b32(Uint8Array.from([1, ...bytes.subarray(1)])), /variant/],
  ];
  for (const [name, text, message] of badTickets) {
    it(`decode exits 2 with one line for ${name}`, async () => {
      const r = await cli('ticket', 'decode', text);
      expect(r.code).toBe(2);
      expect(r.out).toBe('');
      expect(r.err).toMatch(message);
      expect(r.err.trim().split('\n')).toHaveLength(1);
    });
  }

  const badEncode: Array<[string, string[], RegExp]> = [
    ['short key', ['--id', 'abcd'], /expected 64 hex or 52 base32/],
    ['invalid key point', ['--id', '02'.padEnd(64, '0')], /public key/],
    ['bad address', ['--id', id0, '--addr', '1.2.3.4'], /missing port/],
    ['bad relay', ['--id', id0, '--relay', 'not a url'], /relay URL/],
    ['missing id', [], /usage/],
    ['unknown option', ['--id', id0, '--bogus'], /Unknown option/],
  ];
  for (const [name, args, message] of badEncode) {
    it(`encode exits 2 with one line for ${name}`, async () => {
      const r = await cli('ticket', 'encode', ...args);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(message);
      expect(r.err.trim().split('\n')).toHaveLength(1);
    });
  }

  it('rejects an unknown command with exit 2', async () => {
    expect((await cli('frobnicate')).code).toBe(2);
  });
});

describe('the installed binary (bin/sdnet.js over dist/)', () => {
  const exec = promisify(execFile);
  it('runs `ticket decode` and fails bad input with status 2 and no stack trace', async () => {
    const bin = join(root, 'bin', 'sdnet.js');
    const ok = await exec(process.execPath, [bin, 'ticket', 'decode', new EndpointTicket(EndpointAddr.from({ id: id0 })).toString()]);
    expect(JSON.parse(ok.stdout)).toEqual({ id: id0, relayUrls: [], directAddresses: [] });
    const bad = await exec(process.execPath, [bin, 'ticket', 'decode', 'endpointzz']).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(bad?.code).toBe(2);
    expect(bad?.stderr).not.toMatch(/\s+at\s/);
    expect(bad?.stderr.trim().split('\n')).toHaveLength(1);
  });
});
