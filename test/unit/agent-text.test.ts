import { attemptCount, localAddresses } from '../../src/agents/multicast.js';
import { asSignedByte, outcomeOf } from '../../src/agents/outcome.js';
import { parseSerialParams, sttyArguments } from '../../src/agents/serial.js';
import {
  helpText,
  metadataXml,
  stdinUsageText,
  usageText,
  versionText,
  wrap,
} from '../../src/agents/text.js';
import { Op } from '../../src/protocol/constants.js';

describe('usage text layout', () => {
  it('wraps at 55 columns on spaces', () => {
    expect(wrap('aaa bbb ccc', 7)).toEqual(['aaa bbb', 'ccc']);
    expect(wrap('abcdefghij', 4)).toEqual(['abcd', 'efgh', 'ij']);
  });

  it('prints label column 20 and text column 55, hiding -H', () => {
    const usage = usageText('PROG', 'fence_xvm');
    const lines = usage.split('\n');
    expect(lines.slice(0, 4)).toEqual([
      'usage: PROG [args]',
      '',
      'NOTE: reboot-action does not power on nodes that are powered off.',
      '',
    ]);
    const options = lines.filter((l) => l.startsWith('  -')).map((l) => l.slice(2, 22).trim());
    expect(options).toEqual([
      '-d',
      '-i <family>',
      '-a <address>',
      '-p <port>',
      '-r <retrans>',
      '-C <auth>',
      '-c <hash>',
      '-k <file>',
      '-n <domain>',
      '-u',
      '-o <operation>',
      '-t <timeout>',
      '-?',
      '-h',
      '-V',
      '-w <delay>',
    ]);
    for (const line of lines.filter((l) => l.startsWith('  '))) expect(line).toHaveLength(79);
  });

  it('help adds the stdin names; stdin usage is only that list', () => {
    const help = helpText('PROG', 'fence_virt');
    expect(help).toContain(
      'With no command line argument, arguments are read from standard input.',
    );
    expect(help).toContain('    arg1=value1\n    arg2=value2\n');
    const names = stdinUsageText('fence_virt')
      .split('\n')
      .filter((l) => /^ {2}\S/.test(l))
      .map((l) => l.trim().split(' ')[0]);
    expect(names).toEqual([
      'debug',
      'serial_device',
      'serial_params',
      'channel_address',
      'ipport',
      'plug',
      'action',
      'timeout',
      'ipaddr',
      'vsock',
      'auth',
      'hash',
      'key_file',
      'delay',
    ]);
  });

  it('prints the version lines', () => {
    expect(versionText('fence_xvm')).toBe('fence_xvm 1.9.0\nfence release 4.12.1\n');
  });
});

describe('metadata', () => {
  const xml = metadataXml('fence_virt');
  it('has the C structure: parameters in order with getopt and content, then the actions', () => {
    const params = [
      ...xml.matchAll(/<parameter (.*)>\n\t\t<getopt mixed="(.*)" \/>\n\t\t<content (.*) \/>/g),
    ].map((m) => `${m[1]} ${m[2]} ${m[3]}`);
    expect(params).toEqual([
      'name="debug" unique="0" required="0" -d type="boolean"',
      'name="serial_device" unique="0" required="0" -D type="string" default="/dev/ttyS1"',
      'name="serial_params" unique="0" required="0" -P type="string" default="115200,8N1"',
      'name="channel_address" unique="0" required="0" -A type="string" default="10.0.2.179"',
      'name="ipport" unique="0" required="0" -p type="string" default="1229"',
      'name="plug" unique="0" required="1" obsoletes="port" -n type="string"',
      'name="port" unique="0" required="1" deprecated="1" -H type="string"',
      'name="action" unique="0" required="0" -o type="string" default="reboot"',
      'name="timeout" unique="0" required="0" -t type="string" default="30"',
      'name="ipaddr" unique="0" required="0" -T type="string" default="127.0.0.1"',
      'name="vsock" unique="0" required="0" -S type="integer" default="2"',
      'name="auth" unique="0" required="0" -C type="string" default="sha256"',
      'name="hash" unique="0" required="0" -c type="string" default="sha256"',
      'name="key_file" unique="0" required="0" -k type="string" default="/etc/cluster/fence_xvm.key"',
      'name="delay" unique="0" required="0" -w type="string" default="0"',
      'name="domain" unique="0" required="0" deprecated="1"  type="string"',
    ]);
    const actions = [...xml.matchAll(/<action name="([^"]+)" \/>/g)].map((m) => m[1]);
    expect(actions).toEqual([
      'null',
      'on',
      'off',
      'reboot',
      'metadata',
      'status',
      'monitor',
      'list',
      'list-status',
      'validate-all',
    ]);
    expect(
      xml.startsWith('<?xml version="1.0" ?>\n<resource-agent name="fence_virt" shortdesc='),
    ).toBe(true);
    expect(xml.endsWith('</actions>\n</resource-agent>\n')).toBe(true);
  });

  it('escapes markup in descriptions', () => {
    expect(metadataXml('fence_xvm')).not.toMatch(/<shortdesc lang="en">[^<]*<[^/]/);
  });

  it('marks multicast_address optional although it has no default', () => {
    expect(metadataXml('fence_xvm')).toContain(
      '<parameter name="multicast_address" unique="0" required="0">',
    );
  });
});

