/**
 * A tmux server driven the way a person at a terminal drives it: windows with a shell each,
 * commands typed with `send-keys`, the screen read back with `capture-pane`. For tests of
 * the CLI as a user sees it (TTY output: progress bars, QR codes, prompts).
 *
 * ```ts
 * const tmux = await Tmux.start({ env });
 * await tmux.window('a', ['ip', 'netns', 'exec', ns, 'bash', '--noprofile', '--norc']);
 * await tmux.type('a', 'sdnet up');
 * await tmux.waitFor('a', /^online /m, 60_000);
 * await tmux.stop();
 * ```
 */
import { execFile, execFileSync } from 'node:child_process';

const TMUX = 'tmux';

/** Why tmux cannot be used here, or undefined. */
export function tmuxUnavailableReason(): string | undefined {
  try {
    execFileSync(TMUX, ['-V'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'tmux is not installed (`.ci/run` installs it as root)';
  }
}

function tmux(socket: string, args: readonly string[], env?: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(TMUX, ['-L', socket, ...args], { env: env ?? process.env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`tmux ${args.join(' ')}: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

/** Shell-quote one word for a line typed into bash. */
export function shq(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export class Tmux {
  readonly socket: string;
  readonly #session = 'sdnet';
  #windows = new Set<string>();
  #runs = 0;

  readonly #env: NodeJS.ProcessEnv;

  private constructor(socket: string, env: NodeJS.ProcessEnv) {
    this.socket = socket;
    this.#env = env;
  }

  /** A new tmux server (its own socket) with one session; `env` is what its shells inherit. */
  static async start(options: { env: NodeJS.ProcessEnv; width?: number; height?: number }): Promise<Tmux> {
    const t = new Tmux(`sdnet-test-${process.pid}-${Date.now().toString(36)}`, options.env);
    await tmux(t.socket, ['-f', '/dev/null', 'new-session', '-d', '-s', t.#session, '-n', 'idle', '-x', String(options.width ?? 160), '-y', String(options.height ?? 50)], options.env);
    await tmux(t.socket, ['set-option', '-g', 'history-limit', '20000']);
    await tmux(t.socket, ['set-option', '-g', 'remain-on-exit', 'on']);
    return t;
  }

  #target(name: string): string {
    if (!this.#windows.has(name)) throw new Error(`no tmux window ${name}`);
    return `${this.#session}:${name}`;
  }

  /** A new window running `argv` (a shell, usually). */
  async window(name: string, argv: readonly string[]): Promise<void> {
    // The window's shell gets exactly `env` (tmux would otherwise hand it the server's).
    const vars = Object.entries(this.#env).filter((e): e is [string, string] => typeof e[1] === 'string').map(([k, v]) => `${k}=${v}`);
    await tmux(this.socket, ['new-window', '-d', '-t', `${this.#session}:`, '-n', name, ['env', '-i', ...vars, ...argv].map(shq).join(' ')]);
    this.#windows.add(name);
  }

  /** Type `line` into window `name` and press Enter. */
  async type(name: string, line: string): Promise<void> {
    // -l: literally, so that words like "Enter" or "C-c" inside the line are not keys.
    await tmux(this.socket, ['send-keys', '-t', this.#target(name), '-l', line]);
    await tmux(this.socket, ['send-keys', '-t', this.#target(name), 'Enter']);
  }

  /**
   * Type `line` into window `name` as one shell command and wait for it to finish; what it
   * printed (stdout and stderr as the screen shows them) and its exit status. Markers echoed
   * around it delimit its output on the screen.
   */
  async run(name: string, line: string, timeoutMs: number): Promise<{ output: string; status: number }> {
    const n = ++this.#runs;
    const begin = `__begin_${n}__`;
    const end = `__end_${n}__`;
    await this.type(name, `echo ${begin}; ${line}; echo "${end} $?"`);
    const m = (await this.waitFor(name, new RegExp(`^${begin}$\\n([\\s\\S]*?)^${end} (\\d+)$`, 'm'), timeoutMs, `${line} to finish`)) as RegExpMatchArray;
    return { output: m[1]!, status: Number(m[2]) };
  }

  /** Press a key (`C-c`, `Enter`, …) in window `name`. */
  async key(name: string, key: string): Promise<void> {
    await tmux(this.socket, ['send-keys', '-t', this.#target(name), key]);
  }

  /** What window `name` shows, scrollback included, wrapped lines joined. */
  screen(name: string): Promise<string> {
    return tmux(this.socket, ['capture-pane', '-p', '-J', '-S', '-', '-t', this.#target(name)]);
  }

  /** Wait until window `name` shows `pattern` (polled every 200 ms); the match. */
  async waitFor(name: string, pattern: RegExp | ((screen: string) => boolean), timeoutMs: number, what = String(pattern)): Promise<RegExpMatchArray | string> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      last = await this.screen(name);
      if (typeof pattern === 'function') {
        if (pattern(last)) return last;
      } else {
        const m = last.match(pattern);
        if (m) return m;
      }
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting in tmux window ${name} for ${what}; it shows:\n${last.split('\n').slice(-30).join('\n')}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async stop(): Promise<void> {
    await tmux(this.socket, ['kill-server']).catch(() => undefined);
  }
}
