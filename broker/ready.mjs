#!/usr/bin/env node
/* global URL, setTimeout, clearTimeout */
// Readiness probe for an AMQP 1.0 broker: a real connection plus a link attach, retried
// every 100 ms until the timeout. Usage: node broker/ready.mjs <amqp-url> [timeout-ms] [address]
// Exit 0 when ready, 1 on timeout. A TCP port check is not enough (docs/brokers.md §4).
import rhea from 'rhea';

const url = new URL(process.argv[2] ?? 'amqp://127.0.0.1:5672');
const timeoutMs = Number(process.argv[3] ?? 60000);
const address = process.argv[4] ?? '/topic/virtfence.ready-probe';
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
    if (url.username) {
      options.username = decodeURIComponent(url.username);
      options.password = decodeURIComponent(url.password);
    }
    let conn;
    const timer = setTimeout(() => finish(false, conn), 2000);
    container.on('sender_open', (ctx) => finish(true, ctx.connection));
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
      conn.open_sender(address);
    } catch {
      finish(false, conn);
    }
  });
}

for (;;) {
  if (await attempt()) process.exit(0);
  if (Date.now() >= deadline) {
    process.stderr.write(`ready.mjs: ${url.host} not ready after ${timeoutMs} ms\n`);
    process.exit(1);
  }
  await new Promise((r) => setTimeout(r, 100));
}
