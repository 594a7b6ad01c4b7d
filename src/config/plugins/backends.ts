/**
 * The backend plugins' declarations: name, version, keys. The libvirt keys follow C
 * (docs/protocol.md §14.1, §15.5); the amqp keys are ours (README, docs/routing.md).
 */
import { z } from 'zod';
import { IdentifierSchema } from '../../messages/schemas.js';
import { defineBlock } from '../block.js';
import { boolText, msText } from '../fields.js';
import type { PluginDeclaration } from './plugin.js';

export const libvirtBackend = {
  kind: 'backend' as const,
  name: 'libvirt',
  version: '0.3',
  block: defineBlock(
    'backends/libvirt',
    { uri: z.array(z.string()) },
    { numbered: ['uri'], names: { uri: 'uris' } },
  ),
};

/** Broker address profiles (their address templates are in src/amqp/profiles.ts). */
export const PROFILE_NAMES = [
  'rabbitmq3',
  'rabbitmq4',
  'activemq',
  'artemis',
  'qpid-broker-j',
  'qpidd',
] as const;
export type ProfileName = (typeof PROFILE_NAMES)[number];

/** The `{name}` placeholders of an address template. */
export function templatePlaceholders(template: string): string[] {
  return [...template.matchAll(/\{([a-z]+)\}/g)].map((m) => m[1] ?? '');
}

export const AMQP_DEFAULTS = {
  cluster: 'virtfence',
  profile: 'rabbitmq3' as ProfileName,
  heartbeatInterval: 1000,
  deadAfter: 5000,
  idleTimeout: 5000,
  maxReconnectDelay: 2000,
  sendTimeout: 5000,
  nameMode: 'name' as const,
};

const brokerUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return (u.protocol === 'amqp:' || u.protocol === 'amqps:') && u.hostname !== '';
  } catch {
    return false;
  }
}, 'an amqp://host[:port] or amqps://host[:port] URL');

/**
 * `hosts`: the cluster's host ids, comma-separated (both routed backends). With it, "synced"
 * needs an inventory from every listed host that is not dead with fencing evidence, so a VM of
 * a host no daemon has heard from is never answered "runs nowhere" (docs/routing.md §sync).
 */
const hostList = z.string().transform((text, ctx) => {
  const ids = [
    ...new Set(
      text
        .split(',')
        .map((h) => h.trim())
        .filter((h) => h.length > 0),
    ),
  ];
  if (ids.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'names no host (comma-separated host ids)' });
    return z.NEVER;
  }
  for (const id of ids) {
    const r = IdentifierSchema.safeParse(id);
    if (!r.success) {
      ctx.addIssue({
        code: 'custom',
        message: `'${id}' is not a host id: ${r.error.issues[0]?.message ?? 'invalid'}`,
      });
      return z.NEVER;
    }
  }
  return ids;
});

const template = (needsHost: boolean) =>
  z
    .string()
    .min(1)
    .refine(
      (t) => templatePlaceholders(t).every((p) => p === 'cluster' || p === 'host'),
      'only {cluster} and {host} placeholders',
    )
    .refine(
      (t) => !needsHost || templatePlaceholders(t).includes('host'),
      'must contain {host} (one address per host)',
    );

export const amqpBackend = {
  kind: 'backend' as const,
  name: 'amqp',
  version: '0.1',
  block: defineBlock(
    'backends/amqp',
    {
      url: z.array(brokerUrl).min(1, 'url is required'),
      username: z.string().min(1).optional(),
      password: z.string().optional(),
      password_file: z.string().min(1).optional(),
      tls: boolText.default(false),
      ca_file: z.string().min(1).optional(),
      cluster: IdentifierSchema.default(AMQP_DEFAULTS.cluster),
      /** Default: the host name (filled in before validation). */
      host_id: IdentifierSchema,
      hosts: hostList.optional(),
      key_file: z.string({ error: 'key_file is required' }).min(1, 'key_file is required'),
      profile: z.enum(PROFILE_NAMES).default(AMQP_DEFAULTS.profile),
      event_address: template(false).optional(),
      event_subscribe_address: template(false).optional(),
      request_address: template(true).optional(),
      reply_address: template(true).optional(),
      heartbeat_interval: msText(50, 600_000).default(AMQP_DEFAULTS.heartbeatInterval),
      dead_after: msText(100, 3_600_000).default(AMQP_DEFAULTS.deadAfter),
      uri: z.array(z.string().min(1)),
      container_id: IdentifierSchema.optional(),
      idle_time_out: msText(0, 600_000).default(AMQP_DEFAULTS.idleTimeout),
      max_reconnect_delay: msText(10, 60_000).default(AMQP_DEFAULTS.maxReconnectDelay),
      send_timeout: msText(100, 600_000).default(AMQP_DEFAULTS.sendTimeout),
      name_mode: z.enum(['name', 'uuid']).default(AMQP_DEFAULTS.nameMode),
    },
    {
      numbered: ['url', 'uri'],
      names: { url: 'urls', uri: 'uris', idle_time_out: 'idleTimeout' },
    },
  ),
};

/** Profiles whose broker refuses a connection without a SASL user name. */
export const PROFILES_REQUIRING_USERNAME: readonly ProfileName[] = ['activemq', 'qpid-broker-j'];

/** The settings a profile's rules look at (config keys, after parsing). */
export interface ProfileCheckInput {
  profile: ProfileName;
  urls: string[];
  username?: string | undefined;
  eventAddress?: string | undefined;
  eventSubscribeAddress?: string | undefined;
  requestAddress?: string | undefined;
  replyAddress?: string | undefined;
}

