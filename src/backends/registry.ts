/** Backend plugins by name, imported lazily. */
import { amqpBackend, cpgBackend, libvirtBackend } from '../config/plugins/backends.js';
import type { DaemonConfig } from '../config/types.js';
import type { Logger } from '../util/logger.js';
import type { Backend } from './backend.js';

export interface BackendDeps {
  logger: Logger;
  waitForInit: boolean;
}

export interface BackendPlugin {
  version: string;
  create(config: DaemonConfig, deps: BackendDeps): Promise<Backend>;
}

export const backendPlugins: Record<string, BackendPlugin> = {
  libvirt: {
    version: libvirtBackend.version,
    create: async (c, deps) => {
      const { LibvirtBackend } = await import('./libvirt/backend.js');
      return new LibvirtBackend(c.backends.libvirt, deps.logger, { waitForInit: deps.waitForInit });
    },
  },
  amqp: {
    version: amqpBackend.version,
    create: async (c, deps) => {
      const { createAmqpBackend } = await import('./amqp/index.js');
      const { blockValues } = await import('../config/lookup.js');
      return createAmqpBackend(blockValues(c.tree, 'backends/amqp'), {
        logger: deps.logger,
        listeners: c.fenceVirtd.listeners,
      });
    },
  },
  cpg: {
    version: cpgBackend.version,
    create: async (c, deps) => {
      const { createCpgBackend } = await import('./cpg/index.js');
      const { blockValues, lookupValue } = await import('../config/lookup.js');
      const legacy = lookupValue(c.tree, 'fence_virtd/@name_mode');
      return createCpgBackend(blockValues(c.tree, 'backends/cpg'), {
        logger: deps.logger,
        listeners: c.fenceVirtd.listeners,
        ...(legacy !== undefined ? { legacyNameMode: legacy } : {}),
      });
    },
  },
};
