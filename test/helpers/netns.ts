/**
 * Network-namespace labs for tests that need the kernel itself to misbehave: blocked UDP,
 * loss, NAT (shared/docs/reliability.md §6). Needs root (CAP_NET_ADMIN), `ip` (iproute2) and
 * `nft` (nftables); {@link netnsUnavailableReason} says why a lab cannot run so the test can
 * skip with that reason printed.
 *
 * A lab is a set of hosts (one namespace each) plugged into one switch (a bridge inside its
 * own namespace), addresses 10.77.0.x/24 in the order given. Nothing touches the host's own
 * interfaces: every link is created directly inside the lab's namespaces.
 *
 * ```ts
 * const lab = await NetnsLab.create(['relay', 'a', 'b']);
 * try {
 *   await lab.switchFilter('meta l4proto udp counter drop'); // no UDP between any hosts
 *   const h = await lab.addRule('switch', 'bridge', 'lab', 'filter_forward', 'meta l4proto tcp drop');
 *   await lab.deleteRule('switch', 'bridge', 'lab', 'filter_forward', h);  // blackhole over
 *   const child = lab.spawn('relay', [process.execPath, 'server.js']);
 *   await lab.exec('a', ['ip', 'addr']);
 * } finally {
 *   await lab.destroy();  // kills children, deletes the namespaces
 * }
 * ```
 *
 * Labs are also destroyed on process exit, and {@link reapStaleLabs} removes namespaces left
 * behind by a process that was killed.
 */
import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';

const PREFIX = 'sdnt';
const IP = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip'].find((p) => existsSync(p)) ?? 'ip';
const NFT = ['/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft'].find((p) => existsSync(p)) ?? 'nft';

export interface CommandResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Run a command; resolves with its output and exit code (never rejects on a non-zero exit). */
export function run(cmd: string, args: readonly string[], options: { input?: string; timeoutMs?: number } = {}): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, [...args], { timeout: options.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1;
      resolve({ stdout: String(stdout), stderr: String(stderr) + (err !== null && code === 1 && !stderr ? err.message : ''), code });
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

async function must(cmd: string, args: readonly string[], input?: string): Promise<string> {
  const r = await run(cmd, args, { input });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

/**
 * Why namespace labs cannot run here, or `undefined` if they can: needs root and working
 * `ip netns` and `nft`.
 */
export function netnsUnavailableReason(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'network namespace tests need root (CAP_NET_ADMIN); running as a normal user';
  try {
    execFileSync(IP, ['-V'], { stdio: 'ignore' });
  } catch {
    return 'the `ip` command (iproute2) is not installed';
  }
  try {
    execFileSync(NFT, ['--version'], { stdio: 'ignore' });
  } catch {
    return 'the `nft` command (nftables) is not installed';
  }
  const probe = `${PREFIX}-probe-${process.pid}`;
  try {
    execFileSync(IP, ['netns', 'add', probe], { stdio: 'pipe' });
    execFileSync(IP, ['netns', 'del', probe], { stdio: 'pipe' });
  } catch (err) {
    return `cannot create network namespaces here: ${(err as Error).message.split('\n')[0]}`;
  }
  return undefined;
}

/**
 * The command prefix that runs a program in a fresh, private network namespace (only `lo`),
 * as root or — where the kernel allows unprivileged user namespaces — as a normal user.
 * Returns the reason instead when neither works.
 */
export function privateNetnsPrefix(): { prefix: string[] } | { reason: string } {
  if (process.platform !== 'linux') return { reason: `network namespaces need Linux (this is ${process.platform})` };
  const unshare = ['/usr/bin/unshare', '/bin/unshare'].find((p) => existsSync(p));
  if (unshare === undefined) return { reason: 'the `unshare` command (util-linux) is not installed' };
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const prefix = isRoot ? [unshare, '--net'] : [unshare, '--user', '--map-root-user', '--net'];
  try {
    execFileSync(prefix[0]!, [...prefix.slice(1), IP, 'link', 'set', 'lo', 'up'], { stdio: 'pipe' });
    execFileSync(prefix[0]!, [...prefix.slice(1), NFT, 'list', 'ruleset'], { stdio: 'pipe' });
  } catch (err) {
    return { reason: `cannot run in a private network namespace with nftables (${isRoot ? 'root' : 'unprivileged user namespaces'}): ${(err as Error).message.split('\n')[0]}` };
  }
  return { prefix };
}

export interface LabHost {
  /** The logical name given to {@link NetnsLab.create}. */
  name: string;
  /** The namespace name (for `ip netns exec`). */
  netns: string;
  /** IPv4 address on the switch. */
  addr: string;
  /** Interface name inside the host namespace. */
  iface: string;
}

/** SIGKILL every child still running and wait until each has exited. */
export async function killAndWait(children: Iterable<ChildProcess>): Promise<void> {
  await Promise.all(
    [...children].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          c.once('exit', () => resolve());
          c.kill('SIGKILL');
        }),
    ),
  );
}

