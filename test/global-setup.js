/**
 * Refuses to run the suite in the machine's own network namespace: the real fence_xvm sends a
 * copy of every request out of every interface, so tests run through scripts/isolated.sh
 * (`npm test`, `npm run test:only`), which gives them a namespace whose only interface is
 * loopback and its own veth pair for IPv6 multicast. Checked here as the property that matters:
 * no other interface at start.
 */
import { networkInterfaces } from 'node:os';

/** scripts/isolated.sh creates exactly these. */
const ISOLATED_INTERFACES = new Set(['lo', 'vfiso0', 'vfiso1']);

export default function globalSetup() {
  const outside = Object.keys(networkInterfaces()).filter((name) => !ISOLATED_INTERFACES.has(name));
  if (outside.length > 0 || process.env.VIRTFENCE_ISOLATED !== '1') {
    throw new Error(
      `tests must run in a network namespace of their own (found ${outside.join(', ') || 'no isolation'}): ` +
        'use `npm test` or `npm run test:only` (scripts/isolated.sh), never jest directly',
    );
  }
}
