/**
 * What a listener or backend plugin declares about itself: its name, its version (listed by
 * `fence_virtd -l` and the `-c` dialog), and the keys of its configuration block. The
 * registries in src/listeners and src/backends add the implementation.
 */
import type { z } from 'zod';
import type { BlockDeclaration } from '../block.js';

export interface PluginDeclaration<
  Shape extends z.ZodRawShape = z.ZodRawShape,
  Names extends Record<string, string> = Record<string, string>,
> {
  kind: 'listener' | 'backend';
  name: string;
  version: string;
  block: BlockDeclaration<Shape, Names>;
}
