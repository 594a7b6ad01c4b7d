/**
 * The one builder of fence_xvm / fence_virt command lines in the tests: named settings in,
 * getopt words out, always in the same order.
 */
export interface AgentArgs {
  /** fence_virt -T: direct TCP to this address. */
  tcp?: string;
  /** -a: multicast group. */
  group?: string;
  /** -i: ipv4, ipv6, auto. */
  family?: string;
  port?: number;
  key?: string;
  /** -t, seconds. */
  timeout?: number;
  /** -r, tenths of a second. */
  retrans?: number;
  /** -c: packet hash. */
  hash?: string;
  /** -C: challenge algorithm. */
  auth?: string;
  /** -u */
  uuid?: boolean;
  /** -w, seconds. */
  delay?: number;
  /** -o */
  action?: string;
  /** -n */
  target?: string;
}

export function agentArgs(o: AgentArgs): string[] {
  const words: string[] = [];
  const add = (letter: string, value: string | number | undefined): void => {
    if (value !== undefined) words.push(letter, String(value));
  };
  add('-T', o.tcp);
  add('-a', o.group);
  add('-i', o.family);
  add('-p', o.port);
  add('-k', o.key);
  add('-t', o.timeout);
  add('-r', o.retrans);
  add('-c', o.hash);
  add('-C', o.auth);
  if (o.uuid) words.push('-u');
  add('-w', o.delay);
  add('-o', o.action);
  add('-n', o.target);
  return words;
}
