/** The `fence_virtd { }` block (docs/protocol.md §15.5) and blocks of C plugins we do not build. */
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

/** The cpg backend of C: its keys are known (no warning), the plugin is not built here. */
export const cpgBlock = defineBlock(
  'backends/cpg',
  { uri: z.array(z.string()), name_mode: z.string().optional() },
  { numbered: ['uri'], names: { uri: 'uris' } },
);
