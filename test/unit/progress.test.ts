/**
 * The CLI progress display: a line per 10 % when not a terminal, an in-place bar on one,
 * with the rate over recent samples and an ETA from it (an injected clock makes the figures
 * exact).
 */
import { describe, expect, it } from 'vitest';
import { Progress, formatBytes, formatDuration } from '../../src/cli/progress.ts';

const MiB = 1024 * 1024;

describe('progress', () => {
  it('formats bytes and durations', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(200 * MiB)).toBe('200.0 MiB');
    expect(formatDuration(42.4)).toBe('42s');
    expect(formatDuration(185)).toBe('3m05s');
    expect(formatDuration(3720)).toBe('1h02m');
    expect(formatDuration(Infinity)).toBe('--');
  });

  it('prints one line per 10 % when not a terminal, with rate and ETA', () => {
    let t = 0;
    const out: string[] = [];
    const p = new Progress({ total: 100 * MiB, write: (s) => out.push(s), tty: false, now: () => t });
    // 10 MiB per second, in 1 MiB steps.
    for (let mib = 1; mib <= 100; mib++) {
      t += 100;
      p.update(mib * MiB);
    }
    expect(out).toHaveLength(10);
    expect(out.every((l) => l.endsWith('\n'))).toBe(true);
    expect(out[0]).toMatch(/^\[###\.{27}\]  10 %  10\.0 MiB \/ 100\.0 MiB  10\.0 MiB\/s  ETA 9s\n$/);
    expect(out[4]).toContain(' 50 %');
    expect(out[4]).toContain('ETA 5s');
    expect(out[9]).toMatch(/100 %  100\.0 MiB \/ 100\.0 MiB  10\.0 MiB\/s  in 10s\n$/);
  });

  it('redraws in place on a terminal, at most every 100 ms, and ends the line when done', () => {
    let t = 0;
    const out: string[] = [];
    const p = new Progress({ total: 1000, write: (s) => out.push(s), tty: true, now: () => t, label: 'photo.jpg ' });
    for (let i = 1; i <= 1000; i++) {
      t += 1;
      p.update(i);
    }
    // 1 s of updates every 1 ms: the first draw, one per 100 ms, and the final one.
    expect(out.length).toBeGreaterThanOrEqual(10);
    expect(out.length).toBeLessThanOrEqual(12);
    expect(out.every((l) => l.startsWith('\rphoto.jpg ['))).toBe(true);
    expect(out.at(-1)).toMatch(/100 %  1000 B \/ 1000 B  1000 B\/s  in 1s\x1b\[K\n$/);
    expect(out.slice(0, -1).every((l) => !l.endsWith('\n'))).toBe(true);
  });

  it('the rate follows the last seconds: a stall shows as a falling rate and a growing ETA', () => {
    let t = 0;
    const p = new Progress({ total: 100 * MiB, write: () => undefined, tty: false, now: () => t });
    for (let i = 1; i <= 50; i++) {
      t += 100;
      p.update(i * MiB);
    }
    expect(p.rate()).toBeCloseTo(10 * MiB, -3);
    // Nothing for 10 s, then one more MiB.
    t += 10_000;
    p.update(51 * MiB);
    expect(p.rate()).toBeLessThan(MiB);
    expect(p.line()).toMatch(/ETA (\d+m\d\ds|\d+h\d\dm)/);
  });
});
