/**
 * The duplicate-connection rule of the event loop, from both devices' points of view: a
 * simultaneous dial (opposite sides, within the race window) keeps the connection dialled by
 * the lower EndpointId on both devices — whichever connection each saw first — and anything
 * else keeps the newer connection.
 */
import { describe, expect, it } from 'vitest';
import { settleDuplicate } from '../../src/service/event-loop.ts';

type Side = 'client' | 'server';
const flip = (s: Side): Side => (s === 'client' ? 'server' : 'client');

describe('settleDuplicate', () => {
  it('a simultaneous dial: both devices keep the same connection, the lower id’s dial, in either arrival order', () => {
    // Connections: L→H (dialled by the lower id) and H→L. Each device sees them in some order.
    for (const lowerSeesFirst of ['L→H', 'H→L'] as const) {
      for (const higherSeesFirst of ['L→H', 'H→L'] as const) {
        // Our side of a connection: client if we dialled it.
        const sideFor = (me: 'L' | 'H', conn: 'L→H' | 'H→L'): Side => (conn.startsWith(me) ? 'client' : 'server');
        const keep = (me: 'L' | 'H', first: 'L→H' | 'H→L'): 'L→H' | 'H→L' => {
          const second = first === 'L→H' ? 'H→L' : 'L→H';
          const v = settleDuplicate({ side: sideFor(me, first), openedAt: 0 }, { side: sideFor(me, second), openedAt: 50 }, me === 'L', 3000);
          return v === 'new' ? second : first;
        };
        expect(keep('L', lowerSeesFirst)).toBe('L→H');
        expect(keep('H', higherSeesFirst)).toBe('L→H');
      }
    }
  });

  it('the same side twice, or a connection older than the race window: the newer one wins', () => {
    for (const side of ['client', 'server'] as const) {
      for (const lower of [true, false]) {
        expect(settleDuplicate({ side, openedAt: 0 }, { side, openedAt: 10 }, lower, 3000)).toBe('new');
        expect(settleDuplicate({ side, openedAt: 0 }, { side: flip(side), openedAt: 3001 }, lower, 3000)).toBe('new');
      }
    }
  });
});
