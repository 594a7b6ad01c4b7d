/**
 * The built-in listener and backend modules (we load no .so plugins). The wizard lists them
 * like `fence_virtd -c` lists its plugins; `config check` uses them to flag unknown names.
 */
export interface ModuleInfo {
  name: string;
  version: string;
}

export const BUILTIN_LISTENERS: readonly ModuleInfo[] = [
  { name: 'multicast', version: '1.3' },
  { name: 'tcp', version: '0.2' },
  { name: 'serial', version: '0.5' },
  { name: 'vsock', version: '0.2' },
];

export const BUILTIN_BACKENDS: readonly ModuleInfo[] = [
  { name: 'libvirt', version: '0.3' },
  { name: 'amqp', version: '0.1' },
  { name: 'cpg', version: '0.1' },
];

/** C's compiled-in module directory on Debian; written by the wizard so C can use the file. */
export const DEFAULT_MODULE_PATH = '/usr/lib/x86_64-linux-gnu/fence-virt/';

export function isBuiltinListener(name: string): boolean {
  return BUILTIN_LISTENERS.some((m) => m.name === name.toLowerCase());
}

export function isBuiltinBackend(name: string): boolean {
  return BUILTIN_BACKENDS.some((m) => m.name === name.toLowerCase());
}
