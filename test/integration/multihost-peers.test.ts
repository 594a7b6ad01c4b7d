/**
 * The routed backend against peers that misbehave, over a real RabbitMQ: the peer is a cluster
 * member driven by the test (a ClusterBus with the cluster key) that claims a VM and then
 * answers fence requests badly — not at all, with a success while the VM still runs, with
 * "not-owner", or through another host. The backend under test is a real RoutedBackend with
 * a real LibvirtBackend on a private test hypervisor.
 */
import { jest } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startRabbit, type RabbitBroker } from '../helpers/rabbitmq.js';
import { eventually } from '../helpers/cluster.js';
import { ClusterBus, type BusDelivery } from '../../src/amqp/bus.js';
import { resolveProfile } from '../../src/amqp/profiles.js';
import { LibvirtBackend } from '../../src/backends/libvirt/backend.js';
import { ClusterBusPort, RoutedBackend } from '../../src/backends/amqp/index.js';
import type { RequestContext } from '../../src/backends/backend.js';
import type { FenceRequestMessage } from '../../src/messages/schemas.js';
import { DomainState } from '../../src/protocol/constants.js';
import { silentLogger } from '../../src/util/logger.js';

jest.setTimeout(120_000);

const KEY = Buffer.from('peers-cluster-key-0123456789abcdef');
const CLUSTER = 'peers';
const VM = { name: 'vm-p', uuid: '3a000000-0000-4000-8000-000000000001' };
const OWN = { name: 'vm-own', uuid: '3a000000-0000-4000-8000-000000000002' };

type Behaviour = 'silent' | 'lie' | 'not-owner' | 'honest' | 'via-other';