describe('outcome', () => {
  it('maps codes to the C lines and exit codes', () => {
    expect(outcomeOf(Op.STATUS, { code: 0 })).toEqual({ stdout: ['Status: ON'], exitCode: 0 });
    expect(outcomeOf(Op.STATUS, { code: 2 })).toEqual({ stdout: ['Status: OFF'], exitCode: 2 });
    expect(outcomeOf(Op.OFF, { code: 0 })).toEqual({ stdout: [], exitCode: 0 });
    expect(outcomeOf(Op.OFF, { code: 2 })).toEqual({ stdout: [], exitCode: 2 });
    expect(outcomeOf(Op.REBOOT, { code: 1 })).toEqual({
      stdout: ['Operation failed'],
      exitCode: 1,
    });
    expect(outcomeOf(Op.ON, { code: 3 })).toEqual({ stdout: ['Permission denied'], exitCode: 3 });
    expect(outcomeOf(Op.ON, { code: 5 })).toEqual({
      stdout: ['Unknown response (5)'],
      exitCode: 5,
    });
    expect(outcomeOf(Op.ON, { code: -1 })).toEqual({
      stdout: ['Unknown response (-1)'],
      exitCode: 255,
    });
    expect(outcomeOf(Op.ON, { code: asSignedByte(200) })).toEqual({
      stdout: ['Unknown response (-56)'],
      exitCode: 200,
    });
  });

  it('prints host lists with %-32s and on only for running', () => {
    const out = outcomeOf(Op.HOSTLIST, {
      code: 0xfd,
      hostlist: [
        { name: 'a', uuid: 'u1', state: 1 },
        { name: 'b', uuid: 'u2', state: 3 },
      ],
    });
    expect(out).toEqual({
      stdout: [`a${' '.repeat(31)} u1 on`, `b${' '.repeat(31)} u2 off`],
      exitCode: 0,
    });
    expect(outcomeOf(Op.HOSTLIST, { code: 0xfd, hostlist: [] })).toEqual({
      stdout: [],
      exitCode: 0,
    });
  });
});

describe('multicast planning', () => {
  it('retransmits timeout*10/retrans times, at least once (C loops forever at 0)', () => {
    expect(attemptCount(30, 20)).toBe(15);
    expect(attemptCount(7, 20)).toBe(3);
    expect(attemptCount(1, 20)).toBe(1);
  });

  it('sends from every IPv4 address and from IPv6 ones except ::1 and fe80-feb0', () => {
    const base = { netmask: '', mac: '', internal: false, cidr: null };
    const interfaces = {
      lo: [
        { ...base, address: '127.0.0.1', family: 'IPv4' as const },
        { ...base, address: '::1', family: 'IPv6' as const, scopeid: 0 },
      ],
      eth0: [
        { ...base, address: '192.0.2.2', family: 'IPv4' as const },
        { ...base, address: 'fd00::2', family: 'IPv6' as const, scopeid: 0 },
        { ...base, address: 'fe80::1', family: 'IPv6' as const, scopeid: 2 },
        { ...base, address: 'feb0::1', family: 'IPv6' as const, scopeid: 2 },
        { ...base, address: 'fec0::1', family: 'IPv6' as const, scopeid: 0 },
      ],
    };
    expect(localAddresses(false, interfaces)).toEqual(['127.0.0.1', '192.0.2.2']);
    expect(localAddresses(true, interfaces)).toEqual(['fd00::2', 'fec0::1']);
  });
});

describe('serial parameters', () => {
  it('parses speed and DPS like C', () => {
    expect(parseSerialParams('115200,8N1')).toEqual({
      speed: 115200,
      dataBits: 8,
      parity: 'none',
      stopBits: 1,
    });
    expect(parseSerialParams('')).toEqual({
      speed: 9600,
      dataBits: 8,
      parity: 'none',
      stopBits: 1,
    });
    expect(parseSerialParams(',7e2')).toEqual({
      speed: 9600,
      dataBits: 7,
      parity: 'even',
      stopBits: 2,
    });
    expect(parseSerialParams('1234')).toEqual({ error: true });
    expect(parseSerialParams('9600,8X1')).toEqual({ error: true, badChar: 'X' });
    expect(parseSerialParams('9600,8N')).toEqual({ error: true });
  });

  it('builds a raw stty line with the C control flags', () => {
    const args = sttyArguments('/dev/ttyS1', {
      speed: 9600,
      dataBits: 7,
      parity: 'odd',
      stopBits: 2,
    });
    expect(args.slice(0, 4)).toEqual(['-F', '/dev/ttyS1', '9600', 'raw']);
    expect(args).toEqual(
      expect.arrayContaining(['cs7', 'parenb', 'parodd', 'cstopb', 'crtscts', 'clocal', 'cread']),
    );
  });
});
