/** Test-side re-export: the harness lives in src so the demo shares it. */
export * from '../../tools/harness/qemu-cluster.js';
