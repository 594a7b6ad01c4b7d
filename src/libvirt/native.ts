/**
 * The only module that loads the native addon (build/Release/virtfence_libvirt.node).
 * `openHypervisor` returns a `Hypervisor` backed by one libvirt connection.
 */
import { createRequire } from 'node:module';
import {
  LibvirtError,
  LibvirtErrorCode,
  type CloseReason,
  type DomainInfo,
  type Hypervisor,
  type LifecycleEvent,
} from './hypervisor.js';
import { errText } from '../util/errors.js';

/** What the C++ side exposes (native/virtfence_libvirt.cc). */
interface NativeConnection {
  listDomains(): Promise<DomainInfo[]>;
  lookupByName(name: string): Promise<DomainInfo>;
  lookupByUuid(uuid: string): Promise<DomainInfo>;
  destroy(uuid: string): Promise<void>;
  create(uuid: string): Promise<void>;
  undefine(uuid: string): Promise<void>;
  getXml(uuid: string, flags: number): Promise<string>;
  createXml(xml: string): Promise<DomainInfo>;
  defineXml(xml: string): Promise<DomainInfo>;
  isAlive(): boolean;
  close(): Promise<void>;
}

interface NativeOpenOptions {
  keepaliveInterval: number;
  keepaliveCount: number;
  onLifecycle: (event: LifecycleEvent) => void;
  onClose: (reason: string) => void;
}

export interface NativeAddon {
  open(uri: string | null, options: NativeOpenOptions): Promise<NativeConnection>;
  /** Live native objects, for leak and use-after-free tests. */
  stats(): { wrappers: number; states: number };
  /** libvirt library version as major*1,000,000 + minor*1,000 + release. */
  libvirtVersion(): number;
}

export interface OpenOptions {
  /** Seconds between keepalive probes (remote drivers only; 0 disables). Default 5. */
  keepaliveInterval?: number;
  /** Unanswered probes before the connection counts as dead. Default 5. */
  keepaliveCount?: number;
}

const ADDON_URL = new URL('../../build/Release/virtfence_libvirt.node', import.meta.url);
let addon: NativeAddon | undefined;

/** Loads the addon once; a missing build gets a message that says how to make it. */
export function loadAddon(): NativeAddon {
  if (addon) return addon;
  const require = createRequire(import.meta.url);
  try {
    addon = require(ADDON_URL.pathname) as NativeAddon;
  } catch (cause) {
    const detail = errText(cause);
    throw new Error(
      `the native libvirt addon is not available (${detail}); run "npm run build:native" ` +
        '(it needs libvirt-dev, g++, make and python3)',
    );
  }
  return addon;
}

/** Native errors may come from another realm (jest's vm contexts), so no `instanceof Error`. */
function toLibvirtError(cause: unknown): Error {
  if (cause instanceof LibvirtError) return cause;
  if (typeof cause === 'object' && cause !== null) {
    const { message, code, domain } = cause as {
      message?: unknown;
      code?: unknown;
      domain?: unknown;
    };
    if (typeof code === 'number') {
      return new LibvirtError(String(message), code, typeof domain === 'number' ? domain : 0);
    }
    if (typeof message === 'string' && !(cause instanceof Error)) return new Error(message);
  }
  return cause instanceof Error ? cause : new Error(String(cause));
}

async function libvirtCall<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (cause) {
    throw toLibvirtError(cause);
  }
}

function isNoDomain(cause: unknown): boolean {
  return cause instanceof LibvirtError && cause.code === LibvirtErrorCode.NO_DOMAIN;
}

const CLOSE_REASONS: readonly CloseReason[] = ['error', 'eof', 'keepalive', 'client'];

/**
 * Listener sets live apart from the connection object: the native side holds only these
 * callbacks, so dropping every reference to a NativeHypervisor lets it be collected (and the
 * native finaliser releases libvirt) even with events registered.
 */
