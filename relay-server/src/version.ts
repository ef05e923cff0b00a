/**
 * The relay server's version string (the sdnet package version), shown by `/healthz`,
 * `--version` and the start-up log line.
 *
 * @module
 */
import { packageVersion } from '../../src/cli/version.ts';

export const RELAY_SERVER_VERSION = packageVersion();
