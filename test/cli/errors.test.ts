/**
 * Every error a user can cause prints one clear line on stderr (`sdnet <command>: …`, never
 * a stack trace) and exits non-zero, within a deadline — a command that hangs on a bad data
 * dir (Node's recursive mkdir spins forever under /proc) is a failure here too.
 *
 * Covered: a malformed pairing code, an unknown device, a service that is not running when
 * `--no-start` is given, a data dir that cannot exist, a data dir without an identity, an
 * unknown option and command.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll, runSdnet, type RunResult } from '../helpers/sdnet-proc.ts';
import { PairingCode } from '../../src/protocols/pairing/code.ts';

let root: string;
let device: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sdnet-errors-'));
  device = join(root, 'device');
  const init = await runSdnet(['init', '--data', device, '--name', 'alice']);
  expect(init.code).toBe(0);
});
afterAll(async () => {
  await killAll();
  await rm(root, { recursive: true, force: true });
});

/** One line on stderr, prefixed with the command, no stack trace; returns that line. */
function oneLine(r: RunResult, prefix: string): string {
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect(lines, `stderr: ${r.stderr}`).toHaveLength(1);
  expect(lines[0]).not.toMatch(/^\s+at /);
  expect(lines[0]!.startsWith(`${prefix}: `), lines[0]).toBe(true);
  return lines[0]!;
}

describe('user errors: one line, non-zero exit', () => {
  it('a malformed pairing code (wrong word count, a word not in the list) is exit 2, before any network', async () => {
    const short = await runSdnet(['pair', 'join', 'apple', 'banana', '--data', device]);
    expect(short.code).toBe(2);
    expect(oneLine(short, 'sdnet pair')).toMatch(/malformed code: expected 12 words, got 2/);
    const words = 'abandon ability able about above absent absorb abstract absurd abuse access notaword'.split(' ');
    const badWord = await runSdnet(['pair', 'join', ...words, '--data', device]);
    expect(badWord.code).toBe(2);
    expect(oneLine(badWord, 'sdnet pair')).toMatch(/malformed code/);
    expect(badWord.stderr).toContain('ERR_PAIRING_CODE_MALFORMED');
  });

  it('an unknown device is exit 2 for msg, unpair and request', async () => {
    for (const cmd of [['msg', 'nobody', 'hi'], ['unpair', 'nobody'], ['request', 'deadbeefdeadbeef']]) {
      const r = await runSdnet([...cmd, '--data', device]);
      expect(r.code, cmd.join(' ')).toBe(2);
      expect(oneLine(r, `sdnet ${cmd[0]}`)).toMatch(/No known device is "(nobody|deadbeefdeadbeef)"/);
    }
  });

  it('sdnet send of a file that does not exist is exit 2 naming it, before any network', async () => {
    const missing = join(root, 'no-such-file.bin');
    const r = await runSdnet(['send', 'alice', missing, '--data', device]);
    expect(r.code).toBe(2);
    expect(oneLine(r, 'sdnet send')).toContain(`${missing}: no such file or directory`);
  });

  it('--no-start with no sdnet up running is exit 1 naming the data dir, for every command that reaches the service', async () => {
    for (const cmd of [['devices'], ['msg', 'alice', 'hi'], ['unpair', 'alice'], ['request', 'alice'], ['pair', 'invite'], ['pair', 'join', ...PairingCode.generate().words.split(' ')], ['send', 'alice', root], ['transfers']]) {
      const r = await runSdnet([...cmd, '--no-start', '--data', device]);
      expect(r.code, `${cmd.join(' ')}: ${r.stderr}`).toBe(1);
      const prefix = cmd[0] === 'pair' ? 'sdnet pair' : `sdnet ${cmd[0]}`;
      expect(oneLine(r, prefix)).toContain(`no sdnet up is running for ${device}`);
    }
  });

  it('a data dir that cannot be created ends with one line instead of hanging (under /proc, below a file)', async () => {
    const proc = await runSdnet(['init', '--data', '/proc/sdnet-no-such-dir/x'], { timeoutMs: 30_000 });
    expect(proc.code).toBe(1);
    expect(oneLine(proc, 'sdnet init')).toMatch(/Cannot create \/proc\/sdnet-no-such-dir/);
    const file = join(root, 'a-file');
    await writeFile(file, 'x');
    const below = await runSdnet(['up', '--data', join(file, 'd')], { timeoutMs: 30_000 });
    expect(below.code).toBe(1);
    expect(oneLine(below, 'sdnet up')).toMatch(/is a file, not a directory/);
  });

  it('sdnet up with a --downloads dir that cannot be created ends with one line naming it (under /proc, below a file)', async () => {
    const proc = await runSdnet(['up', '--data', device, '--downloads', '/proc/sdnet-no-such-dir/in'], { timeoutMs: 30_000 });
    expect(proc.code).toBe(1);
    expect(oneLine(proc, 'sdnet up')).toMatch(/Cannot create \/proc\/sdnet-no-such-dir/);
    const file = join(root, 'downloads-file');
    await writeFile(file, 'x');
    const below = await runSdnet(['up', '--data', device, '--downloads', join(file, 'in')], { timeoutMs: 30_000 });
    expect(below.code).toBe(1);
    expect(oneLine(below, 'sdnet up')).toMatch(/not a directory/);
  });

  it('a data dir without an identity is exit 2 and says to run sdnet init', async () => {
    const r = await runSdnet(['devices', '--data', join(root, 'empty')]);
    expect(r.code).toBe(2);
    expect(oneLine(r, 'sdnet devices')).toMatch(/run sdnet init/);
  });

  it('an unknown option or command is exit 2', async () => {
    const opt = await runSdnet(['devices', '--bogus', '--data', device]);
    expect(opt.code).toBe(2);
    expect(oneLine(opt, 'sdnet devices')).toMatch(/Unknown option '--bogus'/);
    const cmd = await runSdnet(['frobnicate']);
    expect(cmd.code).toBe(2);
    expect(oneLine(cmd, 'sdnet')).toMatch(/unknown command "frobnicate"/);
  });
});