class Subscribers {
  readonly lifecycle = new Set<(event: LifecycleEvent) => void>();
  readonly close = new Set<(reason: CloseReason) => void>();
  lost = false;
  closedByUs = false;

  emitLifecycle(event: LifecycleEvent): void {
    for (const listener of [...this.lifecycle]) safeCall(() => listener(event));
  }

  emitClose(reason: string): void {
    if (this.lost || this.closedByUs) return;
    this.lost = true;
    const known = CLOSE_REASONS.find((r) => r === reason) ?? 'error';
    for (const listener of [...this.close]) safeCall(() => listener(known));
  }
}

/** A throwing subscriber must not break delivery to the others or crash the event thread. */
function safeCall(fn: () => void): void {
  try {
    fn();
  } catch (cause) {
    queueMicrotask(() => {
      throw cause;
    });
  }
}

class NativeHypervisor implements Hypervisor {
  constructor(
    readonly uri: string,
    private readonly conn: NativeConnection,
    private readonly subscribers: Subscribers,
  ) {}

  listDomains(): Promise<DomainInfo[]> {
    return libvirtCall(() => this.conn.listDomains());
  }

  lookupByName(name: string): Promise<DomainInfo | undefined> {
    return this.lookup(() => this.conn.lookupByName(name));
  }

  lookupByUuid(uuid: string): Promise<DomainInfo | undefined> {
    return this.lookup(() => this.conn.lookupByUuid(uuid));
  }

  destroy(uuid: string): Promise<void> {
    return libvirtCall(() => this.conn.destroy(uuid));
  }

  create(uuid: string): Promise<void> {
    return libvirtCall(() => this.conn.create(uuid));
  }

  createXml(xml: string): Promise<DomainInfo> {
    return libvirtCall(() => this.conn.createXml(xml));
  }

  defineXml(xml: string): Promise<DomainInfo> {
    return libvirtCall(() => this.conn.defineXml(xml));
  }

  undefine(uuid: string): Promise<void> {
    return libvirtCall(() => this.conn.undefine(uuid));
  }

  getXml(uuid: string, flags = 0): Promise<string> {
    return libvirtCall(() => this.conn.getXml(uuid, flags));
  }

  onLifecycle(listener: (event: LifecycleEvent) => void): () => void {
    this.subscribers.lifecycle.add(listener);
    return () => this.subscribers.lifecycle.delete(listener);
  }

  onClose(listener: (reason: CloseReason) => void): () => void {
    this.subscribers.close.add(listener);
    return () => this.subscribers.close.delete(listener);
  }

  isAlive(): boolean {
    return !this.subscribers.lost && !this.subscribers.closedByUs && this.conn.isAlive();
  }

  async close(): Promise<void> {
    this.subscribers.closedByUs = true;
    this.subscribers.lifecycle.clear();
    this.subscribers.close.clear();
    await libvirtCall(() => this.conn.close());
  }

  private async lookup(call: () => Promise<DomainInfo>): Promise<DomainInfo | undefined> {
    try {
      return await libvirtCall(call);
    } catch (cause) {
      if (isNoDomain(cause)) return undefined;
      throw cause;
    }
  }
}

/**
 * Opens `uri` (undefined: libvirt's default URI) with lifecycle events and a close callback
 * already registered, so a caller that subscribes right after this resolves misses nothing.
 */
export async function openHypervisor(
  uri: string | undefined,
  options: OpenOptions = {},
): Promise<Hypervisor> {
  const native = loadAddon();
  const subscribers = new Subscribers();
  const conn = await libvirtCall(() =>
    native.open(uri ?? null, {
      keepaliveInterval: options.keepaliveInterval ?? 5,
      keepaliveCount: options.keepaliveCount ?? 5,
      onLifecycle: (event) => subscribers.emitLifecycle(event),
      onClose: (reason) => subscribers.emitClose(reason),
    }),
  );
  return new NativeHypervisor(uri ?? '', conn, subscribers);
}
