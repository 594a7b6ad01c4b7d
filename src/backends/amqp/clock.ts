/**
 * Time as the routed backend sees it: the current time and timers, behind one small port so a
 * deterministic simulation can run the real backend on a virtual clock (see sim/).
 */

/** A scheduled callback; cancel() is idempotent. */
export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** ms since the Unix epoch, this host's clock. */
  now(): number;
  /** Runs `fn` once after `ms`. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Runs `fn` every `ms` until cancelled. */
  setInterval(fn: () => void, ms: number): TimerHandle;
}

/**
 * The process clock. One-shot timers keep the process alive (someone awaits them); periodic
 * ones do not.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(t) };
  },
  setInterval(fn, ms) {
    const t = setInterval(fn, ms);
    t.unref?.();
    return { cancel: () => clearInterval(t) };
  },
};

/** The process clock with another notion of "now" (tests that move time by hand). */
export function clockWithNow(now: () => number): Clock {
  return { ...systemClock, now };
}
