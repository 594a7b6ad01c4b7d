/**
 * Qpid Broker-J (broker/qpid-broker-j, the official distribution fetched by
 * scripts/brokers.sh): the broker compliance suite and the multi-host fencing suite, on one
 * broker started once.
 */
import { jest } from '@jest/globals';
import { brokerAvailable } from '../../src/harness/brokers.js';
import { brokerCompliance, sharedBroker } from '../helpers/broker-compliance.js';
import { multihostCompliance } from '../helpers/multihost-compliance.js';

jest.setTimeout(120_000);

const describeIf = brokerAvailable('qpid-broker-j') ? describe : describe.skip;
describeIf('Qpid Broker-J', () => {
  const fixture = sharedBroker('qpid-broker-j', 5803);
  brokerCompliance(fixture);
  multihostCompliance(fixture, { basePort: 12621 });
});
