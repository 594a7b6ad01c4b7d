export * from './types.js';
export * from './parser.js';
export * from './lookup.js';
export * from './dump.js';
export * from './schema.js';
export * from './known-keys.js';
export * from './load.js';
export * from './modules.js';
