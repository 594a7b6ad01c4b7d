/**
 * Known-bad changes, applied in memory to the real classes, that the simulation must catch
 * (test/sim/mutations.test.ts). Each returns a function that undoes it.
 */
import { RoutedBackend } from '../src/backends/amqp/routed-backend.js';
import { FenceOrigin, type OriginRequest } from '../src/backends/amqp/fence-origin.js';
import { RequestLedger } from '../src/routing/ledger.js';
import { OwnershipTable, type Claim } from '../src/routing/table.js';
import type { FenceRequestMessage } from '../src/messages/schemas.js';

type Patchable = Record<string, unknown>;

function patch(proto: object, name: string, make: (original: unknown) => unknown): () => void {
  const target = proto as Patchable;
  const original = target[name];
  if (typeof original !== 'function') throw new Error(`no method ${name} to patch`);
  target[name] = make(original);
  return () => {
    target[name] = original;
  };
}

export interface Mutation {
  name: string;
  /** The invariant(s) expected to catch it. */
  caughtBy: string;
  /**
   * Run the daemons with the `hosts` key (default true). False where the schedules that
   * exercise the mechanism lie past the budget with the key: the mechanism is needed either
   * way, the key only makes its cases rarer.
   */
  configureHosts?: boolean;
  apply(): () => void;
}

export const MUTATIONS: Mutation[] = [
  {
    name: 'synced is assumed: unknown VMs answered OFF during sync, missing inventories ignored',
    caughtBy: 'b',
    apply: () => patch(RoutedBackend.prototype, 'unsyncedHosts', () => () => []),
  },
  {
    name: 'request ledger disabled: every copy of a request executes',
    caughtBy: 'c',
    apply: () => {
      const undoRun = patch(
        RequestLedger.prototype,
        'run',
        () =>
          async function run(_id: string, exec: () => Promise<unknown>) {
            return { value: await exec(), how: 'executed' };
          },
      );
      const undoPeek = patch(RequestLedger.prototype, 'peek', () => () => undefined);
      return () => {
        undoRun();
        undoPeek();
      };
    },
  },
  {
    name: 'deadline ignored: the origin waits for replies a minute past the deadline',
    caughtBy: 'd',
    apply: () =>
      patch(
        FenceOrigin.prototype,
        'run',
        (original) =>
          function run(this: FenceOrigin, request: OriginRequest) {
            const late = { ...request, waitUntil: request.waitUntil + 60_000 };
            return (original as (r: OriginRequest) => Promise<unknown>).call(this, late);
          },
      ),
  },
  {
    name: 'unknown VMs answered without waiting for every live host to heartbeat',
    caughtBy: 'b',
    // With the key only a VM created just before on a host whose messages stopped shows it
    // (seeds 5491, 8797); without it also a host whose first messages stop (seed 777).
    configureHosts: false,
    apply: () => patch(RoutedBackend.prototype, 'waitForHeartbeats', () => async () => []),
  },
  {
    name: 'requests queued for an earlier run of a daemon executed again (epoch ignored)',
    caughtBy: 'c',
    apply: () =>
      patch(
        RoutedBackend.prototype,
        'onFenceRequest',
        (original) =>
          function onFenceRequest(
            this: RoutedBackend,
            message: FenceRequestMessage,
            reply: unknown,
          ) {
            const { toEpoch: _ignored, ...body } = message.body;
            return (original as (m: FenceRequestMessage, r: unknown) => Promise<void>).call(
              this,
              { ...message, body },
              reply,
            );
          },
      ),
  },
  {
    name: 'a VM seen migrating away is taken as off',
    caughtBy: 'a',
    apply: () =>
      patch(
        OwnershipTable.prototype,
        'claims',
        (original) =>
          function claims(this: OwnershipTable, uuid: string) {
            const list = (original as (u: string) => Claim[]).call(this, uuid);
            return list.map((c) => ({ ...c, migratedAway: false }));
          },
      ),
  },
];
