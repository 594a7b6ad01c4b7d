import { RequestLedger, requestId } from '../../src/routing/ledger.js';

function deferred<T>(): {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: Error) => void;
} {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('requestId', () => {
  test('copies of one fence_xvm request map to the same id whatever host or source address received them', () => {
    const a = requestId({ action: 'off', seqno: 93371, target: 'VM1', source: '127.0.0.1' });
    const b = requestId({ action: 'off', seqno: 93371, target: 'vm1', source: '192.0.2.2' });
    expect(a).toBe(b);
    expect(a).toBe('off:93371:vm1');
  });

  test('a different op, seqno or target is a different request', () => {
    const base = { action: 'off', seqno: 1, target: 'vm1' };
    const ids = new Set([
      requestId(base),
      requestId({ ...base, action: 'reboot' }),
      requestId({ ...base, seqno: 2 }),
      requestId({ ...base, target: 'vm2' }),
    ]);
    expect(ids.size).toBe(4);
  });

  test('the source can be included on demand and the id stays within 128 characters', () => {
    expect(requestId({ action: 'on', seqno: 5, target: 'x', source: '10.0.0.1' }, true)).toBe(
      'on:5:x@10.0.0.1',
    );
    expect(requestId({ action: 'on', seqno: 5, target: 'x'.repeat(200) }).length).toBe(128);
  });
});

describe('RequestLedger', () => {
  test('concurrent callers with the same id share one execution and one answer', async () => {
    const ledger = new RequestLedger<string>({ windowMs: 1000 });
    const d = deferred<string>();
    let runs = 0;
    const exec = (): Promise<string> => {
      runs++;
      return d.promise;
    };
    const p1 = ledger.run('id', exec);
    const p2 = ledger.run('id', exec);
    const p3 = ledger.run('id', exec);
    d.resolve('off-done');
    const results = await Promise.all([p1, p2, p3]);
    expect(runs).toBe(1);
    expect(results.map((r) => r.value)).toEqual(['off-done', 'off-done', 'off-done']);
    expect(results.map((r) => r.how).sort()).toEqual(['executed', 'joined', 'joined']);
  });

  test('a retransmission within the window is answered from cache, after it runs again', async () => {
    let now = 0;
    const ledger = new RequestLedger<number>({ windowMs: 1000, now: () => now });
    let runs = 0;
    const exec = async (): Promise<number> => ++runs;
    expect(await ledger.run('id', exec)).toEqual({ value: 1, how: 'executed' });
    now = 999;
    expect(await ledger.run('id', exec)).toEqual({ value: 1, how: 'cached' });
    expect(ledger.peek('id')).toBe(1);
    now = 2001;
    expect(await ledger.run('id', exec)).toEqual({ value: 2, how: 'executed' });
  });

  test('values that are not cacheable only share the in-flight execution', async () => {
    const ledger = new RequestLedger<string>({
      windowMs: 1000,
      cacheable: (v) => v !== 'no-reply',
    });
    let runs = 0;
    const exec = async (): Promise<string> => {
      runs++;
      return 'no-reply';
    };
    await ledger.run('id', exec);
    await ledger.run('id', exec);
    expect(runs).toBe(2);
  });

  test('a thrown execution is not cached and reaches every joined caller', async () => {
    const ledger = new RequestLedger<string>({ windowMs: 1000 });
    const d = deferred<string>();
    const p1 = ledger.run('id', () => d.promise);
    const p2 = ledger.run('id', () => Promise.resolve('never'));
    d.reject(new Error('boom'));
    await expect(p1).rejects.toThrow('boom');
    await expect(p2).rejects.toThrow('boom');
    expect(ledger.size).toBe(0);
    expect((await ledger.run('id', async () => 'again')).value).toBe('again');
  });

  test('the number of remembered results is bounded', async () => {
    const ledger = new RequestLedger<number>({ windowMs: 60_000, maxEntries: 10 });
    for (let i = 0; i < 50; i++) await ledger.run(`id${i}`, async () => i);
    expect(ledger.size).toBeLessThanOrEqual(10);
    expect(ledger.peek('id49')).toBe(49);
    expect(ledger.peek('id0')).toBeUndefined();
  });
});
