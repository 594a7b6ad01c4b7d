/**
 * Broker address profiles: how the cluster bus names its addresses on each AMQP 1.0 broker
 * (conventions measured per broker: docs/brokers.md §1). Templates take `{cluster}` and
 * `{host}`; every template can be overridden from the config (event_address,
 * event_subscribe_address, request_address, reply_address).
 */
import {
  PROFILE_NAMES,
  templatePlaceholders,
  type ProfileName,
} from '../config/plugins/backends.js';

/** The names are declared with the amqp block's keys (the `profile` key takes them). */
export { PROFILE_NAMES, templatePlaceholders, type ProfileName };

export interface AddressProfile {
  name: ProfileName;
  /** Where events and heartbeats are published (fan-out to every host). */
  eventAddress: string;
  /** Where each host subscribes to the fan-out (often the same address). */
  eventSubscribeAddress: string;
  /** The per-host request queue ({host} = the receiving host). */
  requestAddress: string;
  /** The per-host reply queue, used when replies are not dynamic. */
  replyAddress: string;
  /** Source/target capabilities for the fan-out and for queues (Artemis needs them). */
  eventCapabilities: string[];
  queueCapabilities: string[];
  /** Use one anonymous sender (`to` per message) when the broker offers ANONYMOUS-RELAY. */
  anonymousRelay: boolean;
  /** Ask the broker for a dynamic (temporary) reply queue instead of the named reply queue. */
  dynamicReply: boolean;
  /** Attach request/reply queues with a durable terminus (RabbitMQ 3.x: declares them
   *  durable, so accepted durable messages survive a broker restart or crash). */
  durableQueues: boolean;
  /**
   * Send to queues `durable` by default (the broker stores a message before accepting it).
   * No profile does: an origin fails its in-flight requests the moment its connection drops
   * (broker-unavailable), so a request that outlives a broker restart or failover could only be
   * executed after its caller was told it failed. The cost it would add per broker is in
   * `npm run bench`. SendOptions.durable still asks for it per send.
   */
  durableSends?: boolean;
  /** Hostname of the AMQP open, a template (`{cluster}`): Qpid Broker-J picks the virtual host
   *  by it. Default: the URL's host. */
  openHostname?: string;
}

