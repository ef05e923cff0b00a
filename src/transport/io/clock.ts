/**
 * The driver's clock: monotonic microseconds as a number (exact for ~285 years).
 *
 * @module
 */
export interface Clock {
  now(): number;
}

export const monotonicClock: Clock = {
  now: () => Math.floor(performance.now() * 1000),
};
