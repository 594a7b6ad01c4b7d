/**
 * One behavioural suite for every listener, in the spirit of js-libp2p's transport compliance
 * tests. A driver knows how to start its listener and how to talk to it as a real client
 * would; the suite checks what every listener must do:
 *
 * - every operation reaches the handler with the right op, target, source and seqno;
 * - result codes and host lists travel back unchanged;
 * - duplicates are suppressed or answered, as the driver declares;
 * - malformed input never reaches the handler, and the listener keeps serving;
 * - a handler that never resolves does not block other requests;
 * - stop() releases the listener's ports and sockets.
 */
import type {
  IncomingRequest,
  Listener,
  RequestHandler,
  RequestResult,
} from '../../src/listeners/listener.js';
import type { HostEntry } from '../../src/protocol/hostlist.js';

export interface SendOptions {
  seqno?: number;
  /** Which simulated client sends (a different guest or peer); default 0. */
  client?: number;
  /** Give up waiting for an answer after this many ms; default the driver's own. */
  timeoutMs?: number;
}

export interface SendResult {
  /** The docs/protocol.md §1.3 code, or undefined when no answer came (connection closed, or timeout). */
  code: number | undefined;
  hostlist?: HostEntry[];
  /** The final byte (tcp) or second response (serial) after a host list. */
  hostlistCode?: number;
}

/** Malformed input: truncated request, bytes that are no request, a request signed with another key. */
export type MalformedKind = 'short' | 'garbage' | 'wrong-key';

export interface ListenerDriver {
  /** Which kinds of malformed input apply (wrong-key only for keyed listeners). */
  malformed: MalformedKind[];
  /** What a repeated (op, seqno, target) within the window gets. */
  duplicates: 'suppressed' | 'answered';
  /** The permission source the listener must report for requests from `client`. */
  expectedSource(client: number): string | undefined;
  start(handler: RequestHandler): Promise<Listener>;
  send(op: number, target: string, options?: SendOptions): Promise<SendResult>;
  /** Send malformed input; resolves once it has been delivered (or refused). */
  sendMalformed(kind: MalformedKind, options?: SendOptions): Promise<void>;
  /** After stop(): fail unless the listener's ports and sockets are released. */
  assertReleased(): Promise<void>;
  /** Remove everything the driver created (processes, files). */
  dispose(): Promise<void>;
}

export interface ListenerDriverFactory {
  name: string;
  create(): Promise<ListenerDriver>;
}

const HANG_TARGET = 'never-answers';

/** Distinct seqnos per test run, so the listener's duplicate window never joins two tests. */
let nextSeqno = 100_000 + Math.floor(Math.random() * 100_000);
function freshSeqno(): number {
  nextSeqno += 1;
  return nextSeqno;
}

const HOSTS: HostEntry[] = [
  { name: 'alpha', uuid: '11111111-0000-4000-8000-000000000001', state: 1 },
  { name: 'b'.repeat(63), uuid: '11111111-0000-4000-8000-000000000002', state: 5 },
  { name: 'gamma', uuid: '11111111-0000-4000-8000-000000000003', state: 3 },
];

