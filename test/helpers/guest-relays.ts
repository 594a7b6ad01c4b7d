/**
 * The test's stand-ins for QEMU's side of a guest's fencing device: the daemon connects to the
 * domain's unix socket, the guest program talks to the other end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { waitFor } from './listener-compliance.js';

/** socat as QEMU's serial chardev: listens on the domain's socket, the guest side is a pty. */
export class PtyRelay {
  private output = '';
  private constructor(private readonly child: ChildProcess) {
    child.stderr?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
  }

  static async start(socketPath: string, ttyPath: string): Promise<PtyRelay> {
    const child = spawn(
      'socat',
      ['-d', '-d', `PTY,link=${ttyPath},raw,echo=0`, `UNIX-LISTEN:${socketPath}`],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    const relay = new PtyRelay(child);
    await waitFor(() => (existsSync(socketPath) && existsSync(ttyPath)) || child.exitCode !== null);
    if (child.exitCode !== null) throw new Error(`socat exited: ${relay.output}`);
    return relay;
  }

  /** The daemon connected to the guest socket. */
  async waitConnected(): Promise<void> {
    await waitFor(() => this.output.includes('accepting connection'));
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    process.kill(this.child.pid!, 'SIGTERM');
    await exited;
  }
}

/** QEMU's guestfwd: guest TCP connections are joined to the daemon's unix connection. */
export class ChannelRelay {
  private daemonSide: Socket | undefined;
  private guestSide: Socket | undefined;
  /** Connections the daemon made to the guest socket, and how many of them it closed. */
  connections = 0;
  closedByDaemon = 0;
  private constructor(
    private readonly unix: Server,
    private readonly tcp: Server,
  ) {}

  static async start(socketPath: string, port: number): Promise<ChannelRelay> {
    const unix = createServer();
    const tcp = createServer();
    const relay = new ChannelRelay(unix, tcp);
    unix.on('connection', (socket) => {
      relay.daemonSide = socket;
      relay.connections += 1;
      socket.on('close', () => (relay.closedByDaemon += 1));
      socket.on('error', () => undefined);
      socket.on('data', (data) => relay.guestSide?.write(data));
    });
    tcp.on('connection', (socket) => {
      relay.guestSide = socket;
      socket.on('error', () => undefined);
      socket.on('data', (data) => relay.daemonSide?.write(data));
    });
    await new Promise<void>((resolve) => unix.listen(socketPath, resolve));
    await new Promise<void>((resolve) => tcp.listen(port, '127.0.0.1', resolve));
    return relay;
  }

  async waitConnected(): Promise<void> {
    await waitFor(() => this.daemonSide !== undefined);
  }

  async stop(): Promise<void> {
    this.daemonSide?.destroy();
    this.guestSide?.destroy();
    await Promise.all([this.unix, this.tcp].map((s) => new Promise((resolve) => s.close(resolve))));
  }
}
