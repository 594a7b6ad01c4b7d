/**
 * RabbitMQ 3.x with its AMQP 1.0 plugin (broker/rabbitmq, Debian's package): the broker
 * compliance suite and the multi-host fencing suite, on one broker started once; and
 * broker/rabbitmq/start.sh with a bind address other than loopback.
 */
import { jest } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { brokerAvailable } from '../../src/harness/brokers.js';
import { brokerCompliance, sharedBroker } from '../helpers/broker-compliance.js';
import { multihostCompliance } from '../helpers/multihost-compliance.js';

jest.setTimeout(120_000);
const execFileAsync = promisify(execFile);

const describeIf = brokerAvailable('rabbitmq') ? describe : describe.skip;
describeIf('RabbitMQ', () => {
  const fixture = sharedBroker('rabbitmq', 5804, { epmdPort: 4390 });
  brokerCompliance(fixture);
  multihostCompliance(fixture, { basePort: 12631 });
});

describeIf('broker/rabbitmq/start.sh', () => {
  it('serves on any bind address (0.0.0.0: epmd stays on loopback) and stops by pid', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtfence-rabbit-bind-'));
    try {
      const { stdout } = await execFileAsync(
        'bash',
        ['broker/rabbitmq/start.sh', dir, '5806', '25806', '4392'],
        { env: { ...process.env, BIND_ADDRESS: '0.0.0.0' }, timeout: 90_000 },
      );
      expect(stdout.trim().split('\n').pop()).toBe('amqp://127.0.0.1:5806');
      const beam = Number(readFileSync(join(dir, 'beam.pid'), 'utf8'));
      const epmd = Number(readFileSync(join(dir, 'epmd.pid'), 'utf8'));
      expect(() => process.kill(beam, 0)).not.toThrow();
      expect(() => process.kill(epmd, 0)).not.toThrow();
      await execFileAsync('bash', ['broker/rabbitmq/stop.sh', dir], { timeout: 60_000 });
      expect(() => process.kill(beam, 0)).toThrow();
      expect(() => process.kill(epmd, 0)).toThrow();
    } finally {
      await execFileAsync('bash', ['broker/rabbitmq/stop.sh', dir, 'KILL']).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
