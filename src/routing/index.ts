/** Pure routing logic for broker-routed fencing (no I/O). */
export * from './table.js';
export * from './route.js';
export * from './ledger.js';
