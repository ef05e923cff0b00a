/**
 * Length-prefixed framing shared by the device-layer protocols: frames survive any
 * chunking, an oversized length is refused before anything is allocated or read for the
 * body, a stream cut inside a frame is an error, a clean end between frames is not.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FrameReader, encodeFrame } from '../../src/protocols/framing.ts';
import { fcParams } from '../helpers/seed.ts';
import { concatBytes } from '../../src/util/bytes.ts';

/** A readable stream delivering `bytes` in the given chunk sizes; counts pulls. */
function chunked(bytes: Uint8Array, sizes: number[]): { stream: ReadableStream<Uint8Array>; pulled: () => number } {
  let off = 0;
  let i = 0;
  let pulls = 0;
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        pulls++;
        if (off >= bytes.length) return controller.close();
        const n = Math.max(1, sizes[i++ % Math.max(1, sizes.length)] ?? 1);
        controller.enqueue(bytes.slice(off, off + n));
        off += n;
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, pulled: () => pulls };
}


describe('framing', () => {
  it('round-trips any frames over any chunking (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 12 }), fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 16 }), async (frames, sizes) => {
        const reader = new FrameReader(chunked(concatBytes(...frames.map(encodeFrame)), sizes).stream);
        for (const f of frames) expect(await reader.readFrame(300)).toEqual(f);
        expect(await reader.readFrame(300)).toBeUndefined();
        expect(reader.done).toBe(true);
      }),
      fcParams('framing round trip', 200),
    );
  });

  it('refuses a declared length over the limit from the 4 header bytes alone', async () => {
    // 0xffffffff declared, nothing after it: the error comes before any body read.
    const header = new Uint8Array([0xff, 0xff, 0xff, 0xff]);
    const src = chunked(concatBytes(header, new Uint8Array(10)), [4]);
    const reader = new FrameReader(src.stream);
    await expect(reader.readFrame(1024 * 1024)).rejects.toMatchObject({ code: 'ERR_FRAME_TOO_LARGE', streamCode: 0x20 });
    expect(src.pulled()).toBe(1);
    expect(reader.buffered).toBe(0);
  });

  it('accepts a frame of exactly the limit and an empty frame', async () => {
    const reader = new FrameReader(chunked(concatBytes(encodeFrame(new Uint8Array(100).fill(7)), encodeFrame(new Uint8Array(0))), [33]).stream);
    expect((await reader.readFrame(100))!.length).toBe(100);
    expect((await reader.readFrame(100))!.length).toBe(0);
    expect(await reader.readFrame(100)).toBeUndefined();
  });

  it('a stream cut inside the header or the body is ERR_FRAME_TRUNCATED', async () => {
    const whole = encodeFrame(new Uint8Array(50));
    for (const cut of [1, 3, 4, 20, 53]) {
      const reader = new FrameReader(chunked(whole.slice(0, cut), [7]).stream);
      await expect(reader.readFrame(1000)).rejects.toMatchObject({ code: 'ERR_FRAME_TRUNCATED', streamCode: 0x25 });
    }
  });

  it('an aborted read keeps its pending chunk for the next read (nothing lost)', async () => {
    let controllerRef: ReadableStreamDefaultController<Uint8Array> | undefined;
    const stream = new ReadableStream<Uint8Array>({ start: (c) => void (controllerRef = c) });
    const reader = new FrameReader(stream);
    const ac = new AbortController();
    const first = reader.readFrame(100, { signal: ac.signal });
    ac.abort(new Error('timeout'));
    await expect(first).rejects.toThrow('timeout');
    controllerRef!.enqueue(encodeFrame(new Uint8Array([1, 2, 3])));
    expect(await reader.readFrame(100)).toEqual(new Uint8Array([1, 2, 3]));
  });
});
