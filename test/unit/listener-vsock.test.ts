import { createVsockListener } from '../../src/listeners/vsock/index.js';
import { HashType } from '../../src/protocol/constants.js';
import { silentLogger } from '../../src/util/logger.js';

describe('vsock listener', () => {
  it('refuses to start with a one-line reason, and stops cleanly', async () => {
    const listener = createVsockListener(
      { keyFile: '/unused', hash: HashType.sha256, auth: HashType.sha256, port: 1229 },
      {
        logger: silentLogger,
        key: Buffer.alloc(0),
        openHypervisor: () => Promise.reject(new Error('unused')),
      },
    );
    expect(listener.name).toBe('vsock');
    const failure = listener.start(async () => ({ code: 0, reason: 'ok' }));
    await expect(failure).rejects.toThrow(
      /^vsock listener is not supported by this build: .*AF_VSOCK[^\n]*$/,
    );
    await expect(listener.stop()).resolves.toBeUndefined();
  });
});
