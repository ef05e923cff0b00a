/**
 * SSLKEYLOGFILE support (NSS key log format) so captures can be decrypted with Wireshark or
 * tshark: one line per secret, `LABEL <client_random hex> <secret hex>`.
 *
 * @module
 */
import { appendFileSync } from 'node:fs';

export function keyLogWriter(path: string | undefined = process.env.SSLKEYLOGFILE): ((line: string) => void) | undefined {
  if (!path) return undefined;
  return (line) => {
    try {
      appendFileSync(path, `${line}\n`, { mode: 0o600 });
    } catch {
      // Logging keys must never break the connection.
    }
  };
}