const liveLabs = new Set<{ destroySync(): void }>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const lab of liveLabs) lab.destroySync();
  });
}

/** Delete lab namespaces whose creating process no longer exists. */
export function reapStaleLabs(): void {
  let names: string[];
  try {
    names = readdirSync('/var/run/netns');
  } catch {
    return;
  }
  for (const n of names) {
    const m = new RegExp(`^${PREFIX}-(\\d+)-`).exec(n);
    if (m === null) continue;
    const pid = Number(m[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    if (!alive) {
      try {
        execFileSync(IP, ['netns', 'del', n], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
  }
}

export class NetnsLab {
  readonly id: string;
  readonly hosts: Readonly<Record<string, LabHost>>;
  /** The namespace holding the switch (bridge `br0`). */
  readonly switchNetns: string;
  readonly #children = new Set<ChildProcess>();
  #destroyed = false;

  private constructor(id: string, hosts: Record<string, LabHost>, switchNetns: string) {
    this.id = id;
    this.hosts = hosts;
    this.switchNetns = switchNetns;
  }

  /**
   * Create a lab: one namespace per name, all on one switch, addresses 10.77.0.1, .2, … in
   * order. On any failure everything created so far is removed.
   */
  static async create(names: readonly string[]): Promise<NetnsLab> {
    if (names.length === 0 || names.length > 200) throw new RangeError('a lab needs 1–200 hosts');
    if (new Set(names).size !== names.length) throw new RangeError('host names must be unique');
    reapStaleLabs();
    installExitHook();
    const id = `${PREFIX}-${process.pid}-${randomBytes(3).toString('hex')}`;
    const sw = `${id}-sw`;
    const hosts: Record<string, LabHost> = {};
    names.forEach((name, i) => {
      hosts[name] = { name, netns: `${id}-${i}`, addr: `10.77.0.${i + 1}`, iface: 'eth0' };
    });
    const lab = new NetnsLab(id, hosts, sw);
    liveLabs.add(lab);
    try {
      await must(IP, ['netns', 'add', sw]);
      await must(IP, ['-n', sw, 'link', 'set', 'lo', 'up']);
      await must(IP, ['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
      await must(IP, ['-n', sw, 'link', 'set', 'br0', 'up']);
      let i = 0;
      for (const h of Object.values(hosts)) {
        await must(IP, ['netns', 'add', h.netns]);
        // Both ends are created inside the lab: nothing appears in the host's namespace.
        await must(IP, ['link', 'add', 'name', h.iface, 'netns', h.netns, 'type', 'veth', 'peer', 'name', `p${i}`, 'netns', sw]);
        await must(IP, ['-n', sw, 'link', 'set', `p${i}`, 'master', 'br0']);
        await must(IP, ['-n', sw, 'link', 'set', `p${i}`, 'up']);
        await must(IP, ['-n', h.netns, 'addr', 'add', `${h.addr}/24`, 'dev', h.iface]);
        await must(IP, ['-n', h.netns, 'link', 'set', h.iface, 'up']);
        await must(IP, ['-n', h.netns, 'link', 'set', 'lo', 'up']);
        i++;
      }
    } catch (err) {
      await lab.destroy();
      throw err;
    }
    return lab;
  }

  #host(name: string): LabHost {
    const h = this.hosts[name];
    if (h === undefined) throw new RangeError(`no host ${name} in this lab`);
    return h;
  }

  /** Run a command inside a host's namespace and collect its output. */
  exec(host: string, argv: readonly string[], options: { input?: string; timeoutMs?: number } = {}): Promise<CommandResult> {
    return run(IP, ['netns', 'exec', this.#host(host).netns, ...argv], options);
  }

  /** Start a long-running process inside a host's namespace; it is killed by {@link destroy}. */
  spawn(host: string, argv: readonly string[], options: SpawnOptions = {}): ChildProcess {
    const child = spawn(IP, ['netns', 'exec', this.#host(host).netns, ...argv], { stdio: ['pipe', 'pipe', 'pipe'], ...options });
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    return child;
  }

  /** Load an nftables ruleset (`nft -f` syntax) into a host's namespace. */
  async nft(host: string, ruleset: string): Promise<void> {
    const r = await this.exec(host, [NFT, '-f', '-'], { input: ruleset });
    if (r.code !== 0) throw new Error(`nft in ${host} failed: ${r.stderr.trim()}`);
  }

  /**
   * Filter traffic crossing the switch between hosts, with nftables bridge rules, e.g.
   * `'meta l4proto udp counter drop'`. Returns nothing; read counters with {@link nftList}.
   */
  async switchFilter(...rules: string[]): Promise<void> {
    const ruleset = `table bridge lab {\n  chain filter_forward {\n    type filter hook forward priority 0; policy accept;\n${rules.map((r) => `    ${r}\n`).join('')}  }\n}\n`;
    const r = await run(IP, ['netns', 'exec', this.switchNetns, NFT, '-f', '-'], { input: ruleset });
    if (r.code !== 0) throw new Error(`nft on the switch failed: ${r.stderr.trim()}`);
  }

  #nsOf(host: string): string {
    return host === 'switch' ? this.switchNetns : this.#host(host).netns;
  }

  /**
   * Add one rule to an existing chain of a host (`'switch'` for the switch) and return its
   * handle, e.g. to open a blackhole window and close it again with {@link deleteRule}.
   */
  async addRule(host: string, family: string, table: string, chain: string, rule: string): Promise<number> {
    const out = await must(IP, ['netns', 'exec', this.#nsOf(host), NFT, '--echo', '--handle', 'add', 'rule', family, table, chain, rule]);
    const m = /# handle (\d+)/.exec(out);
    if (m === null) throw new Error(`nft did not report a handle: ${out}`);
    return Number(m[1]);
  }

  /** Delete a rule by the handle {@link addRule} returned. */
  async deleteRule(host: string, family: string, table: string, chain: string, handle: number): Promise<void> {
    await must(IP, ['netns', 'exec', this.#nsOf(host), NFT, 'delete', 'rule', family, table, chain, 'handle', String(handle)]);
  }

  /** Remove the switch filter. */
  async clearSwitchFilter(): Promise<void> {
    await run(IP, ['netns', 'exec', this.switchNetns, NFT, 'delete', 'table', 'bridge', 'lab']);
  }

  /** The ruleset of a host (`'switch'` for the switch), with counters. */
  async nftList(host: string | 'switch'): Promise<string> {
    return must(IP, ['netns', 'exec', this.#nsOf(host), NFT, 'list', 'ruleset']);
  }

  /** Kill every child and delete every namespace of the lab. Safe to call twice. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    liveLabs.delete(this);
    await killAndWait(this.#children);
    for (const h of Object.values(this.hosts)) await run(IP, ['netns', 'del', h.netns]);
    await run(IP, ['netns', 'del', this.switchNetns]);
  }

  /** Synchronous variant for `process.on('exit')`. */
  destroySync(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const c of this.#children) c.kill('SIGKILL');
    for (const ns of [...Object.values(this.hosts).map((h) => h.netns), this.switchNetns]) {
      try {
        execFileSync(IP, ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
  }

  /** Whether the lab's namespaces still exist (for cleanup checks). */
  static namespacesOf(labId: string): string[] {
    try {
      return readdirSync('/var/run/netns').filter((n) => n.startsWith(`${labId}-`));
    } catch {
      return [];
    }
  }
}

/**
 * Collects a child's stdout JSON lines from the moment it is created (nothing is lost between
 * waits) and its stderr tail for error messages.
 */
export class JsonLines {
  readonly objects: Array<Record<string, unknown>> = [];
  /** Every stdout line, JSON or not. */
  readonly lines: string[] = [];
  stderr = '';
  #buf = '';
  #exit: number | null | undefined;
  #waiters = new Set<() => void>();

  constructor(child: ChildProcess) {
    child.stdout?.on('data', (chunk: Buffer) => {
      this.#buf += chunk.toString('utf8');
      let nl;
      while ((nl = this.#buf.indexOf('\n')) >= 0) {
        const line = this.#buf.slice(0, nl).trim();
        this.#buf = this.#buf.slice(nl + 1);
        this.lines.push(line);
        if (!line.startsWith('{')) continue;
        try {
          this.objects.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          continue;
        }
      }
      this.#wake();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString('utf8')).slice(-8000);
    });
    child.once('exit', (code) => {
      this.#exit = code;
      this.#wake();
    });
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }

  /** The first stdout line matching `pattern`; waits for it up to `timeoutMs`. */
  waitText(pattern: RegExp, timeoutMs: number, what = String(pattern)): Promise<string> {
    return this.#waitFor(() => this.lines.find((l) => pattern.test(l)), timeoutMs, what);
  }

  /** The first collected object (in order) matching `match`; waits for it up to `timeoutMs`. */
  wait<T = Record<string, unknown>>(match: (obj: Record<string, unknown>) => boolean, timeoutMs: number, what = 'a line'): Promise<T> {
    return this.#waitFor(() => this.objects.find(match) as T | undefined, timeoutMs, what);
  }

  #waitFor<T>(find: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const hit = find();
        if (hit !== undefined) {
          done();
          resolve(hit);
        } else if (this.#exit !== undefined) {
          done();
          reject(new Error(`child exited (${this.#exit}) before ${what}; stderr: ${this.stderr}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; stderr: ${this.stderr}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }
}

/**
 * NAT behaviour of a site's router (shared/docs/holepunch.md §5.1 profiles): `none` routes the
 * site's public addresses; `cone` is endpoint-independent mapping and filtering (the full-cone
 * map, patchbay's Open); `home` is that mapping with address-and-port-dependent filtering
 * (patchbay's Moderate, a typical home router); `strict` maps each destination to a random
 * port (EDM) and filters (APDF).
 */
export type NatProfile = 'none' | 'cone' | 'home' | 'strict';

export interface NatSite {
  readonly name: string;
  readonly nat: NatProfile;
  /** The router's address on the public bridge (what a NAT maps to). */
  readonly wan: string;
  /** The host's address behind the router (public for `none`). */
  readonly addr: string;
  readonly routerNetns: string;
  readonly hostNetns: string;
}

/**
 * A small internet in namespaces (holepunch.md §5.1): a public bridge 203.0.113.0/24 whose
 * namespace `public` holds 203.0.113.10 (a relay lives there), and per site a router
 * (203.0.113.<i> on the bridge) with a host behind it: 10.0.<i>.2 behind a NAT, or
 * 198.51.10<i>.2 routed when the site has none.
 */
export class NatLab {
  readonly id: string;
  readonly publicNetns: string;
  readonly publicAddr = '203.0.113.10';
  readonly sites: Readonly<Record<string, NatSite>>;
  readonly #children = new Set<ChildProcess>();
  #destroyed = false;

  private constructor(id: string, sites: Record<string, NatSite>) {
    this.id = id;
    this.publicNetns = `${id}-P`;
    this.sites = sites;
  }

  static async create(sites: ReadonlyArray<{ name: string; nat: NatProfile }>): Promise<NatLab> {
    if (sites.length === 0 || sites.length > 9) throw new RangeError('a NAT lab has 1–9 sites');
    reapStaleLabs();
    installExitHook();
    const id = `${PREFIX}-${process.pid}-${randomBytes(3).toString('hex')}`;
    const all: Record<string, NatSite> = {};
    sites.forEach((s, k) => {
      const i = k + 1;
      all[s.name] = { name: s.name, nat: s.nat, wan: `203.0.113.${i}`, addr: s.nat === 'none' ? `198.51.10${i}.2` : `10.0.${i}.2`, routerNetns: `${id}-R${i}`, hostNetns: `${id}-H${i}` };
    });
    const lab = new NatLab(id, all);
    liveLabs.add(lab);
    const P = lab.publicNetns;
    try {
      await must(IP, ['netns', 'add', P]);
      await must(IP, ['-n', P, 'link', 'add', 'br0', 'type', 'bridge']);
      await must(IP, ['-n', P, 'link', 'set', 'br0', 'up']);
      await must(IP, ['-n', P, 'link', 'set', 'lo', 'up']);
      await must(IP, ['-n', P, 'addr', 'add', `${lab.publicAddr}/24`, 'dev', 'br0']);
      await must(IP, ['netns', 'exec', P, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
      let i = 0;
      for (const s of Object.values(all)) {
        i++;
        const R = s.routerNetns;
        const H = s.hostNetns;
        const lan = s.addr.slice(0, s.addr.lastIndexOf('.'));
        await must(IP, ['netns', 'add', R]);
        await must(IP, ['netns', 'add', H]);
        await must(IP, ['link', 'add', `p${i}`, 'netns', P, 'type', 'veth', 'peer', 'name', 'wan', 'netns', R]);
        await must(IP, ['link', 'add', 'lan', 'netns', R, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', H]);
        await must(IP, ['-n', P, 'link', 'set', `p${i}`, 'master', 'br0']);
        await must(IP, ['-n', P, 'link', 'set', `p${i}`, 'up']);
        await must(IP, ['-n', R, 'addr', 'add', `${s.wan}/24`, 'dev', 'wan']);
        await must(IP, ['-n', R, 'addr', 'add', `${lan}.1/24`, 'dev', 'lan']);
        for (const d of ['wan', 'lan', 'lo']) await must(IP, ['-n', R, 'link', 'set', d, 'up']);
        await must(IP, ['-n', R, 'route', 'add', 'default', 'via', lab.publicAddr]);
        await must(IP, ['netns', 'exec', R, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
        await must(IP, ['-n', H, 'addr', 'add', `${s.addr}/24`, 'dev', 'eth0']);
        for (const d of ['eth0', 'lo']) await must(IP, ['-n', H, 'link', 'set', d, 'up']);
        await must(IP, ['-n', H, 'route', 'add', 'default', 'via', `${lan}.1`]);
        if (s.nat === 'none') await must(IP, ['-n', P, 'route', 'add', `${lan}.0/24`, 'via', s.wan]);
        else {
          const r = await run(IP, ['netns', 'exec', R, NFT, '-f', '-'], { input: natRuleset(s.nat, s.wan) });
          if (r.code !== 0) throw new Error(`nft in router ${s.name} failed: ${r.stderr.trim()}`);
        }
      }
    } catch (err) {
      await lab.destroy();
      throw err;
    }
    return lab;
  }

  #ns(where: string): string {
    if (where === 'public') return this.publicNetns;
    const [site, role] = where.split('/');
    const s = this.sites[site!];
    if (s === undefined) throw new RangeError(`no site ${site} in this lab`);
    return role === 'router' ? s.routerNetns : s.hostNetns;
  }

  /** Run a command in `public`, `<site>` (its host) or `<site>/router`. */
  exec(where: string, argv: readonly string[], options: { input?: string; timeoutMs?: number } = {}): Promise<CommandResult> {
    return run(IP, ['netns', 'exec', this.#ns(where), ...argv], options);
  }

  /** Start a long-running process in `public`, `<site>` or `<site>/router`; killed by {@link destroy}. */
  spawn(where: string, argv: readonly string[], options: SpawnOptions = {}): ChildProcess {
    const child = spawn(IP, ['netns', 'exec', this.#ns(where), ...argv], { stdio: ['pipe', 'pipe', 'pipe'], ...options });
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    return child;
  }

  #namespaces(): string[] {
    return [this.publicNetns, ...Object.values(this.sites).flatMap((s) => [s.routerNetns, s.hostNetns])];
  }

  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    liveLabs.delete(this);
    await killAndWait(this.#children);
    for (const ns of this.#namespaces()) await run(IP, ['netns', 'del', ns]);
  }

  destroySync(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const c of this.#children) c.kill('SIGKILL');
    for (const ns of this.#namespaces()) {
      try {
        execFileSync(IP, ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
  }
}

/** The router's nftables for a NAT profile (holepunch.md §5.1; WAN interface `wan`). */
function natRuleset(nat: Exclude<NatProfile, 'none'>, wan: string): string {
  // nft 1.0.6 does not parse these on one line: one statement per line.
  const apdf = `table ip filt {
  chain forward {
    type filter hook forward priority 0; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" drop
  }
}
`;
  // Plain masquerade is racy as an EIM NAT (holepunch.md §5): the full-cone map is reliable.
  const eim = `table ip nat {
  map fullcone {
    type inet_service : ipv4_addr . inet_service
    flags dynamic,timeout
    timeout 300s
    size 65536
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    iifname "wan" meta l4proto udp dnat to udp dport map @fullcone
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" meta l4proto udp update @fullcone { udp sport timeout 300s : ip saddr . udp sport }
    oifname "wan" snat to ${wan}
  }
}
`;
  const edm = `table ip nat {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade random,fully-random
  }
}
`;
  if (nat === 'cone') return eim;
  if (nat === 'home') return apdf + eim;
  return apdf + edm;
}
