/** The only module that loads build/Release/virtfence_cpg.node (native/cpg). */
import { createRequire } from 'node:module';

export interface CpgAddress {
  nodeid: number;
  pid: number;
  /** CPG_REASON_*: 1 join, 2 leave, 3 node down, 4 node up, 5 process down. */
  reason: number;
}

export type CpgEvent =
  | { type: 'deliver'; nodeid: number; pid: number; data: Buffer }
  | { type: 'confchg'; members: CpgAddress[]; left: CpgAddress[]; joined: CpgAddress[] }
  /** Corosync went away (or refused us): the group must be opened again. */
  | { type: 'closed'; error: number; message: string };

export interface CpgGroupHandle {
  /** This node's corosync node id. */
  readonly nodeId: number;
  /** Agreed-order multicast to the group (every member, us included, delivers it). */
  mcast(data: Buffer): Promise<void>;
  /** Leave the group and finalize; no event is delivered afterwards. */
  close(): Promise<void>;
}

export interface CpgAddon {
  open(group: string, onEvent: (event: CpgEvent) => void): Promise<CpgGroupHandle>;
  maxGroupName: number;
}

export const CpgReason = { join: 1, leave: 2, nodeDown: 3, nodeUp: 4, procDown: 5 } as const;

const ADDON_URL = new URL('../../../build/Release/virtfence_cpg.node', import.meta.url);
let addon: CpgAddon | undefined;

export function loadCpgAddon(): CpgAddon {
  if (addon) return addon;
  const require = createRequire(import.meta.url);
  try {
    addon = require(ADDON_URL.pathname) as CpgAddon;
  } catch (err) {
    const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new Error(
      `the cpg addon is not built (${why}); install libcpg-dev and run npm run build:native`,
    );
  }
  return addon;
}
