export * from './schemas.js';
export * from './canonical.js';
export * from './sign.js';
export * from './reply.js';
