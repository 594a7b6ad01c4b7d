import {
  atoi,
  finalise,
  newParseState,
  optionsInOrder,
  parseCInteger,
  parseCommandLine,
  parseStdin,
  personalityOf,
  type ParseState,
  type Personality,
} from '../../src/agents/options.js';
import { HashType, Op } from '../../src/protocol/constants.js';

const noKeyCheck = (): undefined => undefined;

function cli(personality: Personality, ...argv: string[]): { state: ParseState; stderr: string[] } {
  const state = newParseState((p) => (p === '/missing' ? 'No such file or directory' : undefined));
  const { stderr } = parseCommandLine(state, personality, argv, 'PROG');
  return { state, stderr };
}

function stdin(personality: Personality, text: string): { state: ParseState; stderr: string[] } {
  const state = newParseState(noKeyCheck);
  const { stderr } = parseStdin(state, personality, text);
  return { state, stderr };
}

describe('personality', () => {
  it('is fence_xvm only under that exact base name', () => {
    expect(personalityOf('/usr/sbin/fence_xvm')).toBe('fence_xvm');
    expect(personalityOf('fence_xvm')).toBe('fence_xvm');
    expect(personalityOf('/x/fence_virt')).toBe('fence_virt');
    expect(personalityOf('/x/fence_xvm2')).toBe('fence_virt');
  });
});

describe('C number parsing', () => {
  it('accepts strtol base 0 over the whole string', () => {
    expect(parseCInteger('0x10')).toBe(16);
    expect(parseCInteger('010')).toBe(8);
    expect(parseCInteger(' 5')).toBe(5);
    expect(parseCInteger('-5')).toBe(-5);
    expect(parseCInteger('0')).toBe(0);
    expect(parseCInteger('1abc')).toBeNaN();
    expect(parseCInteger('')).toBeNaN();
    expect(parseCInteger('1.5')).toBeNaN();
  });
  it('atoi stops at the first non-digit and defaults to 0', () => {
    expect(atoi('3x')).toBe(3);
    expect(atoi('abc')).toBe(0);
    expect(atoi('-3')).toBe(-3);
  });
});

