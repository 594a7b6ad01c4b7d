export * from './constants.js';
export * from './digest.js';
export * from './uuid.js';
export * from './fence-request.js';
export * from './hostlist.js';
export * from './serial.js';
export * from './history.js';
