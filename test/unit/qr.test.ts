/**
 * The terminal QR code of `sdnet pair invite`: Reed-Solomon against the worked example of
 * ISO/IEC 18004 (1-M "01234567"), the data capacity of every version from the module count,
 * alignment pattern centres, and — when `zbarimg` (Debian zbar-tools, installed by .ci/run)
 * is present — real decoding of pairing payloads of every size we show, under every mask.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { alignmentPositions, dataModules, encodeQr, qrRows, reedSolomon, renderQr } from '../../src/cli/qr.ts';
import { SecretKey } from '../../src/identity/keys.ts';
import { PairingCode, qrPayload } from '../../src/protocols/pairing/code.ts';

function zbarimg(): string | undefined {
  try {
    execFileSync('zbarimg', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'zbarimg (zbar-tools) is not installed';
  }
}
const noZbar = zbarimg();
if (noZbar) console.log(`[skip] QR decoding: ${noZbar}`);

describe('QR encoder', () => {
  it('Reed-Solomon: the standard\'s 1-M example', () => {
    const data = Uint8Array.from([0x10, 0x20, 0x0c, 0x56, 0x61, 0x80, 0xec, 0x11, 0xec, 0x11, 0xec, 0x11, 0xec, 0x11, 0xec, 0x11]);
    expect(Buffer.from(reedSolomon(data, 10)).toString('hex')).toBe('a524d4c1ed36c7872c55');
  });

  it('codeword capacity of versions 1–20 and alignment centres', () => {
    const total = [26, 44, 70, 100, 134, 172, 196, 242, 292, 346, 404, 466, 532, 581, 655, 733, 815, 901, 991, 1085];
    for (let v = 1; v <= 20; v++) expect(Math.floor(dataModules(v) / 8)).toBe(total[v - 1]);
    expect(alignmentPositions(1)).toEqual([]);
    expect(alignmentPositions(2)).toEqual([6, 18]);
    expect(alignmentPositions(7)).toEqual([6, 22, 38]);
    expect(alignmentPositions(15)).toEqual([6, 26, 48, 70]);
    expect(alignmentPositions(20)).toEqual([6, 34, 62, 90]);
  });

  it('picks the smallest version, refuses what does not fit', () => {
    expect(encodeQr('hi').version).toBe(1);
    expect(encodeQr('x'.repeat(17)).version).toBe(1);
    expect(encodeQr('x'.repeat(18)).version).toBe(2);
    expect(encodeQr('x'.repeat(858)).version).toBe(20);
    expect(() => encodeQr('x'.repeat(859))).toThrow(RangeError);
    const text = renderQr('hello');
    expect(text.split('\n')).toHaveLength(Math.ceil((21 + 8) / 2));
    expect(text).toContain('▀');
  });

  it.skipIf(noZbar !== undefined)('zbarimg reads pairing payloads under every mask', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sdnet-qr-'));
    try {
      const id = SecretKey.generate().public();
      const payloads = [
        qrPayload(PairingCode.generate(), id, undefined),
        qrPayload(PairingCode.generate(), id, 'https://relay.example.net/', ['192.168.1.20:52011', '[fd00::1]:52011']),
        qrPayload(PairingCode.generate(), id, 'http://127.0.0.1:3340/', Array.from({ length: 8 }, (_, i) => `10.0.${i}.1:4433${i}`)),
      ];
      for (const text of payloads) {
        for (const mask of [undefined, 0, 1, 2, 3, 4, 5, 6, 7]) {
          const symbol = encodeQr(text, mask === undefined ? {} : { mask });
          const rows = qrRows(symbol);
          const scale = 3;
          let pbm = `P1\n${rows.length * scale} ${rows.length * scale}\n`;
          for (const row of rows) {
            const line = row.flatMap((d) => Array<string>(scale).fill(d ? '1' : '0')).join(' ');
            for (let k = 0; k < scale; k++) pbm += `${line}\n`;
          }
          const file = join(dir, `v${symbol.version}-m${symbol.mask}.pbm`);
          await writeFile(file, pbm);
          const decoded = execFileSync('zbarimg', ['-q', '--raw', file], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().replace(/\n$/, '');
          expect(decoded, `version ${symbol.version} mask ${symbol.mask}`).toBe(text);
        }
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
