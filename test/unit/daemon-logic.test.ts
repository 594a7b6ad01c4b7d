import { parseDaemonOptions, usage } from '../../src/daemon/options.js';
import { RequestHistory } from '../../src/protocol/history.js';
import { PermissionMap } from '../../src/routing/permissions.js';

describe('fence_virtd options (docs/protocol.md §16)', () => {
  it('parses the C flags, attached and separate arguments', () => {
    const o = parseDaemonOptions(['-F', '-f', '/tmp/x.conf', '-d2', '-w', '-p', '/tmp/p.pid']);
    expect(o).toMatchObject({
      foreground: true,
      configFile: '/tmp/x.conf',
      debug: 2,
      waitForInit: true,
      pidFile: '/tmp/p.pid',
    });
    expect(parseDaemonOptions(['-Ff', 'a.conf']).configFile).toBe('a.conf');
  });
  it('defaults to /etc/fence_virt.conf and treats an invalid option as help', () => {
    expect(parseDaemonOptions([]).configFile).toBe('/etc/fence_virt.conf');
    expect(parseDaemonOptions(['-x'])).toMatchObject({ help: true, invalid: 'x' });
    expect(parseDaemonOptions(['-f'])).toMatchObject({ help: true, invalid: 'f' });
  });
  it('prints the seven usage lines padded to 17 columns', () => {
    const lines = usage('fence_virtd').trimEnd().split('\n');
    expect(lines[0]).toBe('Usage: fence_virtd [options]');
    expect(lines).toHaveLength(8);
    expect(lines[2]).toBe('  -f <file>        Use <file> as configuration file.');
  });
});

describe('duplicate history (docs/protocol.md §7)', () => {
  it('matches (op, seqno, domain case-insensitively) within the window only', () => {
    let now = 1_000_000;
    const history = new RequestHistory(10_000, () => now);
    history.record(RequestHistory.key(4, 42, 'Test'));
    expect(history.has(RequestHistory.key(4, 42, 'test'))).toBe(true);
    expect(history.has(RequestHistory.key(1, 42, 'test'))).toBe(false);
    now += 10_001;
    expect(history.has(RequestHistory.key(4, 42, 'test'))).toBe(false);
    expect(history.size).toBe(0);
  });
  it('stays bounded', () => {
    const history = new RequestHistory(10_000, () => 0, 3);
    for (let i = 0; i < 10; i += 1) history.record(`k${i}`);
    expect(history.size).toBe(3);
    expect(history.has('k9')).toBe(true);
    expect(history.has('k0')).toBe(false);
  });
});

describe('permission map (docs/protocol.md §13)', () => {
  const uuidA = 'aaaaaaaa-0000-0000-0000-000000000001';
  const map = new PermissionMap([
    { name: 'g1', ips: ['192.168.1.1'], uuids: ['vm-one', uuidA] },
    { name: 'serial', ips: [], uuids: ['bbbbbbbb-0000-0000-0000-000000000002', 'vm-two'] },
  ]);
  it('allows everything without groups', () => {
    expect(new PermissionMap([]).allows(undefined, 'x')).toBe(true);
    expect(new PermissionMap([{ name: 'n', ips: [], uuids: [] }]).allows('1.2.3.4', 'x')).toBe(
      true,
    );
  });
  it('looks IP sources up among ip entries and matches targets case-insensitively', () => {
    expect(map.allows('192.168.1.1', 'VM-ONE')).toBe(true);
    expect(map.allows('192.168.1.1', uuidA.toUpperCase())).toBe(true);
    expect(map.allows('192.168.1.1', 'vm-two')).toBe(false);
    expect(map.allows('10.0.0.9', 'vm-one')).toBe(false);
  });
  it('looks UUID sources (serial) up among uuid entries', () => {
    expect(map.allows('BBBBBBBB-0000-0000-0000-000000000002', 'vm-two')).toBe(true);
    expect(map.allows('bbbbbbbb-0000-0000-0000-000000000002', 'vm-one')).toBe(false);
  });
  it('filters host lists by UUID or name', () => {
    expect(map.allows('192.168.1.1', 'cccccccc-0000-0000-0000-000000000003', 'vm-one')).toBe(true);
    expect(map.allows('192.168.1.1', 'cccccccc-0000-0000-0000-000000000003', 'vm-x')).toBe(false);
  });
  it('denies an unidentified source when enforcing', () => {
    expect(map.allows(undefined, 'vm-one')).toBe(false);
  });
});
