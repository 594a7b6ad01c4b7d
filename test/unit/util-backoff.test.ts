import { Backoff } from '../../src/util/backoff.js';

describe('reconnect backoff', () => {
  it.each([
    { random: 0, delays: [100, 200, 400, 800, 1000, 1000] },
    { random: 0.5, delays: [90, 180, 360, 720, 900, 900] },
    { random: 0.9999, delays: [80, 160, 320, 640, 800, 800] },
  ])(
    'doubles from min to max and takes at most 20 % off (random $random)',
    ({ random, delays }) => {
      const backoff = new Backoff({ minMs: 100, maxMs: 1000, random: () => random });
      expect(delays.map(() => backoff.next())).toEqual(delays);
    },
  );

  it('starts again from min after a reset, and reports the next base delay for logs', () => {
    const backoff = new Backoff({ minMs: 500, maxMs: 5000, jitter: 0 });
    expect([backoff.next(), backoff.next(), backoff.nextBaseMs]).toEqual([500, 1000, 2000]);
    backoff.reset();
    expect(backoff.next()).toBe(500);
  });

  it('never exceeds max, however many attempts failed', () => {
    const backoff = new Backoff({ minMs: 1, maxMs: 2000 });
    for (let i = 0; i < 100; i++) expect(backoff.next()).toBeLessThanOrEqual(2000);
  });
});
