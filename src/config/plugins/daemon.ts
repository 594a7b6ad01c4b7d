/** The `fence_virtd { }` block (docs/protocol.md §15.5). */
import { z } from 'zod';
import { defineBlock } from '../block.js';
import { flagText, integerText, nameList } from '../fields.js';

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
  },
  // The legacy place of the cpg backend's name_mode.
  { ignored: ['name_mode'] },
);
