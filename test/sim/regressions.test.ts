/**
 * Seeds on which the simulation found a violation that is now fixed: each one must replay
 * without any (the README's safety-model section tells what each one was).
 */
import { runSchedule } from '../../sim/world.js';

const FIXED: Array<[number, string]> = [
  [122, 'hosts whose clocks are 40-60 s apart never hear each other: unknown VM answered OFF'],
  [142, 'a host cut off from the broker started a VM that had migrated away (on, partition)'],
  [166, 'destroying the paused incoming copy of a migration reported as a successful off'],
  [271, 'on of a VM defined on two hosts: each host picked itself and both started it'],
  [230, 'reboot during a migration restarted the VM on both hosts'],
  [874, 'a retransmitted off answered "already off" from the cache after the VM was started'],
  [100, 'a VM started on a host that went silent answered OFF (unknown VM)'],
  [280, 'a daemon restarted while another host was silent never learnt that host existed'],
  [673, 'the only other host silent when a daemon restarted: unknown VM answered OFF'],
  [469, 'a host with a skewed clock forgotten once its refused messages stopped'],
  [995, 'off answered "already off" for a VM that had just migrated to another host'],
  [1626, 'a request queued for a daemon that restarted was executed again by the new run'],
  [5491, 'a VM created on a host whose messages had just stopped: unknown VM answered OFF'],
  [8797, 'a VM created on a host cut off 0.8 s before: unknown VM answered OFF'],
  [4498, 'a retransmission reached a restarted daemon after the first answer and ran again'],
  [1109, 'a late copy of a completed reboot executed again on another host'],
  [1992, 'reboot during a migration: the incoming copy restarted as well as the source'],
  [210, 'simulator: a rebooted host kept its dead timers (every later libvirt call hung)'],
];

test.each(FIXED)('seed %i replays without violation (%s)', async (seed) => {
  const r = await runSchedule(seed);
  expect(r.violations).toEqual([]);
});
