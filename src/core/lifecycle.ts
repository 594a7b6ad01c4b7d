/**
 * VM lifecycle event types: the values of libvirt's virDomainEventType. They come
 * from the hypervisor, travel in vm-event messages and move the ownership table, so they live
 * below all three.
 */
export const LifecycleEventType = {
  DEFINED: 0,
  UNDEFINED: 1,
  STARTED: 2,
  SUSPENDED: 3,
  RESUMED: 4,
  STOPPED: 5,
  SHUTDOWN: 6,
  PMSUSPENDED: 7,
  CRASHED: 8,
} as const;