export const PROFILES: Record<ProfileName, AddressProfile> = {
  rabbitmq3: {
    name: 'rabbitmq3',
    // A bare name is a queue (competing consumers); fan-out needs /topic/ (pitfall 6).
    eventAddress: '/topic/virtfence.{cluster}.events',
    eventSubscribeAddress: '/topic/virtfence.{cluster}.events',
    requestAddress: '/queue/virtfence.{cluster}.req.{host}',
    replyAddress: '/queue/virtfence.{cluster}.reply.{host}',
    eventCapabilities: [],
    queueCapabilities: [],
    // No anonymous relay and no dynamic receivers on 3.x (pitfall 2).
    anonymousRelay: false,
    dynamicReply: false,
    durableQueues: true,
  },
  rabbitmq4: {
    name: 'rabbitmq4',
    // v2 addresses: publish to the exchange; receivers attach to a queue bound to it, which
    // must be declared beforehand (broker/README.md).
    eventAddress: '/exchanges/amq.topic/virtfence.{cluster}.events',
    eventSubscribeAddress: '/queues/virtfence.{cluster}.events.{host}',
    requestAddress: '/queues/virtfence.{cluster}.req.{host}',
    replyAddress: '/queues/virtfence.{cluster}.reply.{host}',
    eventCapabilities: [],
    queueCapabilities: [],
    // One sender per address: an "accepted" from a relay is not a delivery everywhere.
    anonymousRelay: false,
    dynamicReply: false,
    durableQueues: false,
  },
  activemq: {
    name: 'activemq',
    eventAddress: 'topic://virtfence.{cluster}.events',
    eventSubscribeAddress: 'topic://virtfence.{cluster}.events',
    requestAddress: 'queue://virtfence.{cluster}.req.{host}',
    replyAddress: 'queue://virtfence.{cluster}.reply.{host}',
    eventCapabilities: [],
    queueCapabilities: [],
    // Named reply queues (not temp-queue://): a per-cluster user may then be limited to
    // virtfence.<cluster>.* (broker/activemq). One sender per address, no relay.
    anonymousRelay: false,
    dynamicReply: false,
    durableQueues: false,
  },
  artemis: {
    name: 'artemis',
    eventAddress: 'virtfence.{cluster}.events',
    eventSubscribeAddress: 'virtfence.{cluster}.events',
    requestAddress: 'virtfence.{cluster}.req.{host}',
    replyAddress: 'virtfence.{cluster}.reply.{host}',
    eventCapabilities: ['topic'],
    queueCapabilities: ['queue'],
    // Named reply queues, so the per-cluster security match virtfence.<cluster>.# covers every
    // address a host uses (broker/artemis). One sender per address, no relay.
    anonymousRelay: false,
    dynamicReply: false,
    durableQueues: false,
  },
  'qpid-broker-j': {
    name: 'qpid-broker-j',
    // One virtual host per cluster (the open's hostname); in it a fanout exchange and queues
    // created on first use by a node auto-creation policy (broker/qpid-broker-j).
    eventAddress: 'virtfence.{cluster}.events',
    eventSubscribeAddress: 'virtfence.{cluster}.events',
    requestAddress: 'virtfence.{cluster}.req.{host}',
    replyAddress: 'virtfence.{cluster}.reply.{host}',
    eventCapabilities: [],
    queueCapabilities: [],
    anonymousRelay: false,
    dynamicReply: false,
    durableQueues: false,
    openHostname: '{cluster}',
  },
  qpidd: {
    name: 'qpidd',
    // qpidd looks a link address up as one node name (`exchange/subject` is client-library
    // syntax it never splits). The capability `topic` asks for an exchange (every subscriber
    // gets its own auto-deleted queue: a fan-out), `queue` for a queue, and
    // `create-on-demand` creates the node on first attach, so no broker-side set-up or
    // name patterns are needed and a restarted (empty) broker is repopulated by the attaches.
    eventAddress: 'virtfence.{cluster}.events',
    eventSubscribeAddress: 'virtfence.{cluster}.events',
    requestAddress: 'virtfence.{cluster}.req.{host}',
    replyAddress: 'virtfence.{cluster}.reply.{host}',
    eventCapabilities: ['topic', 'create-on-demand'],
    queueCapabilities: ['queue', 'create-on-demand'],
    // Its anonymous relay accepts a message for a node that does not exist and drops it, so
    // "accepted" would not mean "queued": send on one link per address, whose attach creates
    // the queue (or is refused).
    anonymousRelay: false,
    // Named reply queues: a sender to them attaches with create-on-demand and is never refused,
    // whereas a reply to a dynamic queue whose requester has gone is a refused attach.
    dynamicReply: false,
    durableQueues: false,
  },
};

export interface ProfileOverrides {
  eventAddress?: string;
  eventSubscribeAddress?: string;
  requestAddress?: string;
  replyAddress?: string;
}

/** A profile with config overrides applied. An overridden event_address also becomes the
 *  subscribe address unless that is overridden too. */
export function resolveProfile(
  name: ProfileName,
  overrides: ProfileOverrides = {},
): AddressProfile {
  const base = PROFILES[name];
  const eventAddress = overrides.eventAddress ?? base.eventAddress;
  return {
    ...base,
    eventAddress,
    eventSubscribeAddress:
      overrides.eventSubscribeAddress ??
      (overrides.eventAddress !== undefined ? eventAddress : base.eventSubscribeAddress),
    requestAddress: overrides.requestAddress ?? base.requestAddress,
    replyAddress: overrides.replyAddress ?? base.replyAddress,
  };
}

/** Fills `{cluster}` and `{host}`; unknown placeholders are an error. */
export function expandAddress(
  template: string,
  values: { cluster: string; host?: string },
): string {
  return template.replace(/\{([a-z]+)\}/g, (_m, name: string) => {
    if (name === 'cluster') return values.cluster;
    if (name === 'host') {
      if (values.host === undefined) throw new Error(`address template ${template} needs {host}`);
      return values.host;
    }
    throw new Error(`unknown placeholder {${name}} in address template ${template}`);
  });
}
