/** Test-side re-export: the process harness lives in src so the demo and benchmarks share it. */
export * from '../../tools/harness/processes.js';
