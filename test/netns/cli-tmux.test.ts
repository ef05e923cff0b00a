/**
 * The CLI as a new user drives it (issue 16 acceptance), typed into tmux windows and read
 * back from their screens: `sdnet-relay` in one network namespace, two devices in two
 * others with every UDP packet between them dropped (relay only). `sdnet up` on both,
 * `pair invite` / `pair join` with the words read off the screen, `devices` showing both
 * connected via relay, `msg`, `send` of a 200 MiB file with its progress bar (rate and ETA:
 * a real TTY), `kill -9` of the receiver mid-way, its restart, the transfer completes and
 * the hashes are equal. The final screens are saved under `test-results/tmux/`.
 *
 * Needs root (namespaces) and tmux; skips with the reason printed otherwise.
 */
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { NetnsLab, netnsUnavailableReason } from '../helpers/netns.ts';
import { cleanEnv } from '../helpers/sdnet-proc.ts';
import { Tmux, shq, tmuxUnavailableReason } from '../helpers/tmux.ts';
import { sha256File, writeBigFile } from '../helpers/transfer-tree.ts';

const reason = netnsUnavailableReason() ?? tmuxUnavailableReason();
if (reason !== undefined) console.log(`[skip] CLI session in tmux (netns, relay only): ${reason}`);

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SDNET_BIN = join(ROOT, 'bin/sdnet.js');
const RELAY_BIN = join(ROOT, 'bin/sdnet-relay.js');
const ARTIFACTS = join(ROOT, 'test-results/tmux');
const MiB = 1024 * 1024;
const SIZE = 200 * MiB;

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** The progress bar `sdnet send` draws on a TTY: bar, percent, bytes, rate, ETA. */
const PROGRESS = /\[[#.]{30}\]\s+(\d+)% [\d.]+ \S+\/[\d.]+ \S+ [\d.]+ \S+\/s ETA \d+:\d\d/g;

describe.skipIf(reason !== undefined)('a CLI session in tmux, relay only (root)', () => {
  it('up, pair with the words on screen, devices via relay, msg, send 200 MiB with a progress bar, kill -9 the receiver, restart, identical', { timeout: 900_000 }, async () => {
    const lab = await NetnsLab.create(['relay', 'a', 'b']);
    cleanups.push(() => lab.destroy());
    await lab.switchFilter('meta l4proto udp counter drop comment "udp"');
    const root = await mkdtemp(join(tmpdir(), 'sdnet-tmux-'));
    cleanups.push(() => rm(root, { recursive: true, force: true }));
    // `sdnet` and `sdnet-relay` on PATH, as an installed package puts them.
    const bin = join(root, 'bin');
    await mkdir(bin);
    for (const [name, target] of [['sdnet', SDNET_BIN], ['sdnet-relay', RELAY_BIN]] as const) {
      await writeFile(join(bin, name), `#!/bin/sh\nexec ${shq(process.execPath)} ${shq(target)} "$@"\n`);
      await chmod(join(bin, name), 0o755);
    }
    const env = cleanEnv({ PATH: `${bin}:${dirname(process.execPath)}:${process.env.PATH ?? '/usr/bin:/bin'}`, PS1: '$ ', HOME: root });
    const tmux = await Tmux.start({ env, width: 180, height: 60 });
    cleanups.push(async () => {
      await mkdir(ARTIFACTS, { recursive: true });
      for (const w of ['relay', 'a-up', 'b-up', 'a', 'b']) {
        const text = await tmux.screen(w).catch(() => undefined);
        if (text !== undefined) await writeFile(join(ARTIFACTS, `${w}.txt`), text);
      }
      await tmux.stop();
    });
    const shell = (host: string) => ['ip', 'netns', 'exec', lab.hosts[host]!.netns, 'bash', '--noprofile', '--norc'];
    for (const [w, host] of [['relay', 'relay'], ['a-up', 'a'], ['b-up', 'b'], ['a', 'a'], ['b', 'b']] as const) await tmux.window(w, shell(host));
    const dirA = join(root, 'alice');
    const dirB = join(root, 'bob');
    const dl = join(root, 'received');

    // The relay.
    await tmux.type('relay', `sdnet-relay --host ${lab.hosts.relay!.addr} --port 3340`);
    const url = ((await tmux.waitFor('relay', /http:\/\/[\d.]+:3340\/?/, 60_000, 'the relay URL')) as RegExpMatchArray)[0];

    // Two devices up.
    await tmux.type('a-up', `sdnet init --data ${shq(dirA)} --name alice && sdnet up --data ${shq(dirA)} --relay ${url}`);
    await tmux.type('b-up', `sdnet init --data ${shq(dirB)} --name bob && sdnet up --data ${shq(dirB)} --relay ${url} --downloads ${shq(dl)}`);
    await tmux.waitFor('a-up', /^online [0-9a-f]{64} /m, 60_000, 'alice online');
    await tmux.waitFor('b-up', /^online [0-9a-f]{64} /m, 60_000, 'bob online');

    // Pair: the words are read off alice's screen and typed on bob's.
    await tmux.type('a', `sdnet pair invite --data ${shq(dirA)}`);
    const words = ((await tmux.waitFor('a', /^((?:[a-z]+ ){11}[a-z]+)\s*$/m, 60_000, 'the 12 words')) as RegExpMatchArray)[1]!;
    await tmux.type('b', `sdnet pair join ${words} --data ${shq(dirB)}`);
    await tmux.waitFor('b', /^paired with alice \(\S+\)/m, 90_000, 'bob paired');
    await tmux.waitFor('a', /^paired with bob \(\S+\)/m, 30_000, 'alice paired');

    // Both connected, via the relay (UDP is dropped), as `sdnet devices` shows it.
    for (const [w, dir, other] of [['a', dirA, 'bob'], ['b', dirB, 'alice']] as const) {
      const row = new RegExp(`^${other}\\s+\\S+\\s+connected\\s+relay\\b`, 'm');
      const deadline = Date.now() + 60_000;
      for (;;) {
        const r = await tmux.run(w, `sdnet devices --data ${shq(dir)}`, 30_000);
        expect(r.status).toBe(0);
        if (row.test(r.output)) break;
        if (Date.now() > deadline) throw new Error(`${w}: ${other} not connected via relay; sdnet devices shows:\n${r.output}`);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }

    // A message: delivered, and shown by bob's up.
    const msg = await tmux.run('a', `sdnet msg --data ${shq(dirA)} bob 'hello from the tmux session'`, 60_000);
    expect(msg).toMatchObject({ status: 0, output: expect.stringMatching(/^delivered in [\d.]+ ms$/m) });
    await tmux.waitFor('b-up', /message from alice: hello from the tmux session/, 30_000, 'bob shows the message');

    // 200 MiB with a progress bar; bob's up killed -9 mid-way and started again.
    const big = join(root, 'big.bin');
    await writeBigFile(big, SIZE);
    await tmux.type('a', 'clear');
    await tmux.type('a', `sdnet send --data ${shq(dirA)} bob ${shq(big)}`);
    const bars: string[] = [];
    await tmux.waitFor(
      'a',
      (s) => {
        const all = [...s.matchAll(PROGRESS)];
        const last = all.at(-1);
        if (last) bars.push(last[0]);
        return last !== undefined && Number(last[1]) >= 25 && Number(last[1]) < 90;
      },
      600_000,
      'the progress bar past 25 %',
    );
    await tmux.type('b', `pkill -9 -f -- ${shq(`up --data ${dirB}`)}`);
    await tmux.waitFor('b-up', /Killed/, 30_000, 'bash reports the receiver killed');
    await tmux.type('b-up', `sdnet up --data ${shq(dirB)} --relay ${url} --downloads ${shq(dl)}`);
    const done = ((await tmux.waitFor('a', /^sent 1 files, (\d+) bytes, verified by bob$/m, 780_000, 'the send verified')) as RegExpMatchArray)[1];
    expect(Number(done)).toBe(SIZE);
    // The bar moved (several distinct draws, rate and ETA on each).
    expect(new Set(bars).size).toBeGreaterThan(1);
    expect(await sha256File(join(dl, 'big.bin'))).toBe(await sha256File(big));
    await tmux.key('a-up', 'C-c');
    await tmux.key('b-up', 'C-c');
  });
});
