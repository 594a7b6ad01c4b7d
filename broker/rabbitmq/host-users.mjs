#!/usr/bin/env node
// Least-privilege RabbitMQ 3.x users for virtfence hosts (rabbitmq3 profile).
//
//   node broker/rabbitmq/host-users.mjs DEFINITIONS CLUSTER HOST[=PASSWORD] …
//
// Adds (or replaces) one user per host in the definitions file, named `virtfence/CLUSTER/HOST`,
// that may:
//   - consume only its own request and reply queues (virtfence.CLUSTER.req.HOST and
//     virtfence.CLUSTER.reply.HOST) and its own server-named fan-out queue (amq.gen-…, exclusive
//     to its connection);
//   - publish to the cluster's events (topic amq.topic, routing key virtfence.CLUSTER.events
//     only) and to any host's request or reply queue of its cluster (the default exchange);
//   - declare queues of its cluster (RabbitMQ 3.x declares a /queue/ target when a sender
//     attaches, which needs `configure` on it).
// A password not given is generated; every password is printed as HOST=PASSWORD on stdout.
// Load the file with `load_definitions` (start.sh does) or `rabbitmqctl import_definitions`.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';

const IDENT = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const esc = (s) => s.replace(/[.\\^$|?*+()[\]{}-]/g, (c) => `\\${c}`);

/** RabbitMQ's rabbit_password_hashing_sha256: base64(salt ‖ sha256(salt ‖ password)). */
export function passwordHash(password, salt = randomBytes(4)) {
  const digest = createHash('sha256').update(salt).update(password, 'utf8').digest();
  return Buffer.concat([salt, digest]).toString('base64');
}

export function hostUserName(cluster, host) {
  return `virtfence/${cluster}/${host}`;
}

/** The users, permissions and topic permissions of one host. */
export function hostUserDefinitions(cluster, host, password, vhost = '/') {
  if (!IDENT.test(cluster) || !IDENT.test(host)) {
    throw new Error(
      `cluster and host must be identifiers (letters, digits, . _ -): ${cluster} ${host}`,
    );
  }
  const c = esc(cluster);
  const h = esc(host);
  const name = hostUserName(cluster, host);
  const own = `virtfence\\.${c}\\.(req|reply)\\.${h}`;
  return {
    user: {
      name,
      password_hash: passwordHash(password),
      hashing_algorithm: 'rabbit_password_hashing_sha256',
      tags: [],
    },
    permission: {
      user: name,
      vhost,
      configure: `^(amq\\.gen-.*|virtfence\\.${c}\\.(req|reply)\\..+)$`,
      write: `^(amq\\.topic|amq\\.default|amq\\.gen-.*|${own})$`,
      read: `^(amq\\.topic|amq\\.gen-.*|${own})$`,
    },
    topicPermission: {
      user: name,
      vhost,
      exchange: 'amq.topic',
      write: `^virtfence\\.${c}\\.events$`,
      read: `^virtfence\\.${c}\\.events$`,
    },
  };
}

/** Returns the definitions with the hosts' users added (replacing users of the same name). */
export function addHostUsers(definitions, cluster, hosts) {
  const out = {
    ...definitions,
    users: [...(definitions.users ?? [])],
    permissions: [...(definitions.permissions ?? [])],
    topic_permissions: [...(definitions.topic_permissions ?? [])],
  };
  for (const { host, password } of hosts) {
    const d = hostUserDefinitions(cluster, host, password);
    const other = (e) => e.name !== d.user.name && e.user !== d.user.name;
    out.users = out.users.filter(other).concat(d.user);
    out.permissions = out.permissions.filter(other).concat(d.permission);
    out.topic_permissions = out.topic_permissions.filter(other).concat(d.topicPermission);
  }
  return out;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop())) {
  const [file, cluster, ...specs] = process.argv.slice(2);
  if (!file || !cluster || specs.length === 0) {
    console.error('usage: host-users.mjs DEFINITIONS CLUSTER HOST[=PASSWORD] …');
    process.exit(2);
  }
  const hosts = specs.map((spec) => {
    const at = spec.indexOf('=');
    return at < 0
      ? { host: spec, password: randomBytes(18).toString('base64url') }
      : { host: spec.slice(0, at), password: spec.slice(at + 1) };
  });
  try {
    const updated = addHostUsers(JSON.parse(readFileSync(file, 'utf8')), cluster, hosts);
    writeFileSync(file, JSON.stringify(updated, null, 2) + '\n');
  } catch (err) {
    console.error(`host-users.mjs: ${err.message}`);
    process.exit(1);
  }
  for (const { host, password } of hosts) console.log(`${host}=${password}`);
}
