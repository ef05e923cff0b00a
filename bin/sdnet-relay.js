#!/usr/bin/env node
// The `sdnet-relay` binary: runs the compiled relay server (npm ci builds dist/ through the
// prepare script). SIGINT/SIGTERM shut it down gracefully; a second signal ends it at once.
import { main } from '../dist/relay-server/src/main.js';

const controller = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    controller.abort();
    process.once(sig, () => process.exit(130));
  });
}
process.exitCode = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, signal: controller.signal });
