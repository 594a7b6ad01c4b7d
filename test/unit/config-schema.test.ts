import { ConfigError } from '../../src/config/schema.js';
import { loadConfigText } from '../../src/config/load.js';
import { HashType } from '../../src/protocol/constants.js';
import { MINIMAL_CONF } from '../helpers/config-samples.js';

function configError(text: string): ConfigError {
  try {
    loadConfigText(text, 'x.conf');
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('validateConfig defaults (docs/protocol.md §15.5)', () => {
  const { config, warnings } = loadConfigText(MINIMAL_CONF);

  test('fence_virtd', () => {
    expect(config.fenceVirtd).toEqual({
      listeners: ['multicast'],
      backend: 'libvirt',
      debug: 0,
      foreground: false,
      waitForInit: false,
      modulePath: undefined,
      metrics: undefined,
      statsIntervalSec: 300,
    });
    expect(warnings).toEqual([]);
  });

  test('listeners', () => {
    expect(config.listeners.multicast).toEqual({
      keyFile: '/etc/cluster/fence_xvm.key',
      hash: HashType.sha256,
      auth: HashType.sha256,
      family: 'ipv4',
      address: '225.0.0.12',
      port: 1229,
      interface: undefined,
    });
    expect(config.listeners.tcp).toMatchObject({
      address: '127.0.0.1',
      port: 1229,
      family: 'ipv4',
    });
    expect(config.listeners.vsock).toEqual({
      keyFile: '/etc/cluster/fence_xvm.key',
      hash: HashType.sha256,
      auth: HashType.sha256,
      port: 1229,
    });
    expect(config.listeners.serial).toEqual({ uri: undefined, path: undefined, mode: 'serial' });
    expect(config.backends.libvirt.uris).toEqual([]);
    expect(config.groups).toEqual([]);
    expect(config.tree.children).toHaveLength(1);
  });

  test('ipv6 family changes the default addresses', () => {
    const v6 = loadConfigText(
      MINIMAL_CONF + 'listeners { multicast { family = "ipv6"; } tcp { family = "IPv6"; } }',
    ).config;
    expect(v6.listeners.multicast.address).toBe('ff05::3:1');
    expect(v6.listeners.tcp.address).toBe('::1');
  });
});

describe('validateConfig values', () => {
  test('every key is read, case-insensitively, last occurrence winning', () => {
    const { config } = loadConfigText(`
FENCE_VIRTD { Listener = "tcp"; listener = "Multicast , serial,multicast"; backend = "LibVirt";
  debug = "3"; foreground = "1"; wait_for_backend = "1"; module_path = "/m"; }
listeners {
  multicast { key_file = "/k"; hash = "SHA512"; auth = "none"; address = "239.1.2.3"; port = "1300"; interface = "virbr0"; }
  tcp { auth = "sha1"; address = "0.0.0.0"; port = "1301"; }
  vsock { port = "1302"; hash = "sha1"; }
  serial { uri = "qemu:///session"; path = "/var/run/cluster"; mode = "vmchannel"; }
}
backends { libvirt { uri = "qemu:///system"; uri1 = "test:///default"; uri3 = "ignored"; } }
`);
    expect(config.fenceVirtd).toEqual({
      listeners: ['multicast', 'serial'],
      backend: 'libvirt',
      debug: 3,
      foreground: true,
      waitForInit: true,
      modulePath: '/m',
      metrics: undefined,
      statsIntervalSec: 300,
    });
    expect(config.listeners.multicast).toEqual({
      keyFile: '/k',
      hash: HashType.sha512,
      auth: HashType.none,
      family: 'ipv4',
      address: '239.1.2.3',
      port: 1300,
      interface: 'virbr0',
    });
    expect(config.listeners.tcp).toMatchObject({
      auth: HashType.sha1,
      address: '0.0.0.0',
      port: 1301,
    });
    expect(config.listeners.vsock).toMatchObject({ hash: HashType.sha1, port: 1302 });
    expect(config.listeners.serial).toEqual({
      uri: 'qemu:///session',
      path: '/var/run/cluster',
      mode: 'vmchannel',
    });
    expect(config.backends.libvirt.uris).toEqual(['qemu:///system', 'test:///default']);
  });

  test('wait_for_init wins over its legacy alias', () => {
    const text = MINIMAL_CONF.replace('}', 'wait_for_init = "0"; wait_for_backend = "1"; }');
    expect(loadConfigText(text).config.fenceVirtd.waitForInit).toBe(false);
  });

  test('serial mode: other values are integers, non-zero meaning vmchannel', () => {
    const mode = (m: string) =>
      loadConfigText(MINIMAL_CONF + `listeners { serial { mode = "${m}"; } }`).config.listeners
        .serial.mode;
    expect(mode('1')).toBe('vmchannel');
    expect(mode('0')).toBe('serial');
    expect(mode('SERIAL')).toBe('serial');
  });

  test('groups: C order, default names, repeatable ip and uuid', () => {
    const { config } = loadConfigText(
      MINIMAL_CONF +
        `groups {
  group { name = "first"; uuid = "vm1"; uuid = "vm2"; ip = "10.0.0.1"; }
  group { ip = "10.0.0.2"; ip = "10.0.0.3"; }
}`,
    );
    expect(config.groups).toEqual([
      { name: 'unnamed-1', ips: ['10.0.0.3', '10.0.0.2'], uuids: [] },
      { name: 'first', ips: ['10.0.0.1'], uuids: ['vm2', 'vm1'] },
    ]);
  });
});

describe('validateConfig problems name key path and line', () => {
  test('missing listener and backend', () => {
    const error = configError('fence_virtd { debug = "1"; }');
    expect(error.problems.map((p) => p.path)).toEqual([
      'fence_virtd/listener',
      'fence_virtd/backend',
    ]);
    expect(error.message).toContain('Failed to determine listener');
    expect(error.message).toContain('Failed to determine backend');
  });

  test('no fence_virtd block at all', () => {
    expect(configError('listeners { }').message).toContain('Failed to determine listener');
  });

  test('bad hash, port, family and integer values', () => {
    const error = configError(
      MINIMAL_CONF +
        `listeners {
  multicast {
    hash = "md5";
    port = "70000";
  }
  tcp { family = "inet"; port = "abc"; }
}
fence_virtd { listener = "multicast"; backend = "libvirt"; debug = "high"; }
`,
    );
    const byPath = Object.fromEntries(error.problems.map((p) => [p.path, p]));
    expect(byPath['listeners/multicast/hash']).toEqual({
      path: 'listeners/multicast/hash',
      line: 4,
      message: "'md5' is not one of none, sha1, sha256, sha512",
    });
    expect(byPath['listeners/multicast/port']?.line).toBe(5);
    expect(byPath['listeners/multicast/port']?.message).toBe(
      'port 70000 is out of range (1-65535)',
    );
    expect(byPath['listeners/tcp/family']?.message).toBe(
      "'inet' is not a family; use ipv4 or ipv6",
    );
    expect(byPath['listeners/tcp/port']?.message).toBe("'abc' is not a port number");
    expect(byPath['fence_virtd/debug']).toEqual({
      path: 'fence_virtd/debug',
      line: 9,
      message: "'high' is not an integer",
    });
    expect(error.message).toMatch(/^x\.conf: .*listeners\/multicast\/hash on line 4: /);
  });

  test('port 0, serial mode and empty listener list', () => {
    const error = configError(
      'fence_virtd { listener = " , "; backend = "libvirt"; }\n' +
        'listeners { vsock { port = "0"; } serial { mode = "bogus"; } }',
    );
    expect(error.problems.map((p) => `${p.path}:${p.line}`)).toEqual([
      'fence_virtd/listener:1',
      'listeners/vsock/port:2',
      'listeners/serial/mode:2',
    ]);
  });

  test('address must match the family', () => {
    const error = configError(
      MINIMAL_CONF + 'listeners {\n multicast { address = "ff05::3:1"; }\n}',
    );
    expect(error.problems).toEqual([
      {
        path: 'listeners/multicast/address',
        line: 3,
        message: "'ff05::3:1' is not an IPv4 address (family is ipv4)",
      },
    ]);
  });
});

describe('warnings', () => {
  test('unknown keys and blocks, top-level keys, ignored duplicates', () => {
    const { warnings } = loadConfigText(`top = "x";
fence_virtd { listener = "multicast"; backend = "libvirt"; listner = "typo"; }
listeners {
  multicast {
    port = "1229";
    port = "1230";
    foo = "bar";
  }
  fancy { }
}
fence_virtd { listener = "multicast"; backend = "libvirt"; }
groups { group { uuid = "a"; uuid = "b"; } group { ip = "1"; } }
`);
    expect(warnings).toEqual([
      'top-level key top on line 1 is ignored (keys belong inside a block)',
      'duplicate block fence_virtd on line 2 is ignored (line 11 wins)',
      'duplicate key listeners/multicast/port on line 5 is ignored (line 6 wins)',
      'unknown key listeners/multicast/foo on line 7',
      'unknown block listeners/fancy on line 9',
    ]);
  });

  test('plugin blocks we do not type are known (amqp, cpg)', () => {
    const { warnings, config } = loadConfigText(
      MINIMAL_CONF.replace('libvirt', 'amqp') +
        `backends {
  amqp { url = "amqps://b1"; url1 = "amqps://b2"; username = "u"; password_file = "/p"; tls = "1";
    ca_file = "/ca"; cluster = "c"; host_id = "h"; key_file = "/k"; profile = "rabbitmq4";
    event_address = "e"; request_address = "r"; reply_address = "q"; heartbeat_interval = "1000";
    dead_after = "5000"; uri = "qemu:///system"; uri1 = "test:///default"; password = "pw"; }
  cpg { uri = "x"; name_mode = "uuid"; }
}`,
    );
    expect(warnings).toEqual([]);
    expect(config.fenceVirtd.backend).toBe('amqp');
  });
});
