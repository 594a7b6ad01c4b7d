/** Test-side re-export: the harness lives in src so the demo and benchmarks share it. */
export * from '../../tools/harness/rabbitmq.js';
