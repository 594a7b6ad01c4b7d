/**
 * The built-in listener and backend modules (we load no .so plugins). The wizard lists them
 * like `fence_virtd -c` lists its plugins; `config check` uses them to flag unknown names.
 */
import { BACKEND_PLUGINS } from './plugins/backends.js';
import { LISTENER_PLUGINS } from './plugins/listeners.js';

export interface ModuleInfo {
  name: string;
  version: string;
}

/** Each plugin declares its name and version once, in src/config/plugins. */
export const BUILTIN_LISTENERS: readonly ModuleInfo[] = LISTENER_PLUGINS;
export const BUILTIN_BACKENDS: readonly ModuleInfo[] = BACKEND_PLUGINS;

/** C's compiled-in module directory on Debian; written by the wizard so C can use the file. */
export const DEFAULT_MODULE_PATH = '/usr/lib/x86_64-linux-gnu/fence-virt/';

export function isBuiltinListener(name: string): boolean {
  return BUILTIN_LISTENERS.some((m) => m.name === name.toLowerCase());
}

export function isBuiltinBackend(name: string): boolean {
  return BUILTIN_BACKENDS.some((m) => m.name === name.toLowerCase());
}
