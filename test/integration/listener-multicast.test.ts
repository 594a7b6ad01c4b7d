/** The multicast listener through the shared listener compliance suite, with a fence_xvm-like client. */
import dgram from 'node:dgram';
import type { MulticastListenerConfig } from '../../src/config/types.js';
import { createMulticastListener } from '../../src/listeners/multicast/index.js';
import { HashType } from '../../src/protocol/constants.js';
import { encodeFenceRequest } from '../../src/protocol/fence-request.js';
import { silentLogger } from '../../src/util/logger.js';
import { sendDatagram, xvmRequest } from '../../tools/harness/xvm-client.js';
import { runListenerCompliance, type SendResult } from '../helpers/listener-compliance.js';

const KEY = Buffer.from('example-key-0123');
const PORT = 12280;
const CALLBACK_BASE = 12281;
const clientAddress = (client: number): string => `127.0.0.${1 + client}`;

const config: MulticastListenerConfig = {
  keyFile: '/unused',
  hash: HashType.sha256,
  auth: HashType.sha256,
  family: 'ipv4',
  address: '225.0.0.12',
  port: PORT,
  interface: undefined,
};

let callbackPort = CALLBACK_BASE;

async function multicastRequest(
  op: number,
  target: string,
  seqno: number,
  client: number,
  timeoutMs: number,
): Promise<SendResult> {
  const port = callbackPort;
  callbackPort = callbackPort >= CALLBACK_BASE + 15 ? CALLBACK_BASE : callbackPort + 1;
  const result = await xvmRequest({
    op,
    target,
    seqno,
    key: KEY,
    daemonAddress: '225.0.0.12',
    daemonPort: PORT,
    callbackAddress: clientAddress(client),
    callbackPort: port,
    timeoutMs,
  });
  return result ?? { code: undefined };
}

runListenerCompliance({
  name: 'multicast',
  async create() {
    return {
      malformed: ['short', 'garbage', 'wrong-key'],
      duplicates: 'suppressed',
      expectedSource: (client) => clientAddress(client),
      async start(handler) {
        const listener = createMulticastListener(config, {
          logger: silentLogger,
          key: KEY,
          openHypervisor: () => Promise.reject(new Error('not used')),
        });
        await listener.start(handler);
        return listener;
      },
      send: (op, target, o = {}) =>
        multicastRequest(op, target, o.seqno ?? 1, o.client ?? 0, o.timeoutMs ?? 1_500),
      async sendMalformed(kind, o = {}) {
        const valid = encodeFenceRequest(
          {
            request: 4,
            hashtype: HashType.sha256,
            domain: 'bad',
            address: '127.0.0.1',
            port: CALLBACK_BASE,
            seqno: o.seqno ?? 1,
          },
          kind === 'wrong-key' ? Buffer.from('another-key') : KEY,
        );
        const bytes =
          kind === 'short'
            ? valid.subarray(0, 100)
            : kind === 'garbage'
              ? Buffer.alloc(176, 0x5a)
              : valid;
        await sendDatagram(bytes, '225.0.0.12', PORT);
      },
      async assertReleased() {
        const probe = dgram.createSocket('udp4');
        await new Promise<void>((resolve, reject) => {
          probe.once('error', reject);
          probe.bind({ port: PORT, exclusive: true }, () => resolve());
        });
        await new Promise<void>((resolve) => probe.close(() => resolve()));
      },
      async dispose() {},
    };
  },
});