describe('routed backend against misbehaving peers (real RabbitMQ)', () => {
  let broker: RabbitBroker;
  let dir: string;
  let backend: RoutedBackend;
  const buses: ClusterBus[] = [];
  let peer: ClusterBus;
  let other: ClusterBus;
  let behaviour: Behaviour = 'honest';
  const requests: FenceRequestMessage[] = [];
  const resyncAsks: string[] = [];
  const inventoriesFromR1: number[] = [];
  let beat: NodeJS.Timeout | undefined;
  let seqno = 1000;

  function member(id: string): ClusterBus {
    const bus = new ClusterBus({
      urls: [broker.url],
      hostId: id,
      cluster: CLUSTER,
      key: KEY,
      profile: resolveProfile('rabbitmq3'),
      maxReconnectDelayMs: 500,
    });
    buses.push(bus);
    return bus;
  }

  function ctx(deadlineMs = 10_000): RequestContext {
    return {
      id: `t${seqno}`,
      listener: 'test',
      source: '127.0.0.1',
      seqno: seqno++,
      deadline: Date.now() + deadlineMs,
    };
  }

  async function onPeerMessage(d: BusDelivery): Promise<void> {
    const m = d.message;
    if (m.type === 'resync-request' && m.body.target === 'p2') resyncAsks.push(m.body.reason);
    if (m.type === 'inventory' && m.from === 'r1') inventoriesFromR1.push(m.body.seq);
    if (m.type !== 'fence-request' || m.body.toHost !== 'p2') return;
    requests.push(m);
    const body = {
      requestId: m.body.requestId,
      executingHost: 'p2',
      timings: { received: Date.now(), finished: Date.now() },
    };
    switch (behaviour) {
      case 'silent':
        return;
      case 'lie':
        await peer.reply(
          d,
          peer.create('fence-reply', {
            ...body,
            code: 0,
            reason: 'ok',
            vmState: DomainState.RUNNING,
          }),
        );
        return;
      case 'not-owner':
        await peer.reply(
          d,
          peer.create('fence-reply', { ...body, code: 1, reason: 'not-owner', vmState: null }),
        );
        return;
      case 'via-other':
        // a valid reply, but from a host the request was not sent to
        await other.sendReply(
          'r1',
          other.create('fence-reply', {
            ...body,
            executingHost: 'p3',
            code: 0,
            reason: 'ok',
            vmState: DomainState.SHUTOFF,
          }),
        );
        return;
      case 'honest':
        await peer.reply(
          d,
          peer.create('fence-reply', {
            ...body,
            code: 0,
            reason: 'ok',
            vmState: DomainState.SHUTOFF,
          }),
        );
        return;
    }
  }

  beforeAll(async () => {
    broker = await startRabbit({ port: 5728, distPort: 25728, epmdPort: 4384 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vf-peers-'));
    const xml = path.join(dir, 'r1.xml');
    fs.writeFileSync(
      xml,
      `<node><cpu><mhz>2400</mhz><model>sim</model><nodes>1</nodes><sockets>1</sockets><cores>4</cores>` +
        `<threads>1</threads><active>4</active></cpu><memory>16777216</memory>` +
        `<domain type='test'><name>${OWN.name}</name><uuid>${OWN.uuid}</uuid><memory unit='MiB'>128</memory>` +
        `<vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain></node>`,
    );
    peer = member('p2');
    other = member('p3');
    await peer.start({ timeoutMs: 30_000 });
    await other.start({ timeoutMs: 30_000 });
    peer.onMessage((d) => void onPeerMessage(d));
    const peerStatus = (seq: number) => ({
      host: 'p2',
      epoch: peer.messages.epoch,
      seq,
      software: { name: 'test-peer', version: '1' },
      protocolVersion: 1,
      vmCount: 1,
      listeners: [],
      intervalMs: 200,
    });
    let hb = 0;
    beat = setInterval(
      () => void peer.publish(peer.create('heartbeat', peerStatus(++hb))).catch(() => undefined),
      200,
    );

    backend = new RoutedBackend(
      new LibvirtBackend({ uris: [`test://${xml}`] }, silentLogger),
      new ClusterBusPort(member('r1')),
      {
        hostId: 'r1',
        heartbeatIntervalMs: 200,
        deadAfterMs: 3000,
        inventoryIntervalMs: 500,
        logger: silentLogger,
      },
    );
    await backend.start();
    await eventually(
      () => backend.table.livenessOf('p2', Date.now()) === 'alive',
      20_000,
      'p2 heartbeats seen',
    );
    await peer.publish(
      peer.create('inventory', {
        host: 'p2',
        epoch: peer.messages.epoch,
        seq: 1,
        vms: [{ uuid: VM.uuid, name: VM.name, state: DomainState.RUNNING }],
      }),
    );
    await eventually(
      () => backend.table.resolve(VM.name).length === 1,
      10_000,
      'p2 inventory applied',
    );
    await eventually(
      async () => (await backend.fence('status', 'no-such-vm', ctx())).reason === 'unknown-vm',
      10_000,
      'synced',
    );
  });

  afterAll(async () => {
    if (beat) clearInterval(beat);
    await backend?.stop();
    for (const b of buses) await b.stop().catch(() => undefined);
    await broker?.dispose();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('an honest owner: off succeeds, executed by the owner', async () => {
    behaviour = 'honest';
    expect(await backend.fence('off', VM.name, ctx())).toEqual({
      code: 0,
      reason: 'ok',
      executedBy: 'p2',
    });
  });

  it('an owner that never answers: FAIL no-reply once the deadline passes', async () => {
    behaviour = 'silent';
    const before = requests.length;
    const c = ctx(1500);
    const r = await backend.fence('off', VM.name, c);
    expect(r).toEqual({ code: 1, reason: 'no-reply' }); // nothing executed: no executedBy
    expect(requests.length).toBe(before + 1);
    // the request carried a deadline within the caller's (the owner must not act after it)
    const sent = requests[requests.length - 1]!;
    expect(sent.body.deadline).toBeLessThanOrEqual(c.deadline);
  });

  it('an owner that reports success while the VM still runs: FAIL unconfirmed-off', async () => {
    behaviour = 'lie';
    expect(await backend.fence('off', VM.name, ctx())).toEqual({
      code: 1,
      reason: 'unconfirmed-off',
      executedBy: 'p2',
    });
  });

  it('a claimant that no longer has the VM: FAIL not-owner and a resync request to it', async () => {
    behaviour = 'not-owner';
    const asks = resyncAsks.length;
    expect(await backend.fence('off', VM.name, ctx())).toMatchObject({
      code: 1,
      reason: 'not-owner',
    });
    await eventually(() => resyncAsks.length > asks, 5000, 'resync request to p2');
  });

  it('a reply from a host the request did not go to is ignored', async () => {
    behaviour = 'via-other';
    expect(await backend.fence('off', VM.name, ctx(1500))).toMatchObject({
      code: 1,
      reason: 'no-reply',
    });
  });

  it('callers with the same request id share one routed request', async () => {
    behaviour = 'honest';
    const before = requests.length;
    const same = ctx();
    const answers = await Promise.all([
      backend.fence('off', VM.name, { ...same, id: 'a' }),
      backend.fence('off', VM.name, { ...same, id: 'b' }),
      backend.fence('off', VM.name, { ...same, id: 'c' }),
    ]);
    expect(answers.map((a) => a.code)).toEqual([0, 0, 0]);
    expect(requests.length).toBe(before + 1);
  });

  it('own VMs run locally; the broker is not involved', async () => {
    const before = requests.length;
    expect(await backend.fence('status', OWN.name, ctx())).toMatchObject({ code: 0 });
    expect(await backend.fence('off', OWN.uuid, ctx())).toMatchObject({
      code: 0,
      executedBy: 'r1',
    });
    expect(await backend.fence('status', OWN.name, ctx())).toMatchObject({ code: 2 });
    expect(requests.length).toBe(before);
  });

  it('list is cluster-wide', async () => {
    const list = await backend.hostlist(ctx());
    expect(list.entries.map((e) => e.name)).toEqual(['vm-own', 'vm-p']);
  });

  it('right after (re)connecting, an unknown VM is FAIL not-synced, never "off"', async () => {
    const late = new RoutedBackend(
      new LibvirtBackend({ uris: [`test://${path.join(dir, 'r1.xml')}`] }, silentLogger),
      new ClusterBusPort(member('r9')),
      {
        hostId: 'r9',
        heartbeatIntervalMs: 200,
        deadAfterMs: 3000,
        syncSettleMs: 600_000,
        logger: silentLogger,
      },
    );
    try {
      await late.start();
      await eventually(
        () => late.table.livenessOf('p2', Date.now()) === 'alive',
        20_000,
        'r9 connected',
      );
      expect(await late.fence('status', 'no-such-vm', ctx())).toEqual({
        code: 1,
        reason: 'not-synced',
      });
      expect(await late.fence('off', 'no-such-vm', ctx())).toEqual({
        code: 1,
        reason: 'not-synced',
      });
      // its own VMs are unaffected
      expect(await late.fence('status', OWN.name, ctx())).toMatchObject({ executedBy: 'r9' });
    } finally {
      await late.stop();
    }
  });

  it('the inventory is republished periodically (safety net against lost events)', async () => {
    const seen = inventoriesFromR1.length;
    await eventually(
      () => inventoriesFromR1.length >= seen + 2,
      10_000,
      'two more inventories from r1',
    );
    const last = inventoriesFromR1.slice(-2);
    expect(last[1]!).toBeGreaterThan(last[0]!);
  });
});
