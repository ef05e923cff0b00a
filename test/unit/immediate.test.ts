/**
 * The driver's immediates where the global scope has no `setImmediate` (browsers): the
 * MessageChannel queue of `src/transport/io/immediate.ts`, exercised here by hiding Node's
 * `setImmediate` for the duration of each test. (The Chromium tests run it for real.)
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cancelImmediate, scheduleImmediate } from '../../src/transport/io/immediate.ts';

const g = globalThis as { setImmediate?: unknown; clearImmediate?: unknown };
let saved: { setImmediate?: unknown; clearImmediate?: unknown };

beforeEach(() => {
  saved = { setImmediate: g.setImmediate, clearImmediate: g.clearImmediate };
  delete g.setImmediate;
  delete g.clearImmediate;
});
afterEach(() => {
  g.setImmediate = saved.setImmediate;
  g.clearImmediate = saved.clearImmediate;
});

const settle = () => new Promise<void>((r) => setTimeout(r, 50));

describe('immediates without setImmediate (MessageChannel)', () => {
  it('run after the current task, in order; a cancelled one does not run', async () => {
    expect(typeof g.setImmediate).toBe('undefined');
    const ran: number[] = [];
    scheduleImmediate(() => ran.push(1));
    const second = scheduleImmediate(() => ran.push(2));
    scheduleImmediate(() => ran.push(3));
    cancelImmediate(second);
    expect(ran).toEqual([]);
    await Promise.resolve();
    expect(ran).toEqual([]);
    await settle();
    expect(ran).toEqual([1, 3]);
  });

  it('one scheduled from inside another runs in a later turn, not the same batch', async () => {
    const ran: string[] = [];
    scheduleImmediate(() => {
      ran.push('outer');
      scheduleImmediate(() => ran.push('inner'));
      ran.push('outer-end');
    });
    await settle();
    expect(ran).toEqual(['outer', 'outer-end', 'inner']);
  });

  it('10,000 immediates each scheduling the next all run', async () => {
    let n = 0;
    await new Promise<void>((resolve) => {
      const step = () => {
        if (++n === 10_000) resolve();
        else scheduleImmediate(step);
      };
      scheduleImmediate(step);
    });
    expect(n).toBe(10_000);
  });
});