describe('command line', () => {
  it('parses clusters, attached and separate values, and skips operands', () => {
    const { state } = cli('fence_xvm', 'junk', '-du', '-ostatus', '-n', 'vm1', '-p', '0x10');
    expect(state.args).toMatchObject({
      debug: 1,
      useUuid: true,
      op: Op.STATUS,
      domain: 'vm1',
      port: 16,
    });
    expect(state.error).toBe(false);
  });

  it('stops at --', () => {
    const { state } = cli('fence_xvm', '--', '-o', 'status');
    expect(state.args.op).toBe(Op.REBOOT);
  });

  it('reports every invalid value and keeps parsing', () => {
    const { state } = cli('fence_xvm', '-p', '0', '-t', '1abc', '-r', '0', '-w', '-1', '-i', 'foo');
    expect(state.messages).toEqual([
      "Invalid port: '0'",
      "Invalid timeout: '1abc'",
      "Invalid retransmit time: '0'",
      "Invalid delay: '-1'",
      "Unsupported family: 'foo'",
    ]);
    expect(state.error).toBe(true);
  });

  it('rejects unknown hash, auth and action words', () => {
    const { state } = cli('fence_virt', '-c', 'md5', '-C', 'md4', '-o', 'bogus');
    expect(state.messages).toEqual([
      'Unsupported hash: md5',
      'Unsupported auth type: md4',
      'Unsupported operation: bogus',
    ]);
  });

  it('accepts hash names in any case', () => {
    const { state } = cli('fence_xvm', '-c', 'SHA512', '-C', 'none', '-o', 'LIST-STATUS');
    expect(state.args.hash).toBe(HashType.sha512);
    expect(state.args.auth).toBe(HashType.none);
    expect(state.args.op).toBe(Op.HOSTLIST);
  });

  it('checks an explicit key file', () => {
    const { state } = cli('fence_xvm', '-k', '/missing');
    expect(state.messages).toEqual(["Invalid key file: '/missing' (No such file or directory)"]);
    const ok = cli('fence_xvm', '-k', '/present').state;
    expect(ok.args).toMatchObject({ keyFile: '/present', keyFileGiven: true });
  });

  it('allows one target only and bounds its length', () => {
    expect(cli('fence_xvm', '-n', 'a', '-H', 'b').state.messages).toEqual([
      'Domain/UUID may not be specified more than once',
    ]);
    expect(cli('fence_xvm', '-n', '').state.messages).toEqual(['Invalid domain name']);
    const long = 'x'.repeat(64);
    expect(cli('fence_xvm', '-n', long).state.messages).toEqual([
      `Invalid domain name: '${long}' (File name too long)`,
    ]);
    expect(cli('fence_xvm', '-n', 'x'.repeat(63)).state.error).toBe(false);
  });

  it('answers unknown letters and missing values with help, as getopt does', () => {
    const bad = cli('fence_xvm', '-I');
    expect(bad.stderr).toEqual(["PROG: invalid option -- 'I'"]);
    expect(bad.state.help).toBe(true);
    const missing = cli('fence_xvm', '-M');
    expect(missing.stderr).toEqual(["PROG: option requires an argument -- 'M'"]);
    expect(missing.state.help).toBe(true);
    expect(cli('fence_virt', '-u').stderr).toEqual(["PROG: invalid option -- 'u'"]);
  });

  it('treats -M with a value as a silent error', () => {
    const { state } = cli('fence_xvm', '-M', 'x', '-n', 'a');
    expect(state.error).toBe(true);
    expect(state.messages).toEqual([]);
  });

  it('takes the vsock CID only when attached', () => {
    expect(cli('fence_virt', '-S').state.args.cid).toBe(2);
    expect(cli('fence_virt', '-S3').state.args.cid).toBe(3);
    expect(cli('fence_virt', '-S', '5').state.args.cid).toBe(2);
    expect(cli('fence_virt', '-S1').state.messages).toEqual(["Invalid CID: '1'"]);
    expect(cli('fence_virt', '-S4294967295').state.messages).toEqual(["Invalid CID: '4294967295'"]);
  });

  it('sees -h and -V', () => {
    expect(cli('fence_xvm', '-h').state.help).toBe(true);
    expect(cli('fence_xvm', '-?').state.help).toBe(true);
    expect(cli('fence_virt', '-V').state.version).toBe(true);
  });
});

