/**
 * systemd's notify protocol, received by a real AF_UNIX datagram socket given to the daemon as
 * NOTIFY_SOCKET: message order (STATUS while starting, READY=1 once listeners are bound and the
 * backend serves, RELOADING=1/READY=1 around SIGHUP, STOPPING=1 last), the watchdog rate, and
 * that a blocked event loop stops the beats. Also: the log file is reopened on SIGHUP.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { OUR_DAEMON, startDaemon, tempDir, type TempDir } from '../helpers/daemon.js';
import { monotonicMs, openNotifySocket, type NotifySocket } from '../helpers/notify-socket.js';
import { createNotifier } from '../../src/daemon/systemd.js';
import { silentLogger } from '../../src/util/logger.js';

let dir: TempDir;
let keyFile: string;
beforeAll(() => {
  dir = tempDir('virtfence-systemd-');
  keyFile = dir.file('key', 'systemd-test-key');
});
afterAll(() => dir.remove());

const libvirtConfig = (port: number): string =>
  `fence_virtd { listener = "multicast,tcp"; backend = "libvirt"; }\n` +
  `listeners { multicast { key_file = "${keyFile}"; port = "${port}"; }\n` +
  `  tcp { key_file = "${keyFile}"; port = "${port + 1}"; } }\n` +
  `backends { libvirt { uri = "test:///default"; } }\n`;

const texts = (socket: NotifySocket): string[] => socket.received.map((d) => d.text);

describe('Type=notify: a real datagram listener as NOTIFY_SOCKET', () => {
  it('sends STATUS while starting, READY=1 once serving, beats at half WATCHDOG_USEC, RELOADING/READY on SIGHUP, STOPPING=1 last', async () => {
    const socket = await openNotifySocket(dir.path + '/notify.sock');
    const logFile = dir.path + '/daemon.log';
    // Logs go to the file, so readiness is judged by the datagrams alone.
    const child = spawn(
      OUR_DAEMON,
      ['-F', '-f', dir.file('libvirt.conf', libvirtConfig(12411)), '-p', dir.path + '/l.pid'],
      {
        stdio: 'ignore',
        env: {
          ...process.env,
          NOTIFY_SOCKET: socket.address,
          WATCHDOG_USEC: '200000', // beats every 100 ms
          VIRTFENCE_LOG_FILE: logFile,
          VIRTFENCE_LOG_FORMAT: 'json',
        },
      },
    );
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const daemon = {
      pid: child.pid!,
      stop: async (signal: NodeJS.Signals): Promise<number | null> => {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
        return exited;
      },
    };
    try {
      const ready = await socket.waitFor((d) => d.text.startsWith('READY=1'));
      const before = texts(socket).slice(0, texts(socket).indexOf(ready.text));
      expect(before.filter((t) => t.startsWith('STATUS='))).toEqual([
        'STATUS=Reading the configuration',
        'STATUS=Starting backend libvirt',
        'STATUS=Starting listener multicast',
        'STATUS=Starting listener tcp',
      ]);
      expect(ready.text).toBe('READY=1\nSTATUS=Serving: listeners multicast,tcp, backend libvirt');
      // Both listeners had logged that they were bound before READY went out.
      const lines = (): Array<{ event: string; listener?: string }> =>
        fs
          .readFileSync(logFile, 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as { event: string; listener?: string });
      const events = lines().map((l) => `${l.event}${l.listener ? ':' + l.listener : ''}`);
      expect(events.indexOf('listening:multicast')).toBeGreaterThanOrEqual(0);
      expect(events.indexOf('listening:tcp')).toBeLessThan(events.indexOf('ready'));

      // Watchdog: one beat per 100 ms, from the event loop.
      const from = ready.t;
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const beats = socket.received.filter(
        (d) => d.text === 'WATCHDOG=1' && d.t > from && d.t <= from + 1_000,
      );
      expect(beats.length).toBeGreaterThanOrEqual(8);
      expect(beats.length).toBeLessThanOrEqual(11);

      // logrotate: move the file away, SIGHUP, the daemon writes to a new file at the path.
      fs.renameSync(logFile, logFile + '.1');
      const count = socket.received.length;
      process.kill(daemon.pid, 'SIGHUP');
      await socket.waitFor((d) => d.text.startsWith('RELOADING=1'));
      const reloadIndex = texts(socket).findIndex((t) => t.startsWith('RELOADING=1'));
      expect(reloadIndex).toBeGreaterThanOrEqual(count);
      expect(texts(socket)[reloadIndex]).toMatch(
        /^RELOADING=1\nSTATUS=Reopening the log file\nMONOTONIC_USEC=\d+$/,
      );
      await socket.waitFor((d) => d.text === 'READY=1');
      expect(lines().map((l) => l.event)).toContain('log-reopened');
      expect(fs.readFileSync(logFile + '.1', 'utf8')).not.toContain('log-reopened');

      expect(await daemon.stop('SIGTERM')).toBe(0);
      const stopping = texts(socket).findIndex((t) => t.startsWith('STOPPING=1'));
      expect(texts(socket)[stopping]).toBe('STOPPING=1\nSTATUS=Stopping on SIGTERM');
      // Nothing after STOPPING=1: the beats stopped with it.
      expect(texts(socket).slice(stopping + 1)).toEqual([]);
      expect(lines().map((l) => l.event)).toContain('stopped');
    } finally {
      await daemon.stop('SIGKILL');
      socket.close();
    }
  });

  it('amqp backend: no READY=1 while the broker is unreachable; STATUS says it waits for it (abstract socket name)', async () => {
    const socket = await openNotifySocket(`@virtfence-notify-${process.pid}`);
    const clusterKey = dir.file('cluster.key', 'x'.repeat(32));
    const config =
      `fence_virtd { listener = "tcp"; backend = "amqp"; }\n` +
      `listeners { tcp { key_file = "${keyFile}"; port = "12421"; } }\n` +
      `backends { amqp { url = "amqp://127.0.0.1:1"; key_file = "${clusterKey}";` +
      ` host_id = "hv1"; uri = "test:///default"; max_reconnect_delay = "200"; } }\n`;
    const daemon = await startDaemon({
      kind: 'ours',
      configFile: dir.file('amqp.conf', config),
      pidFile: dir.path + '/amqp.pid',
      env: { NOTIFY_SOCKET: socket.address },
    }).catch((err: Error) => {
      socket.close();
      throw err;
    });
    try {
      await socket.waitFor((d) => d.text === 'STATUS=Waiting for the broker');
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(texts(socket).some((t) => t.startsWith('READY=1'))).toBe(false);
      expect(await daemon.stop('SIGTERM')).toBe(0);
      expect(texts(socket).at(-1)).toBe('STOPPING=1\nSTATUS=Stopping on SIGTERM');
    } finally {
      await daemon.stop('SIGKILL');
      socket.close();
    }
  });

  it('a blocked event loop stops the watchdog beats; they resume when it runs again', async () => {
    const socket = await openNotifySocket(dir.path + '/loop.sock');
    const notifier = createNotifier({
      logger: silentLogger,
      env: { NOTIFY_SOCKET: socket.address, WATCHDOG_USEC: '100000' }, // beats every 50 ms
    });
    try {
      expect(notifier.active).toBe(true);
      expect(notifier.watchdogMs).toBe(50);
      notifier.startWatchdog();
      await new Promise((resolve) => setTimeout(resolve, 300));
      const blockedFrom = monotonicMs();
      while (monotonicMs() - blockedFrom < 700) {
        // busy: the event loop cannot run timers
      }
      const blockedTo = monotonicMs();
      await new Promise((resolve) => setTimeout(resolve, 300));
      const beats = socket.received.filter((d) => d.text === 'WATCHDOG=1');
      expect(beats.filter((d) => d.t < blockedFrom).length).toBeGreaterThanOrEqual(3);
      // No beat was sent while the loop was blocked (a timer due during the block fires right
      // after it, so allow the first few ms).
      expect(beats.filter((d) => d.t > blockedFrom + 60 && d.t < blockedTo).length).toBe(0);
      expect(beats.filter((d) => d.t > blockedTo).length).toBeGreaterThanOrEqual(3);
    } finally {
      notifier.close();
      socket.close();
    }
  });

  it('without NOTIFY_SOCKET nothing is loaded or sent', () => {
    const notifier = createNotifier({ logger: silentLogger, env: { WATCHDOG_USEC: '100000' } });
    expect(notifier.active).toBe(false);
    expect(notifier.watchdogMs).toBeUndefined();
  });
});
