/** Wire constants of the fence-virt protocol family (docs/protocol.md §1). */

export const Op = {
  NULL: 0,
  OFF: 1,
  REBOOT: 2,
  ON: 3,
  STATUS: 4,
  DEVSTATUS: 5,
  HOSTLIST: 6,
  METADATA: 7,
  VALIDATEALL: 8,
} as const;
export type OpCode = number;
export type OpName = keyof typeof Op;

export function opName(code: number): string {
  const entry = Object.entries(Op).find(([, value]) => value === code);
  return entry ? entry[0].toLowerCase() : `op${code}`;
}

/** The same numbering serves the packet hash and the challenge-response algorithm (docs/protocol.md §1.2). */
export const HashType = { none: 0, sha1: 1, sha256: 2, sha512: 3 } as const;
export type HashName = keyof typeof HashType;
export type HashCode = (typeof HashType)[HashName];

export const HASH_NAMES = Object.keys(HashType) as HashName[];

export function parseHashName(text: string): HashCode | undefined {
  const key = text.toLowerCase();
  return key in HashType ? HashType[key as HashName] : undefined;
}

export function hashName(code: number): string {
  return HASH_NAMES.find((name) => HashType[name] === code) ?? `hash${code}`;
}

export const Response = {
  SUCCESS: 0,
  FAIL: 1,
  OFF: 2,
  PERM: 3,
  HOSTLIST: 0xfd,
} as const;
export type ResponseCode = number;

export function responseName(code: number): string {
  const entry = Object.entries(Response).find(([, value]) => value === code);
  return entry ? entry[0].toLowerCase() : `code${code}`;
}

/** Raw libvirt virDomainState values, as carried in host-list entries (docs/protocol.md §6.2). */
export const DomainState = {
  NOSTATE: 0,
  RUNNING: 1,
  BLOCKED: 2,
  PAUSED: 3,
  SHUTDOWN: 4,
  SHUTOFF: 5,
  CRASHED: 6,
  PMSUSPENDED: 7,
} as const;

export const DOMAIN_NAME_MAX = 64;
export const KEY_MAX = 4096;
export const DIGEST_FIELD = 64;
export const CHALLENGE_SIZE = 64;

export const DEFAULT_KEY_FILE = '/etc/cluster/fence_xvm.key';
export const DEFAULT_IPV4_GROUP = '225.0.0.12';
export const DEFAULT_IPV6_GROUP = 'ff05::3:1';
export const DEFAULT_PORT = 1229;
export const DEFAULT_TCP_IPV4 = '127.0.0.1';
export const DEFAULT_TCP_IPV6 = '::1';
export const DEFAULT_CHANNEL_ADDRESS = '10.0.2.179';
export const DEFAULT_CONFIG_FILE = '/etc/fence_virt.conf';

export const AF_INET = 2;
export const AF_INET6 = 10;

export const PROTOCOL_VERSION = '1.9.0';
export const FENCE_RELEASE = '4.12.1';