export function runListenerCompliance(factory: ListenerDriverFactory): void {
  describe(`listener compliance: ${factory.name}`, () => {
    let driver: ListenerDriver;
    let listener: Listener;
    const seen: IncomingRequest[] = [];
    let respond: (request: IncomingRequest) => Promise<RequestResult>;
    let hanging: Promise<SendResult> | undefined;

    const handler: RequestHandler = (request) => {
      seen.push(request);
      if (request.target === HANG_TARGET) return new Promise<RequestResult>(() => undefined);
      return respond(request);
    };

    beforeAll(async () => {
      driver = await factory.create();
      listener = await driver.start(handler);
    });

    afterAll(async () => {
      await listener?.stop();
      await driver?.dispose();
    });

    beforeEach(() => {
      seen.length = 0;
      respond = async () => ({ code: 0, reason: 'ok' });
    });

    it('delivers every operation with its op, target, source and seqno', async () => {
      const cases: [number, string][] = [
        [0, 'vm-null'],
        [1, 'vm-off'],
        [2, 'vm-reboot'],
        [3, '11111111-0000-4000-8000-0000000000aa'],
        [4, 'vm-status'],
        [5, ''],
      ];
      for (const [op, target] of cases) {
        const seqno = freshSeqno();
        const result = await driver.send(op, target, { seqno });
        expect(result.code).toBe(0);
        expect(seen.at(-1)).toMatchObject({ op, target, seqno, source: driver.expectedSource(0) });
      }
      expect(seen).toHaveLength(cases.length);
      expect(seen.every((r) => r.listener === listener.name)).toBe(true);
    });

    it('reports the requesting client as the source', async () => {
      await driver.send(4, 'vm-status', { seqno: freshSeqno(), client: 1 });
      expect(seen.at(-1)?.source).toBe(driver.expectedSource(1));
    });

    it('passes result codes back unchanged', async () => {
      for (const code of [0, 1, 2, 3]) {
        respond = async () => ({ code, reason: 'test' });
        expect((await driver.send(4, 'vm-status', { seqno: freshSeqno() })).code).toBe(code);
      }
    });

    it('round-trips a host list with its final code', async () => {
      respond = async () => ({ code: 0xfd, reason: 'ok', hostlist: HOSTS, hostlistCode: 1 });
      const result = await driver.send(6, '', { seqno: freshSeqno() });
      expect(result.code).toBe(0xfd);
      expect(result.hostlist).toEqual(HOSTS);
      expect(result.hostlistCode).toBe(1);
      respond = async () => ({ code: 0xfd, reason: 'ok', hostlist: [], hostlistCode: 0 });
      const empty = await driver.send(6, '', { seqno: freshSeqno() });
      expect(empty).toMatchObject({ code: 0xfd, hostlist: [], hostlistCode: 0 });
    });

    it('handles a duplicate (same op, seqno and target) as declared, and only once', async () => {
      respond = async () => ({ code: 2, reason: 'off' });
      const seqno = freshSeqno();
      expect((await driver.send(4, 'vm-dup', { seqno })).code).toBe(2);
      const again = await driver.send(4, 'VM-DUP', { seqno });
      expect(again.code).toBe(driver.duplicates === 'answered' ? 2 : undefined);
      expect(seen).toHaveLength(1);
      // A different op or seqno is a new request.
      expect((await driver.send(1, 'vm-dup', { seqno })).code).toBe(2);
      expect((await driver.send(4, 'vm-dup', { seqno: freshSeqno() })).code).toBe(2);
      expect(seen).toHaveLength(3);
    });

    it('rejects malformed input without calling the handler, and keeps serving', async () => {
      for (const kind of driver.malformed) {
        await driver.sendMalformed(kind, { seqno: freshSeqno() });
        const seqno = freshSeqno();
        expect((await driver.send(4, `after-${kind}`, { seqno })).code).toBe(0);
        expect(seen.map((r) => r.target)).toEqual([`after-${kind}`]);
        seen.length = 0;
      }
    });

    it('keeps answering while a handler never resolves', async () => {
      hanging = driver.send(2, HANG_TARGET, { seqno: freshSeqno(), client: 1, timeoutMs: 60_000 });
      await waitFor(() => seen.some((r) => r.target === HANG_TARGET));
      expect((await driver.send(4, 'vm-busy', { seqno: freshSeqno() })).code).toBe(0);
    });

    it('stop() releases its ports and sockets and ends pending requests', async () => {
      await listener.stop();
      if (hanging) expect((await hanging).code).toBeUndefined();
      await driver.assertReleased();
    });
  });
}

/** Poll a condition (no timing assertion: a stuck condition fails through the test timeout). */
export async function waitFor(condition: () => boolean, intervalMs = 10): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, intervalMs));
}
