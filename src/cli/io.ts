/**
 * What a CLI command may touch: output streams and the environment. Tests pass their own.
 *
 * @module
 */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  /** Aborted on SIGINT/SIGTERM by the binary; long-running commands stop when it fires. */
  signal: AbortSignal;
  /** stdout is a terminal (progress bars redraw in place; otherwise they print milestones). */
  stdoutIsTTY?: boolean;
  /** stderr is a terminal (`sdnet pair invite` draws its QR code there). */
  stderrIsTTY?: boolean;
}

/** A command-line mistake or bad input: exit status 2, one line on stderr. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const processIo = (signal: AbortSignal): CliIo => ({
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
  signal,
  stdoutIsTTY: process.stdout.isTTY === true,
  stderrIsTTY: process.stderr.isTTY === true,
});
