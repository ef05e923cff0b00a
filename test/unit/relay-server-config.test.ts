/**
 * The relay server's pure parts: config files (TOML via smol-toml, JSON) and their range checks, flags + config file resolution, the
 * token bucket, the backoff schedule, the Prometheus text, the client registry bounds; and the
 * `sdnet-relay` binary end to end (URL on stdout, JSON logs on stderr, exit statuses).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { SecretKey } from '../../src/identity/index.ts';
import { Backoff, RelayClient } from '../../src/relay/client/index.ts';
import { ConfigError, parseCli, readConfigFile } from '../../relay-server/src/config.ts';
import { TokenBucket } from '../../relay-server/src/rate-limit.ts';
import { MetricsRegistry, parsePrometheusText } from '../../relay-server/src/metrics.ts';
import { ClientRegistry, type RegisteredConn } from '../../relay-server/src/clients.ts';
import { AccessList } from '../../relay-server/src/access.ts';
import { JsonLines } from '../helpers/netns.ts';
import { TEST_CA_PEM, TEST_LEAF_CERT_PEM, TEST_LEAF_KEY_PEM } from '../helpers/relay-tls-fixture.ts';

describe('config files: TOML through smol-toml, JSON, and the range checks', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sdnet-relay-toml-'));
  let n = 0;
  const file = (text: string, ext = 'toml'): string => {
    const p = join(dir, `c${++n}.${ext}`);
    writeFileSync(p, text);
    return p;
  };

  it('reads a full TOML document: tables, dotted keys, strings, integers with separators, arrays', () => {
    const doc = readConfigFile(
      file(`
# relay config
host = "0.0.0.0"   # all interfaces
port = 3_340
log_level = 'debug'
[tls]
cert_file = "/etc/relay/cert.pem"
key_file = """/etc/relay/key.pem"""
[access]
tokens = [
  "a\\tb",  # trailing comma allowed
  'c\\d',
]
[limits]
max_clients = 0x10
"quoted key".x = 1
`),
    );
    expect(doc).toEqual({
      host: '0.0.0.0',
      port: 3340,
      log_level: 'debug',
      tls: { cert_file: '/etc/relay/cert.pem', key_file: '/etc/relay/key.pem' },
      access: { tokens: ['a\tb', 'c\\d'] },
      limits: { max_clients: 16, 'quoted key': { x: 1 } },
    });
  });

  // Each of these is invalid TOML 1.0; the old hand-written parser accepted the first three
  // and overflowed the stack on the last.
  const invalid: Array<[string, string]> = [
    ['an inline table extended by a dotted key', 'limits = { max_clients = 1 }\nlimits.max_handshaking = 2'],
    ['an inline table extended by a table header', 'limits = { max_clients = 1 }\n[limits.x]\ny = 1'],
    ['an inline table redefined by a table header', 'limits = { max_clients = 1 }\n[limits]'],
    ['a control character (U+0001) in a basic string', 'host = "a\u0001b"'],
    ['a control character (U+007F) in a literal string', "host = 'a\u007fb'"],
    ['a control character in a comment', 'port = 1 # \u0000'],
    ['a redefined key', 'port = 1\nport = 2'],
    ['garbage after a value', 'port = 1 2'],
    ['an unterminated string', 'host = "abc'],
    ['a bad escape', 'host = "\\q"'],
    ['a key without a value', 'port ='],
    ['10,000 nested arrays', `port = ${'['.repeat(10_000)}${']'.repeat(10_000)}`],
    ['10,000 nested inline tables', `port = ${'{ a = '.repeat(10_000)}1${' }'.repeat(10_000)}`],
  ];
  for (const [name, text] of invalid) {
    it(`rejects ${name} with a one-line ConfigError naming the line`, () => {
      const p = file(text);
      let err: unknown;
      try {
        readConfigFile(p);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).not.toContain('\n');
      expect((err as Error).message).toMatch(/^Cannot parse config file .*: line \d+, column \d+: /);
    });
  }

  it('refuses __proto__ and constructor keys instead of keeping them', () => {
    expect(() => readConfigFile(file('__proto__ = 1'))).toThrow(ConfigError);
    expect(() => readConfigFile(file('[constructor]\nx = 2'))).toThrow(ConfigError);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });

  it('refuses a JSON document nested 10,000 deep or that is not an object with a one-line ConfigError', () => {
    for (const text of [`{"limits": ${'['.repeat(10_000)}${']'.repeat(10_000)}}`, '[1]', '"x"', '{"a": 1,}']) {
      let err: unknown;
      try {
        parseCli(['--config', file(text, 'json')]);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).not.toContain('\n');
    }
  });

  // Every numeric option is an integer within its range: a timer past 2^31 − 1 ms would
  // silently become a 1 ms spin, and a size past 2^53 cannot even be represented.
  const outOfRange: Array<[string, string]> = [
    ['tick_ms = 3000000000 (Node would make it a 1 ms interval)', '[timing]\ntick_ms = 3000000000'],
    ['tick_ms = 0', '[timing]\ntick_ms = 0'],
    ['ping_interval_ms = 1.5', '[timing]\nping_interval_ms = 1.5'],
    ['a negative write timeout', '[limits]\nwrite_timeout_ms = -1'],
    ['an integer beyond 2^53', '[limits]\nmax_clients = 9007199254740993'],
    ['an integer beyond 2^63', '[limits]\nsend_queue_bytes = 99999999999999999999'],
    ['a string where an integer belongs', '[limits]\nmax_clients = "10"'],
    ['inf', '[limits]\nmax_clients = inf'],
    ['nan', '[rate_limit]\nbytes_per_second = nan'],
    ['a boolean', 'port = true'],
    ['port 65536', 'port = 65536'],
    ['a send queue of 1 byte', '[limits]\nsend_queue_bytes = 1'],
    ['a frame limit below one datagram frame', '[limits]\nmax_frame_bytes = 1000'],
    ['a 100 GiB global queue', '[limits]\nmax_queued_bytes_total = 107374182400'],
    ['a date', 'port = 2024-01-01'],
  ];
  for (const [name, text] of outOfRange) {
    it(`rejects ${name}`, () => {
      expect(() => parseCli(['--config', file(text)])).toThrow(ConfigError);
      expect(() => parseCli(['--config', file(text)])).toThrow(/must be an integer from -?\d+ to \d+, got|must be a/);
    });
  }

  it('accepts every limit and timer at the ends of its range', () => {
    const cfg = parseCli([
      '--config',
      file('[timing]\ntick_ms = 10000\nping_interval_ms = 3600000\n[limits]\nmax_connections_per_ip = 0\naccept_rate_per_ip = 0\nmax_queued_bytes_total = 1048576\nrequest_timeout_ms = 100\n'),
    ]);
    expect(cfg.options.timing).toEqual({ tickMs: 10_000, pingIntervalMs: 3_600_000 });
    expect(cfg.options.limits).toMatchObject({ maxConnectionsPerIp: 0, acceptRatePerIp: 0, maxQueuedBytesTotal: 1_048_576, requestTimeoutMs: 100 });
  });

  it('checks flags against the same ranges', () => {
    for (const argv of [['--handshake-timeout-ms', '3000000000'], ['--max-clients', '0'], ['--accept-rate-per-ip', '-1'], ['--port', '99999999999999999999']]) {
      expect(() => parseCli(argv)).toThrow(ConfigError);
    }
    expect(parseCli(['--max-handshaking-per-ip', '0', '--accept-rate-per-ip', '0']).options.limits).toMatchObject({ maxHandshakingPerIp: 0, acceptRatePerIp: 0 });
  });
});

describe('sdnet-relay flags and config file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sdnet-relay-cfg-'));
  const file = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  it('defaults: 127.0.0.1:3340, metrics on 127.0.0.1:9090, info logs', () => {
    const cfg = parseCli([]);
    expect(cfg.options).toMatchObject({ host: '127.0.0.1', port: 3340, metrics: { host: '127.0.0.1', port: 9090 } });
    expect(cfg.logLevel).toBe('info');
  });

  it('keeps metrics on 127.0.0.1 with --host 0.0.0.0 unless --metrics-host (or the file) says otherwise', () => {
    expect(parseCli(['--host', '0.0.0.0']).options.metrics).toEqual({ host: '127.0.0.1', port: 9090 });
    expect(parseCli(['--host', '0.0.0.0', '--metrics-port', '9100']).options.metrics).toEqual({ host: '127.0.0.1', port: 9100 });
    expect(parseCli(['--host', '0.0.0.0', '--metrics-host', '0.0.0.0']).options.metrics).toEqual({ host: '0.0.0.0', port: 9090 });
    expect(parseCli(['--config', file('m.toml', 'host = "0.0.0.0"\n[metrics]\nport = 9100\n')]).options.metrics).toEqual({ host: '127.0.0.1', port: 9100 });
    expect(parseCli(['--config', file('m2.toml', '[metrics]\nhost = "::"\n')]).options.metrics).toEqual({ host: '::', port: 9090 });
  });

  it('reads a TOML file and lets flags override it', () => {
    const id = SecretKey.generate().public().toString();
    const p = file(
      'relay.toml',
      `host = "0.0.0.0"\nport = 443\n[tls]\ncert_file = "c.pem"\nkey_file = "k.pem"\n[access]\nallow_endpoints = ["${id}"]\ntokens = ["t"]\n[rate_limit]\nbytes_per_second = 1000000\n[limits]\nmax_clients = 50\n[metrics]\nport = 9100\n`,
    );
    const cfg = parseCli(['--config', p, '--port', '8443', '--max-clients', '60']);
    expect(cfg.tlsFiles).toEqual({ cert: 'c.pem', key: 'k.pem' });
    expect(cfg.options).toMatchObject({
      host: '0.0.0.0',
      port: 8443,
      access: { allowEndpoints: [id], tokens: ['t'] },
      rateLimit: { bytesPerSecond: 1_000_000 },
      limits: { maxClients: 60 },
      metrics: { port: 9100 },
    });
  });

  it('QUIC address discovery: on at UDP 7842 by default, --qad-port N (0 = any), --no-qad, [qad] in the file', () => {
    expect(parseCli([]).options.qad).toEqual({ port: 7842 });
    expect(parseCli(['--qad-port', '0']).options.qad).toEqual({ port: 0 });
    expect(parseCli(['--no-qad']).options.qad).toBe(false);
    expect(parseCli(['--config', file('qad-off.toml', '[qad]\nenabled = false\n')]).options.qad).toBe(false);
    expect(parseCli(['--config', file('qad-port.toml', '[qad]\nport = 17842\n'), '--qad-port', '1']).options.qad).toEqual({ port: 1 });
    expect(() => parseCli(['--no-qad', '--qad-port', '1'])).toThrow(ConfigError);
    expect(() => parseCli(['--qad-port', '70000'])).toThrow(ConfigError);
  });

  it('reads a JSON file', () => {
    const p = file('relay.json', JSON.stringify({ port: 0, metrics: { enabled: false }, rate_limit: { bytes_per_second: 0 } }));
    expect(parseCli(['--config', p]).options).toMatchObject({ port: 0, metrics: false, rateLimit: false });
  });

  const errors: Array<[string, string[]]> = [
    ['an unknown flag', ['--bogus']],
    ['a bad port', ['--port', '70000']],
    ['a non-numeric limit', ['--max-clients', 'many']],
    ['--tls-cert without --tls-key', ['--tls-cert', 'c.pem']],
    ['a bad log level', ['--log-level', 'chatty']],
    ['--no-metrics with --metrics-port', ['--no-metrics', '--metrics-port', '1']],
    ['an unknown key in the file', ['--config', join(dir, 'typo.json')]],
    ['a missing file', ['--config', join(dir, 'missing.toml')]],
    ['a malformed TOML file', ['--config', join(dir, 'broken.toml')]],
  ];
  writeFileSync(join(dir, 'typo.json'), JSON.stringify({ rate_limt: {} }));
  writeFileSync(join(dir, 'broken.toml'), 'port = = 1');
  for (const [name, argv] of errors) {
    it(`rejects ${name} with a ConfigError`, () => {
      expect(() => parseCli(argv)).toThrow(ConfigError);
    });
  }
});

describe('token bucket (iroh server/streams.rs)', () => {
  it('allows the burst, then makes the caller wait exactly as long as the deficit takes to refill', () => {
    const b = new TokenBucket(1000, 500, 0);
    expect(b.consume(500, 0)).toBe(0);
    expect(b.consume(250, 0)).toBe(250);
    expect(b.tokens(100)).toBeCloseTo(-150);
    expect(b.consume(0, 250)).toBe(0);
    // Refill never exceeds the burst.
    expect(b.tokens(10_000)).toBe(500);
  });
});

describe('reconnect backoff (iroh-wire §1.1)', () => {
  it('doubles from the minimum to the cap, each delay jittered within [base/2, base]', () => {
    const lo = new Backoff({ minMs: 10, maxMs: 16_000, random: () => 0 });
    const hi = new Backoff({ minMs: 10, maxMs: 16_000, random: () => 0.999999 });
    const a = Array.from({ length: 13 }, () => lo.next());
    const b = Array.from({ length: 13 }, () => hi.next());
    expect(a).toEqual([5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 8000, 8000]);
    expect(b).toEqual([10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10240, 16000, 16000]);
    lo.reset();
    expect(lo.next()).toBe(5);
  });
});

describe('Prometheus text', () => {
  it('renders counters with labels and gauges, and parses back', () => {
    const m = new MetricsRegistry();
    const c = m.counter('x_total', 'X');
    c.inc(2);
    c.incLabelled({ reason: 'a"b' }, 3);
    m.gauge('g', 'G', () => 7);
    const text = m.render();
    expect(text).toContain('# TYPE x_total counter\n');
    const parsed = parsePrometheusText(text);
    expect(parsed.get('x_total')).toBe(2);
    expect(parsed.get('x_total{reason="a\\"b"}')).toBe(3);
    expect(parsed.get('g')).toBe(7);
    expect(c.total()).toBe(5);
  });
});

describe('client registry bounds', () => {
  const conn = (key = SecretKey.generate().public()) => {
    const c: RegisteredConn & { status: number[]; gone: string[]; evicted: boolean } = {
      publicKey: key,
      status: [],
      gone: [],
      evicted: false,
      sendStatus: (s) => c.status.push(s),
      sendEndpointGone: (id) => c.gone.push(id.toString()),
      evict: () => (c.evicted = true),
    };
    return c;
  };

  it('remembers at most maxSentTo peers per endpoint, forgetting the oldest', () => {
    const reg = new ClientRegistry({ maxInactive: 2, maxSentTo: 3 });
    const a = conn();
    reg.register('a', a);
    const entry = reg.get('a')!;
    for (const id of ['p1', 'p2', 'p3', 'p4']) reg.recordSentTo(entry, id);
    expect([...entry.sentTo]).toEqual(['p2', 'p3', 'p4']);
  });

  it('keeps at most maxInactive older connections, evicting the oldest, and counts correctly', () => {
    const reg = new ClientRegistry({ maxInactive: 2, maxSentTo: 3 });
    const key = SecretKey.generate().public();
    const cs = [conn(key), conn(key), conn(key), conn(key)];
    cs.forEach((c) => reg.register('k', c));
    expect(cs.map((c) => c.evicted)).toEqual([true, false, false, false]);
    expect(reg.connections).toBe(3);
    // The evicted one leaving later changes nothing.
    reg.unregister('k', cs[0]!);
    expect(reg.connections).toBe(3);
    reg.unregister('k', cs[3]!);
    expect(cs[2]!.status.at(-1)).toBe(0);
    expect(reg.connections).toBe(2);
  });
});

describe('access list', () => {
  it('is open without a policy, and admits listed ids or tokens with one', () => {
    const id = SecretKey.generate().public();
    const other = SecretKey.generate().public();
    expect(new AccessList().check({ endpointId: id, token: undefined, remoteAddress: undefined })).toEqual({ allow: true });
    const list = new AccessList({ allowEndpoints: [id.toString()], tokens: ['t'] });
    expect(list.check({ endpointId: id, token: undefined, remoteAddress: undefined }).allow).toBe(true);
    expect(list.check({ endpointId: other, token: 't', remoteAddress: undefined }).allow).toBe(true);
    expect(list.check({ endpointId: other, token: 'x', remoteAddress: undefined })).toEqual({ allow: false, reason: 'not authorized' });
    expect(() => list.update({ allowEndpoints: ['not-a-key'] })).toThrow();
    // A failed update leaves the old policy in place.
    expect(list.check({ endpointId: id, token: undefined, remoteAddress: undefined }).allow).toBe(true);
  });
});

describe('the sdnet-relay binary', () => {
  const bin = fileURLToPath(new URL('../../bin/sdnet-relay.js', import.meta.url));

  it('prints its URL once it accepts connections, logs JSON on stderr, and exits 0 after SIGTERM', async () => {
    const child = spawn(process.execPath, [bin, '--port', '0', '--metrics-port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = new JsonLines(child);
    const url = await out.waitText(/^http/, 15_000, 'the URL line');
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    // Accepting connections: the moment the URL is printed.
    expect((await fetch(new URL('/ping', url))).status).toBe(200);
    const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const logs = out.stderr.trim().split('\n').map((l) => JSON.parse(l) as { level: string; msg: string; url?: string });
    expect(logs[0]).toMatchObject({ level: 'info', msg: 'relay listening', url });
    expect(logs.at(-1)).toMatchObject({ msg: 'relay stopped' });
  });

  it('serves HTTPS from --tls-cert/--tls-key files; a client trusting the CA authenticates with the TLS header', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sdnet-relay-tls-'));
    writeFileSync(join(dir, 'cert.pem'), TEST_LEAF_CERT_PEM);
    writeFileSync(join(dir, 'key.pem'), TEST_LEAF_KEY_PEM, { mode: 0o600 });
    const child = spawn(process.execPath, [bin, '--port', '0', '--metrics-port', '0', '--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem')], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = new JsonLines(child);
    try {
      const url = await out.waitText(/^http/, 15_000, 'the URL line');
      expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/$/);
      const client = new RelayClient({ url, secretKey: SecretKey.generate(), tls: { ca: TEST_CA_PEM } });
      await client.connect({ signal: AbortSignal.timeout(10_000) });
      await client.close();
      const listening = JSON.parse(out.stderr.split('\n')[0]!) as { metrics: string; tls: boolean };
      expect(listening.tls).toBe(true);
      const metrics = parsePrometheusText(await (await fetch(listening.metrics)).text());
      expect(metrics.get('relay_handshakes_total{mechanism="keying-material"}')).toBe(1);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('exits 2 with one line on stderr for a bad flag, and 0 for --help', async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number | null; stderr: string; stdout: string }>((res) => {
        const c = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
        let stderr = '';
        let stdout = '';
        c.stderr.on('data', (d) => (stderr += String(d)));
        c.stdout.on('data', (d) => (stdout += String(d)));
        c.once('exit', (code) => res({ code, stderr, stdout }));
      });
    const bad = await run(['--frobnicate']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^sdnet-relay: .*frobnicate[^\n]*\n$/);
    // A config file nested 10,000 deep and each kind of invalid TOML: status 2 and exactly one
    // line, never a RangeError and status 1.
    const dir = mkdtempSync(join(tmpdir(), 'sdnet-relay-bad-'));
    const files: Array<[string, string]> = [
      ['nested.toml', `port = ${'['.repeat(10_000)}${']'.repeat(10_000)}`],
      ['nested.json', `{"port": ${'['.repeat(10_000)}${']'.repeat(10_000)}}`],
      ['dotted.toml', 'limits = { max_clients = 1 }\nlimits.max_handshaking = 2'],
      ['header.toml', 'limits = { max_clients = 1 }\n[limits.x]'],
      ['control.toml', 'host = "a\u0001b"'],
      ['tick.toml', '[timing]\ntick_ms = 3000000000'],
    ];
    const results = await Promise.all(
      files.map(([name, text]) => {
        writeFileSync(join(dir, name), text);
        return run(['--config', join(dir, name)]);
      }),
    );
    for (const [i, r] of results.entries()) {
      expect({ file: files[i]![0], code: r.code }).toEqual({ file: files[i]![0], code: 2 });
      expect(r.stderr).toMatch(/^sdnet-relay: [^\n]+\n$/);
      expect(r.stdout).toBe('');
    }
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: sdnet-relay/);
  });
});
