import { checkConfigText, formatIssue, type FileProbe } from '../../src/config/check.js';
import {
  convertClusterConf,
  convertConfig,
  fenceXvmdAttributes,
  normaliseFenceVirtConf,
} from '../../src/config/convert.js';
import { loadConfigText } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/schema.js';
import { DEBIAN_SAMPLE } from '../helpers/config-samples.js';

/** A fake file system: path → mode. */
const files =
  (entries: Record<string, number>): FileProbe =>
  (path) =>
    path in entries ? { mode: entries[path] as number } : undefined;

const GOOD = `fence_virtd {
\tlistener = "multicast";
\tbackend = "libvirt";
}
listeners {
\tmulticast {
\t\tkey_file = "/etc/k.key";
\t}
}
`;

describe('checkConfigText', () => {
  test('a good file with its key in place has no issues', () => {
    const result = checkConfigText(GOOD, 'f.conf', files({ 'f.conf': 0o600, '/etc/k.key': 0o600 }));
    expect(result).toMatchObject({ valid: true, issues: [] });
    expect(result.config?.fenceVirtd.listeners).toEqual(['multicast']);
  });

  test("the amqp block is checked as the daemon reads it, with each profile's rules", () => {
    const amqp = (block: string) => `fence_virtd {
\tlistener = "multicast";
\tbackend = "amqp";
}
listeners { multicast { key_file = "/etc/k.key"; } }
backends {
\tamqp {
${block}
\t}
}
`;
    const probe = files({ 'f.conf': 0o600, '/etc/k.key': 0o600, '/etc/c.key': 0o600 });
    const check = (block: string) =>
      checkConfigText(amqp(block), 'f.conf', probe).issues.map((i) => formatIssue('f.conf', i));
    // ActiveMQ refuses connections without SASL credentials: the daemon would refuse this file
    expect(
      check('\t\turl = "amqp://b:5672";\n\t\tkey_file = "/etc/c.key";\n\t\tprofile = "activemq";'),
    ).toEqual([
      'f.conf:7: error: backends/amqp/username: profile activemq needs a username (the broker refuses connections without SASL credentials)',
    ]);
    expect(
      check(
        '\t\turl = "amqp://b:5672";\n\t\tkey_file = "/etc/c.key";\n\t\tprofile = "activemq";\n\t\tusername = "hv";',
      ),
    ).toEqual([]);
    // a bare name is a shared queue on RabbitMQ: events would reach one host only
    expect(
      check(
        '\t\turl = "amqp://b:5672";\n\t\tkey_file = "/etc/c.key";\n\t\tevent_address = "virtfence.{cluster}.events";',
      ),
    ).toEqual([
      'f.conf:10: error: backends/amqp/event_address: virtfence.{cluster}.events does not fit profile rabbitmq3 (fan-out /topic/… or /exchange/…, queues /queue/…)',
    ]);
    expect(check('\t\tkey_file = "/etc/c.key";')).toEqual([
      'f.conf:7: error: backends/amqp/url: url is required',
    ]);
  });

  test('syntax errors carry line and column', () => {
    const result = checkConfigText('a {\n b = "c"\n}', 'f.conf');
    expect(result.valid).toBe(false);
    expect(result.issues.map((i) => formatIssue('f.conf', i))).toEqual([
      "f.conf:3:1: error: expected ';' after value, found '}'",
    ]);
  });

  test('every problem is listed with its line, sorted, errors and warnings', () => {
    const text = `fence_virtd {
\tlistener = "multicast,bogus";
\tbackend = "cpg";
\tfoo = "1";
}
listeners {
\tmulticast { port = "99999"; }
}
`;
    const result = checkConfigText(text, 'f.conf');
    expect(result.valid).toBe(false);
    expect(result.issues.map((i) => formatIssue('f.conf', i))).toEqual([
      'f.conf:4: warning: unknown key fence_virtd/foo',
      'f.conf:7: error: listeners/multicast/port: port 99999 is out of range (1-65535)',
    ]);
  });

  test('unknown plugins are errors once values are valid', () => {
    const text = GOOD.replace('"multicast";', '"multicast,bogus";').replace('"libvirt"', '"xen"');
    const lines = checkConfigText(text, 'f.conf').issues.map((i) => formatIssue('f.conf', i));
    expect(lines).toEqual([
      'f.conf:2: error: fence_virtd/listener: Could not find listener "bogus" (available: multicast, tcp, serial, vsock)',
      'f.conf:3: error: fence_virtd/backend: Could not find backend "xen" (available: libvirt, amqp, cpg)',
    ]);
  });

  test('missing key file is an error; loose modes are warnings', () => {
    const missing = checkConfigText(GOOD, 'f.conf', files({ 'f.conf': 0o600 }));
    expect(missing.valid).toBe(false);
    expect(formatIssue('f.conf', missing.issues[0]!)).toBe(
      "f.conf:7: error: listeners/multicast/key_file: key file /etc/k.key does not exist; fence_virtd will not start (create it with 'virtfence keygen /etc/k.key')",
    );
    const loose = checkConfigText(GOOD, 'f.conf', files({ 'f.conf': 0o644, '/etc/k.key': 0o640 }));
    expect(loose.valid).toBe(true);
    expect(loose.issues.map((i) => i.message)).toEqual([
      'configuration file has mode 0644; fence_virtd changes it to 0600 at start-up',
      'key file /etc/k.key has mode 0640; fence_virtd changes it to 0600 at start-up',
    ]);
  });

  test('settings that load but probably do not do what was meant are warnings', () => {
    const text = `fence_virtd { listener = "multicast,tcp"; backend = "libvirt"; }
listeners {
  multicast { address = "10.0.0.1"; }
  tcp { auth = "sha512"; }
}
groups { group { name = "empty"; } group { uuid = "vm1"; } }
`;
    const result = checkConfigText(text, 'f.conf');
    expect(result.valid).toBe(true);
    expect(result.issues.map((i) => formatIssue('f.conf', i))).toEqual([
      'f.conf:3: warning: listeners/multicast/address: 10.0.0.1 is not a multicast group address',
      'f.conf:4: warning: listeners/tcp/auth: virtfence uses this as the challenge algorithm, as documented; the C fence_virtd 4.12.1 reads it as the minimum packet hash instead',
      'f.conf:6: warning: groups/group: group has no ip or uuid entries and has no effect',
    ]);
  });

  test('every listener key is checked, the default one when unset', () => {
    const text = GOOD.replace('"multicast";', '"multicast,tcp";');
    const result = checkConfigText(text, 'f.conf', files({ 'f.conf': 0o600, '/etc/k.key': 0o600 }));
    expect(result.issues.map((i) => i.path)).toEqual(['listeners/tcp/key_file']);
    expect(result.issues[0]?.message).toContain('/etc/cluster/fence_xvm.key does not exist');
  });
});

