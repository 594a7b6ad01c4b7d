/** The `fence_virtd { }` block (docs/protocol.md §15.5). */
import { z } from 'zod';
import { defineBlock } from '../block.js';
import { flagText, integerText, nameList, portText } from '../fields.js';

export const fenceVirtdBlock = defineBlock(
  'fence_virtd',
  {
    /** One or more listener names (ours accepts a list; C accepts one). Required. */
    listener: nameList.optional(),
    /** Required. */
    backend: z.string().optional(),
    debug: integerText.default(0),
    foreground: flagText.default(false),
    wait_for_init: flagText.optional(),
    /** The old name of wait_for_init. */
    wait_for_backend: flagText.optional(),
    /** Accepted for compatibility: our plugins are built in. */
    module_path: z.string().optional(),
    /** Prometheus endpoint port; no port, no endpoint. */
    metrics_port: portText.optional(),
    /** Address of the endpoint; loopback when absent (checked in schema.ts). */
    metrics_address: z.string().optional(),
    /** Seconds between `stats` log lines; 0: none. */
    stats_interval: integerText
      .refine((n) => n >= 0, { error: 'must be 0 (off) or a number of seconds' })
      .default(300),
  },
  // The legacy place of the cpg backend's name_mode.
  { ignored: ['name_mode'] },
);
