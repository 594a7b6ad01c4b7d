#!/usr/bin/env node
/* global URL, setTimeout, clearTimeout */
// Readiness probe for an AMQP 1.0 broker: a real connection plus a link attach, retried
// every 100 ms until the timeout.
// Usage: node broker/ready.mjs <amqp-url> [timeout-ms] [address] [capability] [--pid PID]
// Exit 0 when ready, 1 on timeout or when PID (the broker) has exited. A TCP port check is not
// enough: a broker may accept TCP long before it serves AMQP (docs/brokers.md §4).
import rhea from 'rhea';

const args = process.argv.slice(2);
const pidAt = args.indexOf('--pid');
const pid = pidAt >= 0 ? Number(args.splice(pidAt, 2)[1]) : undefined;
const url = new URL(args[0] ?? 'amqp://127.0.0.1:5672');
const timeoutMs = Number(args[1] ?? 60000);
const address = args[2] ?? '/topic/virtfence.ready-probe';
const capability = args[3];
const deadline = Date.now() + timeoutMs;

function attempt() {
  return new Promise((resolve) => {
    const container = rhea.create_container({ id: `virtfence-ready-${process.pid}-${Date.now()}` });
    let done = false;
    const finish = (ok, conn) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      try {
        if (conn) {
          conn.close();
          conn.socket?.destroy?.();
        }
      } catch {
        // closing a half-open connection may throw; the result is what matters
      }
      resolve(ok);
    };
    const options = {
      host: url.hostname,
      port: Number(url.port || (url.protocol === 'amqps:' ? 5671 : 5672)),
      reconnect: false,
      transport: url.protocol === 'amqps:' ? 'tls' : 'tcp',
    };
    // The AMQP open's hostname (Qpid Broker-J picks the virtual host by it).
    if (process.env.VIRTFENCE_PROBE_HOSTNAME)
      options.hostname = process.env.VIRTFENCE_PROBE_HOSTNAME;
    if (url.username) {
      options.username = decodeURIComponent(url.username);
      options.password = decodeURIComponent(url.password);
    }
    let conn;
    const timer = setTimeout(() => finish(false, conn), 2000);
    // An attach answered with no target is a refusal (the broker detaches right after).
    container.on('sender_open', (ctx) =>
      finish(Boolean(ctx.sender?.remote?.attach?.target), ctx.connection),
    );
    for (const ev of [
      'connection_error',
      'connection_close',
      'disconnected',
      'session_error',
      'sender_error',
      'sender_close',
      'error',
      'protocol_error',
    ]) {
      container.on(ev, (ctx) => finish(false, ctx?.connection));
    }
    try {
      conn = container.connect(options);
      conn.open_sender(capability ? { target: { address, capabilities: [capability] } } : address);
    } catch {
      finish(false, conn);
    }
  });
}

function brokerGone() {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

for (;;) {
  if (await attempt()) process.exit(0);
  if (brokerGone()) {
    process.stderr.write(`ready.mjs: the broker (pid ${pid}) exited\n`);
    process.exit(1);
  }
  if (Date.now() >= deadline) {
    process.stderr.write(`ready.mjs: ${url.host} not ready after ${timeoutMs} ms\n`);
    process.exit(1);
  }
  await new Promise((r) => setTimeout(r, 100));
}