describe('stdin', () => {
  it('reads name=value lines with the C quirks', () => {
    const { state, stderr } = stdin(
      'fence_xvm',
      [
        'ACTION=status',
        '  Port=vm1',
        '#ipport=5',
        '  # comment',
        'ipport=0x10 trailing',
        'nodename=n1',
        'agent=fence_xvm',
        'self',
        'interface=lo',
        'ipaddr=1.2.3.4',
        '',
        'timeout=7\r',
      ].join('\n'),
    );
    expect(state.args).toMatchObject({ op: Op.STATUS, domain: 'vm1', port: 16, timeout: 7 });
    expect(stderr).toEqual([
      "Parse error: Ignoring unknown option '#'",
      "Parse error: Ignoring unknown option 'interface'",
      "Parse error: Ignoring unknown option 'ipaddr'",
    ]);
  });

  it('drops a value after a blank, so "action = off" keeps reboot', () => {
    expect(stdin('fence_xvm', 'action = off\n').state.args.op).toBe(Op.REBOOT);
  });

  it('handles bare and valued debug, use_uuid and vsock', () => {
    expect(stdin('fence_xvm', 'debug\ndebug\n').state.args.debug).toBe(2);
    expect(stdin('fence_xvm', 'debug=5\n').state.args.debug).toBe(5);
    expect(stdin('fence_xvm', 'debug=-3\n').state.args.debug).toBe(1);
    expect(stdin('fence_xvm', 'use_uuid\n').state.args.useUuid).toBe(true);
    expect(stdin('fence_xvm', 'use_uuid=0\n').state.args.useUuid).toBe(false);
    expect(stdin('fence_virt', 'vsock\n').state.args.cid).toBe(2);
    expect(stdin('fence_virt', 'vsock=1\n').state.messages).toEqual(["Invalid CID: '1'"]);
  });

  it('ignores bare names that need a value but rejects empty values', () => {
    expect(stdin('fence_xvm', 'plug\n').state.args.domain).toBeUndefined();
    expect(stdin('fence_xvm', 'plug=\n').state.messages).toEqual(['Invalid domain name']);
    expect(stdin('fence_xvm', 'timeout=\n').state.messages).toEqual(["Invalid timeout: ''"]);
    expect(stdin('fence_xvm', 'auth=\n').state.messages).toEqual(['Unsupported auth type: ']);
  });

  it('accepts option= as the deprecated action alias and domain= as a target', () => {
    expect(stdin('fence_virt', 'option=off\ndomain=vm2\n').state.args).toMatchObject({
      op: Op.OFF,
      domain: 'vm2',
    });
  });

  it('cuts long lines at 255 bytes as fgets(256) does', () => {
    const { state, stderr } = stdin('fence_xvm', `plug=${'a'.repeat(250)}timeout=5\n`);
    expect(state.args.domain).toBe('a'.repeat(250));
    expect(state.args.timeout).toBe(5);
    expect(stderr).toEqual([]);
  });
});

describe('finalise', () => {
  function fin(personality: Personality, ...argv: string[]) {
    const { state } = cli(personality, ...argv);
    const target = finalise(state, personality);
    return { state, target };
  }

  it('derives the family from the group, IPv4 winning over a colon', () => {
    expect(fin('fence_xvm', '-n', 'x').target).toEqual({ group: '225.0.0.12', ipv6: false });
    expect(fin('fence_xvm', '-n', 'x', '-i', 'ipv6').target).toEqual({
      group: 'ff05::3:1',
      ipv6: true,
    });
    expect(fin('fence_xvm', '-n', 'x', '-a', 'ff05::1').target.ipv6).toBe(true);
    expect(fin('fence_xvm', '-n', 'x', '-a', '1::2.3.4.5').target.ipv6).toBe(false);
    expect(fin('fence_xvm', '-n', 'x', '-a', 'ff05::1', '-i', 'ipv4').target.ipv6).toBe(false);
    expect(fin('fence_xvm', '-n', 'x', '-a', 'foo').state.messages).toEqual([
      'Could not determine address family',
    ]);
  });

  it('requires a domain except for monitor, list, list-status and metadata', () => {
    for (const op of ['monitor', 'list', 'list-status', 'metadata']) {
      expect(fin('fence_virt', '-o', op).state.error).toBe(false);
    }
    for (const op of ['status', 'on', 'off', 'reboot', 'null', 'validate-all']) {
      expect(fin('fence_virt', '-o', op).state.messages).toEqual(['No domain specified!']);
    }
  });
});

describe('option order', () => {
  it('follows the getopt strings', () => {
    const names = (p: Personality): string[] =>
      optionsInOrder(p)
        .filter((o) => o.name)
        .map((o) => o.name!);
    expect(names('fence_xvm')).toEqual([
      'debug',
      'ip_family',
      'multicast_address',
      'ipport',
      'retrans',
      'auth',
      'hash',
      'key_file',
      'plug',
      'port',
      'use_uuid',
      'action',
      'timeout',
      'delay',
    ]);
    expect(names('fence_virt')).toEqual([
      'debug',
      'serial_device',
      'serial_params',
      'channel_address',
      'ipport',
      'plug',
      'port',
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
});
