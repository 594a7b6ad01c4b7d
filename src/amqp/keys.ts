/** Moved to src/config (below the adapters); re-exported for existing importers. */
export { AMQP_KEYS } from '../config/amqp-keys.js';