const PREFIXES: Partial<Record<ProfileName, { fanout: RegExp; queue: RegExp; hint: string }>> = {
  // A bare name is a shared queue on RabbitMQ: every event would reach one host only.
  rabbitmq3: {
    fanout: /^\/(topic|exchange)\//,
    queue: /^\/(queue|amq\/queue)\//,
    hint: 'fan-out /topic/… or /exchange/…, queues /queue/…',
  },
  rabbitmq4: {
    fanout: /^\/(exchanges|queues)\//,
    queue: /^\/queues\//,
    hint: 'publish to /exchanges/…, subscribe and queues /queues/…',
  },
  activemq: {
    fanout: /^topic:\/\//,
    queue: /^queue:\/\//,
    hint: 'fan-out topic://…, queues queue://…',
  },
};

/**
 * What a profile requires of the settings, as config-key problems (empty when fine): the
 * broker-specific facts `virtfence config check` and the daemon apply alike.
 */
export function profileProblems(input: ProfileCheckInput): { key: string; message: string }[] {
  const problems: { key: string; message: string }[] = [];
  const urlsHaveUser = input.urls.length > 0 && input.urls.every((u) => urlUser(u) !== '');
  if (
    PROFILES_REQUIRING_USERNAME.includes(input.profile) &&
    input.username === undefined &&
    !urlsHaveUser
  ) {
    problems.push({
      key: 'username',
      message: `profile ${input.profile} needs a username (the broker refuses connections without SASL credentials)`,
    });
  }
  const rules = PREFIXES[input.profile];
  if (rules) {
    const check = (key: string, value: string | undefined, pattern: RegExp) => {
      if (value !== undefined && !pattern.test(value))
        problems.push({
          key,
          message: `${value} does not fit profile ${input.profile} (${rules.hint})`,
        });
    };
    check('event_address', input.eventAddress, rules.fanout);
    check('event_subscribe_address', input.eventSubscribeAddress, rules.fanout);
    check('request_address', input.requestAddress, rules.queue);
    check('reply_address', input.replyAddress, rules.queue);
  }
  if (
    input.profile === 'rabbitmq4' &&
    input.eventSubscribeAddress !== undefined &&
    !templatePlaceholders(input.eventSubscribeAddress).includes('host')
  ) {
    problems.push({
      key: 'event_subscribe_address',
      message: 'profile rabbitmq4 subscribes through one queue per host: it must contain {host}',
    });
  }
  return problems;
}

function urlUser(url: string): string {
  try {
    return new URL(url).username;
  } catch {
    return '';
  }
}

/**
 * The amqp block as the daemon accepts it: every key, dead_after above heartbeat_interval,
 * password or password_file, and the chosen profile's rules (`config check` applies the same).
 */
export const AmqpBlockSchema = amqpBackend.block.raw
  .refine((c) => c.dead_after > c.heartbeat_interval, {
    message: 'dead_after must be longer than heartbeat_interval',
    path: ['dead_after'],
  })
  .refine((c) => !(c.password !== undefined && c.password_file !== undefined), {
    message: 'give password or password_file, not both',
    path: ['password_file'],
  })
  .superRefine((c, ctx) => {
    const problems = profileProblems({
      profile: c.profile,
      urls: c.url,
      username: c.username,
      eventAddress: c.event_address,
      eventSubscribeAddress: c.event_subscribe_address,
      requestAddress: c.request_address,
      replyAddress: c.reply_address,
    });
    for (const p of problems) ctx.addIssue({ code: 'custom', message: p.message, path: [p.key] });
  });

export const CPG_DEFAULTS = {
  /** Our CPG group. Not C's `fence-agents`: the two speak different formats (README). */
  group: 'virtfence',
  heartbeatInterval: 1000,
  deadAfter: 5000,
  fenceHistory: 'none' as const,
};

/**
 * The cpg backend: C's keys (`uri`, `uri1`, …, `name_mode`; docs/protocol.md §14.2) read as C
 * reads them, and ours for the routing layer over CPG (README).
 */
export const cpgBackend = {
  kind: 'backend' as const,
  name: 'cpg',
  version: '0.1',
  block: defineBlock(
    'backends/cpg',
    {
      uri: z
        .array(z.string().min(1))
        .min(1, "uri is required (this host's libvirt URI, e.g. qemu:///system)"),
      // C compares with strcasecmp and treats anything but "uuid" as name mode.
      name_mode: z
        .string()
        .optional()
        .transform((v): 'name' | 'uuid' =>
          v !== undefined && v.toLowerCase() === 'uuid' ? 'uuid' : 'name',
        ),
      group: z
        .string()
        .min(1)
        .max(127, 'at most 127 bytes (CPG group names)')
        .regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" and "-"')
        .default(CPG_DEFAULTS.group),
      /** Default: the host name (filled in before validation). */
      host_id: IdentifierSchema,
      hosts: hostList.optional(),
      /** Default: corosync's authkey when it exists (src/backends/cpg/config.ts). */
      key_file: z.string().min(1).optional(),
      heartbeat_interval: msText(50, 600_000).default(CPG_DEFAULTS.heartbeatInterval),
      dead_after: msText(100, 3_600_000).default(CPG_DEFAULTS.deadAfter),
      fence_history: z.enum(['none', 'pacemaker']).default(CPG_DEFAULTS.fenceHistory),
    },
    { numbered: ['uri'], names: { uri: 'uris' } },
  ),
};

/** In the order `fence_virtd -l` and the `-c` dialog list them. */
export const BACKEND_PLUGINS: readonly PluginDeclaration[] = [
  libvirtBackend,
  amqpBackend,
  cpgBackend,
];