describe('convertClusterConf', () => {
  const CLUSTER_CONF = `<?xml version="1.0"?>
<cluster name="c" config_version="3">
  <!-- <fence_xvmd port="1"/> is a comment -->
  <fence_xvmd key_file="/etc/cluster/fence_xvm.key" multicast_address='225.0.1.12'
      port="1230" family="ipv4" auth="sha1" hash="sha512" use_uuid="1" debug="2"/>
  <clusternodes/>
</cluster>`;

  test('attributes are read, comments skipped, entities decoded', () => {
    expect(
      fenceXvmdAttributes('<fence_xvmd key_file="/a&amp;b" x=\'&#65;\'></fence_xvmd>'),
    ).toEqual({ key_file: '/a&b', x: 'A' });
    expect(fenceXvmdAttributes('<!-- <fence_xvmd/> -->')).toBeUndefined();
  });

  test('maps, adds defaults and drops what has no equivalent', () => {
    const conversion = convertConfig(CLUSTER_CONF, 'cluster.conf');
    expect(conversion.source).toBe('cluster.conf');
    expect(conversion.mapped.map((m) => `${m.from}->${m.to}=${m.value}`)).toEqual([
      'key_file->listeners/multicast/key_file=/etc/cluster/fence_xvm.key',
      'multicast_address->listeners/multicast/address=225.0.1.12',
      'port->listeners/multicast/port=1230',
      'family->listeners/multicast/family=ipv4',
      'auth->listeners/multicast/auth=sha1',
      'hash->listeners/multicast/hash=sha512',
      'debug->fence_virtd/debug=2',
    ]);
    expect(conversion.dropped).toEqual([
      { from: 'use_uuid', value: '1', reason: 'no equivalent in fence_virtd' },
    ]);
    expect(conversion.added.map((a) => a.to)).toEqual([
      'fence_virtd/listener',
      'fence_virtd/backend',
      'backends/libvirt/uri',
    ]);
    const { config, warnings } = loadConfigText(conversion.text);
    expect(warnings).toEqual([]);
    expect(config.listeners.multicast).toMatchObject({
      address: '225.0.1.12',
      port: 1230,
      auth: 1,
      hash: 3,
    });
    expect(config.fenceVirtd.debug).toBe(2);
  });

  test('invalid attribute values are dropped with the reason', () => {
    const conversion = convertClusterConf('<fence_xvmd hash="md5" port="0" family="auto"/>');
    expect(conversion.dropped.map((d) => `${d.from}: ${d.reason}`).sort()).toEqual([
      "family: 'auto' is not a family; use ipv4 or ipv6",
      "hash: 'md5' is not one of none, sha1, sha256, sha512",
      'port: port 0 is out of range (1-65535)',
    ]);
    expect(conversion.mapped).toEqual([]);
    expect(() => loadConfigText(conversion.text)).not.toThrow();
  });

  test('no element is a clear error', () => {
    expect(() => convertClusterConf('<cluster/>', 'c.xml')).toThrow(
      'c.xml: no <fence_xvmd> element found',
    );
  });
});

