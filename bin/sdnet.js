#!/usr/bin/env node
// The `sdnet` binary: runs the compiled CLI (npm ci builds dist/ through the prepare script).
import { run } from '../dist/src/cli/main.js';
import { processIo } from '../dist/src/cli/io.js';

const controller = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => controller.abort());
process.exitCode = await run(process.argv.slice(2), processIo(controller.signal));
