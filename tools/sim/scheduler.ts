/**
 * Virtual time: one global timeline of tasks, run in (time, insertion) order. Each task runs
 * to completion and every promise continuation it causes settles before the next task (the
 * microtask queue is drained between tasks), so a run depends on nothing but the seed.
 *
 * Hosts see the timeline through a Clock (src/backends/amqp/clock.ts) with their own skew;
 * every timer belongs to an owner (a daemon instance, a hypervisor) and dies with it.
 */
import type { Clock, TimerHandle } from '../../src/backends/amqp/clock.js';

interface Task {
  at: number;
  seq: number;
  owner: string;
  label: string;
  fn: () => void;
  cancelled: boolean;
}

/** Virtual time starts at a realistic wall-clock value (timestamps are ms since 1970). */
export const T0 = 1_800_000_000_000;

export class Scheduler {
  time = T0;
  private seq = 0;
  private readonly heap: Task[] = [];
  private readonly deadOwners = new Set<string>();
  /** Called with every error thrown by a task (invariant e). */
  onError: (owner: string, label: string, error: unknown) => void = () => undefined;
  steps = 0;

  /** Schedules `fn` at absolute global time `at`. */
  at(at: number, owner: string, label: string, fn: () => void): TimerHandle {
    const task: Task = {
      at: Math.max(at, this.time),
      seq: this.seq++,
      owner,
      label,
      fn,
      cancelled: false,
    };
    this.push(task);
    return {
      cancel: () => {
        task.cancelled = true;
      },
    };
  }

  after(ms: number, owner: string, label: string, fn: () => void): TimerHandle {
    return this.at(this.time + Math.max(0, ms), owner, label, fn);
  }

  /** Every timer of `owner` is dropped (a crashed process). */
  kill(owner: string): void {
    this.deadOwners.add(owner);
  }

  isDead(owner: string): boolean {
    return this.deadOwners.has(owner);
  }

  /** A host's clock: global time plus `skew()`, timers owned by `owner`. */
  clock(owner: string, skew: () => number): Clock {
    return {
      now: () => this.time + skew(),
      setTimeout: (fn, ms) => this.after(ms, owner, 'timer', fn),
      setInterval: (fn, ms) => {
        const period = Math.max(1, ms);
        let current: TimerHandle | undefined;
        let stopped = false;
        const tick = (): void => {
          if (stopped) return;
          current = this.after(period, owner, 'interval', tick);
          fn();
        };
        current = this.after(period, owner, 'interval', tick);
        return {
          cancel: () => {
            stopped = true;
            current?.cancel();
          },
        };
      },
    };
  }

  /** Runs tasks until the timeline is empty or past `until`. */
  async runUntil(until: number): Promise<void> {
    await drainMicrotasks(); // what the caller started synchronously may schedule tasks
    for (;;) {
      const next = this.heap[0];
      if (!next || next.at > until) break;
      this.pop();
      if (next.cancelled || this.deadOwners.has(next.owner)) continue;
      this.time = next.at;
      this.steps++;
      try {
        next.fn();
      } catch (error) {
        this.onError(next.owner, next.label, error);
      }
      await drainMicrotasks();
    }
    if (this.time < until) this.time = until;
  }

  private push(task: Task): void {
    const h = this.heap;
    h.push(task);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(task, h[p] as Task)) break;
      h[i] = h[p] as Task;
      i = p;
    }
    h[i] = task;
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop() as Task;
    if (h.length === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      let best = last;
      if (l < h.length && before(h[l] as Task, best)) {
        m = l;
        best = h[l] as Task;
      }
      if (r < h.length && before(h[r] as Task, best)) {
        m = r;
        best = h[r] as Task;
      }
      if (m === i) break;
      h[i] = best;
      i = m;
    }
    h[i] = last;
  }
}

function before(a: Task, b: Task): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** Lets every pending promise continuation run (they all precede the next macrotask). */
function drainMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
