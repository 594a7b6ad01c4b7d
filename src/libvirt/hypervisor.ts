/**
 * What the rest of `src` sees of libvirt. Domains are referred to by UUID, so no native domain
 * handle ever crosses into JavaScript (the native side looks each one up per call).
 */

export interface DomainInfo {
  uuid: string;
  name: string;
  /** Raw virDomainState (see protocol DomainState). */
  state: number;
  /** Hypervisor id; -1 when inactive. */
  id: number;
}

/** libvirt's virDomainEventType values. */
export { LifecycleEventType } from '../core/lifecycle.js';

export interface LifecycleEvent {
  uuid: string;
  name: string;
  event: number;
  detail: number;
}

/** libvirt error numbers (virErrorNumber) the code reacts to. */
export const LibvirtErrorCode = {
  NO_CONNECT: 5,
  SYSTEM_ERROR: 38,
  RPC: 39,
  NO_DOMAIN: 42,
  OPERATION_INVALID: 55,
} as const;

export class LibvirtError extends Error {
  constructor(
    message: string,
    /** virErrorNumber */
    readonly code: number,
    /** virErrorDomain */
    readonly domain: number,
  ) {
    super(message);
    this.name = 'LibvirtError';
  }
}

export type CloseReason = 'error' | 'eof' | 'keepalive' | 'client';

export interface Hypervisor {
  readonly uri: string;
  listDomains(): Promise<DomainInfo[]>;
  /** undefined when there is no such domain (VIR_ERR_NO_DOMAIN); other errors reject. */
  lookupByName(name: string): Promise<DomainInfo | undefined>;
  lookupByUuid(uuid: string): Promise<DomainInfo | undefined>;
  destroy(uuid: string): Promise<void>;
  create(uuid: string): Promise<void>;
  createXml(xml: string): Promise<DomainInfo>;
  defineXml(xml: string): Promise<DomainInfo>;
  undefine(uuid: string): Promise<void>;
  /** Live XML (flags 0) unless flags are given. */
  getXml(uuid: string, flags?: number): Promise<string>;
  /** Subscribe to lifecycle events; returns an unsubscribe function. */
  onLifecycle(listener: (event: LifecycleEvent) => void): () => void;
  /** Called once when the connection is lost (not on close()). */
  onClose(listener: (reason: CloseReason) => void): () => void;
  isAlive(): boolean;
  close(): Promise<void>;
}
