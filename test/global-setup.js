/**
 * Refuses to run the suite in the machine's own network namespace: the real fence_xvm sends a
 * copy of every request out of every interface, so tests run through scripts/isolated.sh
 * (`npm test`, `npm run test:only`), which gives them a namespace whose only interface is
 * loopback. Checked here as the property that matters: no interface but `lo` at start.
 */
import { networkInterfaces } from 'node:os';

export default function globalSetup() {
  const outside = Object.keys(networkInterfaces()).filter((name) => name !== 'lo');
  if (outside.length > 0 || process.env.VIRTFENCE_ISOLATED !== '1') {
    throw new Error(
      `tests must run in a network namespace of their own (found ${outside.join(', ') || 'no isolation'}): ` +
        'use `npm test` or `npm run test:only` (scripts/isolated.sh), never jest directly',
    );
  }
}
