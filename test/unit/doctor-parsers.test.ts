/** The doctor's readers of kernel and firewall text: /proc/net/igmp(6), nft and iptables rules. */
import { findDrops, groupMemberships } from '../../src/cli/doctor.js';

describe('groupMemberships', () => {
  it('reads IPv4 groups (host byte order) per device, and IPv6 groups', () => {
    const igmp = [
      'Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter',
      '1\tlo        :     2      V3',
      '\t\t\t\t0C0000E1     1 0:00000000\t\t0',
      '\t\t\t\t010000E0     1 0:00000000\t\t0',
      '5\tvirbr0    :     1      V3',
      '\t\t\t\t010000E0     1 0:00000000\t\t0',
    ].join('\n');
    const igmp6 = '1    lo              ff050000000000000000000000030001     1 00000004 0\n';
    expect(groupMemberships(igmp, igmp6)).toEqual([
      { dev: 'lo', group: '225.0.0.12' },
      { dev: 'lo', group: '224.0.0.1' },
      { dev: 'virbr0', group: '224.0.0.1' },
      { dev: 'lo', group: 'ff05::3:1' },
    ]);
  });
});

describe('findDrops', () => {
  const nft = `table inet filter {
	chain input {
		type filter hook input priority filter; policy accept;
		tcp dport 22 accept
		udp dport { 53, 1229 } drop
		tcp dport 1000-2000 reject with tcp reset
	}
	chain output {
		type filter hook output priority filter; policy accept;
		tcp dport 1229 drop
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		udp dport 1229 drop
	}
}`;

  it('finds nftables rules by hook, protocol and port (sets and ranges)', () => {
    expect(findDrops(nft, '', 'udp', 1229, 'input')).toEqual([
      {
        source: 'nftables',
        where: 'table inet filter chain input',
        rule: 'udp dport { 53, 1229 } drop',
      },
    ]);
    expect(findDrops(nft, '', 'tcp', 1229, 'input').map((d) => d.rule)).toEqual([
      'tcp dport 1000-2000 reject with tcp reset',
    ]);
    expect(findDrops(nft, '', 'tcp', 1229, 'output').map((d) => d.rule)).toEqual([
      'tcp dport 1229 drop',
    ]);
    expect(findDrops(nft, '', 'udp', 1230, 'input')).toEqual([]);
    expect(findDrops(nft, '', 'tcp', 22, 'input')).toEqual([]); // accepted, not dropped
  });

  it('finds iptables-save rules in INPUT and OUTPUT', () => {
    const ipt = [
      '*filter',
      ':INPUT ACCEPT [0:0]',
      '-A INPUT -p udp -m udp --dport 1229 -j DROP',
      '-A INPUT -p tcp -m multiport --dports 80,1200:1300 -j REJECT --reject-with icmp-port-unreachable',
      '-A OUTPUT -p udp -m udp --dport 1229 -j ACCEPT',
      'COMMIT',
    ].join('\n');
    expect(findDrops('', ipt, 'udp', 1229, 'input').map((d) => d.rule)).toEqual([
      '-A INPUT -p udp -m udp --dport 1229 -j DROP',
    ]);
    expect(findDrops('', ipt, 'tcp', 1229, 'input')).toHaveLength(1);
    expect(findDrops('', ipt, 'udp', 1229, 'output')).toEqual([]);
  });
});
