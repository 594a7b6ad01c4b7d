/**
 * A real AF_UNIX datagram listener standing in for systemd's NOTIFY_SOCKET. Node cannot bind
 * datagram unix sockets, so a small python3 process receives and reports each datagram as one
 * JSON line with its CLOCK_MONOTONIC arrival time (ms).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';

export interface Datagram {
  /** Arrival, ms on the monotonic clock of the receiver. */
  t: number;
  text: string;
}

export interface NotifySocket {
  /** The value for NOTIFY_SOCKET (a path, or '@name' for an abstract socket). */
  address: string;
  received: Datagram[];
  waitFor(match: (d: Datagram) => boolean, timeoutMs?: number): Promise<Datagram>;
  close(): void;
}

const RECEIVER = `
import json, socket, sys, time
addr = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\\0" + addr[1:] if addr.startswith("@") else addr)
print(json.dumps({"bound": True}), flush=True)
while True:
    data = s.recv(65536)
    print(json.dumps({"t": time.monotonic() * 1000, "text": data.decode()}), flush=True)
`;

export async function openNotifySocket(address: string): Promise<NotifySocket> {
  const child: ChildProcess = spawn('python3', ['-c', RECEIVER, address], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const received: Datagram[] = [];
  let wake: (() => void) | undefined;
  let bound: () => void = () => undefined;
  const ready = new Promise<void>((resolve, reject) => {
    bound = resolve;
    child.once('exit', (code) => reject(new Error(`notify receiver exited with ${code}`)));
  });
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    const parsed = JSON.parse(line) as { bound?: boolean; t: number; text: string };
    if (parsed.bound) return bound();
    received.push({ t: parsed.t, text: parsed.text });
    wake?.();
  });
  await ready;
  return {
    address,
    received,
    async waitFor(match, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = received.find(match);
        if (found) return found;
        const left = deadline - Date.now();
        if (left <= 0)
          throw new Error(
            `no matching datagram; got: ${JSON.stringify(received.map((d) => d.text))}`,
          );
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    },
    close: () => void child.kill('SIGKILL'),
  };
}

/** The monotonic clock python3 uses (CLOCK_MONOTONIC, ms), for comparing with arrivals. */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
