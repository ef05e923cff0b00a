#!/usr/bin/env node
// The `sdnet` binary: runs the compiled CLI (npm ci builds dist/ through the prepare script).
import { run } from '../dist/src/cli/main.js';
import { processIo } from '../dist/src/cli/io.js';

const controller = new AbortController();
// The first signal asks the command to stop (sdnet up shuts down cleanly); a second one, or a
// command still running 15 s later, ends the process: Ctrl-C always works.
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort();
    setTimeout(() => process.exit(130), 15_000).unref();
  });
}
process.exitCode = await run(process.argv.slice(2), processIo(controller.signal));
