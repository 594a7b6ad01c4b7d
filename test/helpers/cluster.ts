/** Test-side re-export: the harness lives in src so the demo and benchmarks share it. */
export * from '../../tools/harness/cluster.js';
export { eventually } from './eventually.js';
