/**
 * RabbitMQ 3.x with its AMQP 1.0 plugin (broker/rabbitmq, Debian's package): the broker
 * compliance suite and the multi-host fencing suite, on one broker started once.
 */
import { jest } from '@jest/globals';
import { brokerAvailable } from '../../src/harness/brokers.js';
import { brokerCompliance, sharedBroker } from '../helpers/broker-compliance.js';
import { multihostCompliance } from '../helpers/multihost-compliance.js';

jest.setTimeout(120_000);

const describeIf = brokerAvailable('rabbitmq') ? describe : describe.skip;
describeIf('RabbitMQ', () => {
  const fixture = sharedBroker('rabbitmq', 5804, { epmdPort: 4390 });
  brokerCompliance(fixture);
  multihostCompliance(fixture, { basePort: 12631 });
});