describe('normaliseFenceVirtConf', () => {
  test('Debian sample: everything kept, comments gone, file order', () => {
    const conversion = normaliseFenceVirtConf(DEBIAN_SAMPLE);
    expect(conversion.dropped).toEqual([]);
    expect(conversion.kept.map((k) => k.from)).toEqual([
      'fence_virtd/listener',
      'fence_virtd/backend',
      'listeners/multicast/key_file',
      'listeners/multicast/address',
      'listeners/multicast/interface',
      'backends/libvirt/uri',
    ]);
    expect(conversion.text).toBe(
      'fence_virtd {\n\tlistener = "multicast";\n\tbackend = "libvirt";\n}\n\n' +
        'listeners {\n\tmulticast {\n\t\tkey_file = "/etc/fence_virt.key";\n\t\taddress = "225.0.0.12";\n' +
        '\t\tinterface = "virbr0";\n\t}\n\n}\n\nbackends {\n\tlibvirt {\n\t\turi = "qemu:///system";\n\t}\n\n}\n\n',
    );
  });

  test('duplicates, unknown keys and legacy keys; secrets masked', () => {
    const conversion = normaliseFenceVirtConf(`top = "x";
FENCE_VIRTD { listener = "a"; Listener = "multicast"; backend = "amqp"; wait_for_backend = "1";
  name_mode = "uuid"; bogus = "1"; }
backends { amqp { url = "amqp://h"; password = "s3cret"; passwrd = "typo-secret"; } }
groups { group { name = "g"; uuid = "u1"; uuid = "u2"; color = "red"; } group { ip = "10.0.0.1"; } }
`);
    expect(conversion.mapped).toEqual([
      { from: 'fence_virtd/wait_for_backend', to: 'fence_virtd/wait_for_init', value: '1' },
      { from: 'fence_virtd/name_mode', to: 'backends/cpg/name_mode', value: 'uuid' },
    ]);
    expect(conversion.dropped.map((d) => d.reason)).toEqual([
      'top-level key top on line 1 is ignored (keys belong inside a block)',
      'duplicate key FENCE_VIRTD/listener on line 2 is ignored (line 2 wins)',
      'unknown key FENCE_VIRTD/bogus on line 3',
      'unknown key backends/amqp/passwrd on line 4',
      'unknown key groups/group/color on line 5',
    ]);
    const report = JSON.stringify([conversion.kept, conversion.mapped, conversion.dropped]);
    expect(report).not.toContain('s3cret');
    expect(report).not.toContain('typo-secret');
    const { config, warnings } = loadConfigText(conversion.text);
    expect(warnings).toEqual([]);
    expect(config.fenceVirtd).toMatchObject({ listeners: ['multicast'], waitForInit: true });
    expect(config.groups.map((g) => g.name).sort()).toEqual(['g', 'unnamed-1']);
    expect(conversion.text).toContain('password = "s3cret";');
  });

  test('an invalid file is refused with its problems', () => {
    expect(() => normaliseFenceVirtConf('fence_virtd { backend = "libvirt"; }')).toThrow(
      ConfigError,
    );
  });
});
