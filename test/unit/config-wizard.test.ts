/**
 * The dialog logic with in-memory streams (the pseudo-terminal comparison against the real
 * C dialog is test/integration/config-wizard.test.ts). The config files live in a temp dir.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { loadConfigFile } from '../../src/config/load.js';
import { parseCInteger, runWizard } from '../../src/config/wizard.js';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virtfence-wizard-unit-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

async function wizard(
  answers: string[],
  options: { conf?: string; file?: string } = {},
): Promise<{ code: number; output: string; file: string }> {
  const file = options.file ?? path.join(dir, 'fence_virt.conf');
  if (options.conf !== undefined) fs.writeFileSync(file, options.conf);
  const input = new PassThrough();
  const output = new PassThrough();
  let text = '';
  output.on('data', (chunk: Buffer) => (text += chunk.toString()));
  input.end(answers.map((a) => a + '\n').join(''));
  const code = await runWizard({ input, output, configFile: file });
  return { code, output: text, file };
}

const BASE = 'fence_virtd { listener = "multicast"; backend = "libvirt"; }\n';

describe('runWizard', () => {
  test('lists the built-in modules in the C format', async () => {
    const { output } = await wizard([], { conf: BASE });
    expect(output).toContain(
      '\nAvailable backends:\n    libvirt 0.3\n    amqp 0.1\n    cpg 0.1\nAvailable listeners:\n' +
        '    multicast 1.3\n    tcp 0.2\n    serial 0.5\n    vsock 0.2\n',
    );
  });

  test('amqp backend questions are asked, validated and saved', async () => {
    const { code, output, file } = await wizard(
      [
        '', // module path
        'multicast',
        '',
        '',
        '',
        '',
        'amqp',
        'http://wrong',
        'n',
        'amqps://broker.example:5671',
        'prod',
        'host-a',
        'relative.key',
        'n',
        '/etc/cluster/prod.key',
        'rabbit',
        'n',
        'artemis',
        'y',
      ],
      { conf: BASE },
    );
    expect(code).toBe(0);
    expect(output).toContain(
      'Broker URL [amqp://localhost:5672]: Invalid broker URL: http://wrong\n',
    );
    expect(output).toContain('Use anyway [Y/n]? Broker URL [amqp://localhost:5672]: ');
    expect(output).toContain('Cluster name [default]: ');
    expect(output).toContain(`Host ID [${os.hostname()}]: `);
    expect(output).toContain(
      'Cluster Key File [/etc/cluster/fence_virt_cluster.key]: Invalid key file: relative.key\n',
    );
    expect(output).toContain(
      'Broker profile (rabbitmq3, rabbitmq4, activemq, artemis, qpid-broker-j or qpidd) [rabbitmq4]: ' +
        'Invalid profile: rabbit\n',
    );
    const { config, warnings } = loadConfigFile(file);
    expect(warnings).toEqual([]);
    expect(config.fenceVirtd.backend).toBe('amqp');
    expect(fs.readFileSync(file, 'utf8')).toContain(
      'backends {\n\tamqp {\n\t\tprofile = "artemis";\n\t\tkey_file = "/etc/cluster/prod.key";\n' +
        '\t\thost_id = "host-a";\n\t\tcluster = "prod";\n\t\turl = "amqps://broker.example:5671";\n',
    );
  });

  test('a listener list configures each listener in turn', async () => {
    const { code, file, output } = await wizard(
      ['', 'multicast,serial', '', '', '', '', '', '', '', '', '', 'y'],
      { conf: BASE },
    );
    expect(code).toBe(0);
    expect(output.indexOf('Multicast IP Address')).toBeLessThan(output.indexOf('Socket directory'));
    expect(loadConfigFile(file).config.fenceVirtd.listeners).toEqual(['multicast', 'serial']);
  });

  test('cpg: the name-mode warning, a refusal, then acceptance', async () => {
    const { output, file, code } = await wizard(
      ['', 'vsock', '', '', 'cpg', '', 'other', 'name', 'n', 'name', 'y', 'y'],
      { conf: BASE },
    );
    expect(code).toBe(0);
    const mode = 'VM naming/tracking mode (name or uuid) [uuid]: ';
    const warning =
      'This can be dangerous if you do not take care toensure that\n' +
      'virtual machine names are unique cluster-wide.\nUse name mode anyway [Y/n]? ';
    expect(output).toContain(`${mode}${mode}${warning}${mode}${warning}\nConfiguration complete.`);
    expect(fs.readFileSync(file, 'utf8')).toContain(
      'backends {\n\tcpg {\n\t\tname_mode = "name";\n\t\turi = "qemu:///system";\n\t}\n\n}\n\n',
    );
    expect(output).toContain('Vsock Listen Port [1229]: ');
    expect(output).not.toContain("unknown listner module 'vsock'");
    expect(output).not.toContain('No backend module named cpg');
    expect(loadConfigFile(file).config.fenceVirtd).toMatchObject({
      listeners: ['vsock'],
      backend: 'cpg',
    });
  });

  test('the replace question is cut to 79 characters before " [y/N]? "', async () => {
    const deep = path.join(dir, 'd'.repeat(60));
    fs.mkdirSync(deep);
    const file = path.join(deep, 'fence_virt.conf');
    const { output, code } = await wizard([], { conf: BASE, file });
    expect(code).toBe(1);
    const expected = `Replace ${file} with the above`.slice(0, 79) + ' [y/N]? ';
    expect(output.endsWith(expected)).toBe(true);
    expect(expected.length).toBe(79 + 8);
  });

  test('an invalid default with no input left stops instead of looping', async () => {
    const conf = BASE + 'listeners { multicast { port = "0"; } }\n';
    const { code, output } = await wizard([], { conf });
    expect(code).toBe(1);
    expect(output).toMatch(/Port value '0' is out of range\n\nInput ended without a valid answer/);
  });

  test('a failed write is reported and returns 1', async () => {
    const file = path.join(dir, 'missing-dir', 'fence_virt.conf');
    const { code, output } = await wizard(['y', '', '', '', '', '', '', '', '', 'y'], { file });
    expect(code).toBe(1);
    expect(output).toMatch(/Unable to write .*missing-dir\/fence_virt\.conf: ENOENT/);
  });

  test('existing values are the defaults and are replaced in place', async () => {
    const conf =
      'listeners { multicast { port = "1300"; interface = "eth9"; key_file = "/k"; } }\n' + BASE;
    const { output, file } = await wizard(['', '', '', '', '', '', '', '', 'y'], { conf });
    expect(output).toContain('Multicast IP Port [1300]: ');
    expect(output).toContain('Interface [eth9]: ');
    expect(output).toContain('Key File [/k]: ');
    expect(fs.readFileSync(file, 'utf8')).toContain(
      '\tmulticast {\n\t\taddress = "225.0.0.12";\n\t\tfamily = "ipv4";\n\t\tkey_file = "/k";\n' +
        '\t\tinterface = "eth9";\n\t\tport = "1300";\n\t}\n',
    );
  });
});

describe('parseCInteger (strtol base 0, whole string)', () => {
  test.each([
    ['1229', 1229],
    [' 80', 80],
    ['0x10', 16],
    ['010', 8],
    ['-5', -5],
    ['0', 0],
  ])('%j → %d', (text, value) => expect(parseCInteger(text)).toBe(value));

  test.each(['12abc', '', 'abc', '08', '1 '])('%j is rejected', (text) =>
    expect(parseCInteger(text)).toBeUndefined(),
  );
});
