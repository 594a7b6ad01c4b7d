/** Test-side re-export: the harness lives in src so the demo shares it. */
export * from '../../src/harness/qemu.js';
