/**
 * Drives the real `/usr/sbin/fence_virtd -c` and our wizard through a pseudo-terminal with the
 * same answers and compares what matters: prompts with their defaults, validation messages,
 * their order, the dumped configuration, the exit code and the written file. Each written file
 * is then checked by our loader and by the C daemon's parser.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfigFile } from '../../src/config/load.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const OUR_WIZARD = path.join(ROOT, 'dist/config/wizard.js');
const C_DAEMON = '/usr/sbin/fence_virtd';

/** Answers one line per prompt (a prompt ends in "]: " or "]? "); Ctrl-D when none are left. */
const PTY_DRIVER = String.raw`
import json, os, pty, re, sys
answers = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.chdir(sys.argv[2])
    os.execvp(sys.argv[3], sys.argv[3:])
out = b''
since = b''
prompt = re.compile(rb'(\]: |\]\? )$')
while True:
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    out += data
    since += data
    if prompt.search(since):
        since = b''
        os.write(fd, (answers.pop(0) + '\n').encode() if answers else b'\x04')
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
sys.stderr.write(str(os.waitstatus_to_exitcode(status)))
`;
import { DEBIAN_SAMPLE } from '../helpers/config-samples.js';

interface Run {
  transcript: string;
  exitCode: number;
  file: string;
}

/** Runs `command` in a fresh directory holding `conf` (when given) under the name wizard.conf. */
function drive(dir: string, command: string[], answers: string[], conf?: string): Run {
  fs.mkdirSync(dir);
  const file = path.join(dir, 'wizard.conf');
  if (conf !== undefined) fs.writeFileSync(file, conf, { mode: 0o600 });
  const result = spawnSync(
    'python3',
    ['-c', PTY_DRIVER, JSON.stringify(answers), dir, ...command],
    { encoding: 'utf8', timeout: 30000 },
  );
  if (result.error) throw result.error;
  return {
    transcript: result.stdout.replace(/\r\n/g, '\n').split(dir).join('<DIR>'),
    exitCode: Number(result.stderr),
    file,
  };
}

/** Prompts (with the echoed answer), validation messages and the dump; paragraphs dropped. */
const INTERFACE_LINE = [
  /\]: |\]\? /,
  /^Using ipv[46] as family\.$/,
  /is not a valid IP address!$/,
  /^Port value '.*' is out of range$/,
  /^Invalid (key file|mode): /,
  /^No (listener|backend) module named /,
  /^Unable to configure unknown listner module /,
  /^Parsing of .* failed\.$/,
  /^This can be dangerous/,
  /^Configuration complete\.$/,
];

function interfaceLines(transcript: string): string[] {
  const lines = transcript.split('\n');
  const begin = lines.indexOf('=== Begin Configuration ===');
  const end = lines.indexOf('=== End Configuration ===');
  const dump = begin >= 0 && end > begin ? lines.slice(begin, end + 1) : [];
  const dialog = (begin >= 0 ? lines.slice(0, begin) : lines).filter((line) =>
    INTERFACE_LINE.some((re) => re.test(line)),
  );
  const after = end >= 0 ? lines.slice(end + 1) : [];
  return [...dialog, ...dump, ...after.filter((l) => l.length > 0)];
}

/** Our process: runWizard on the pty's stdin/stdout, exit code from its result. */
function ourCommand(): string[] {
  const script =
    `import(${JSON.stringify(OUR_WIZARD)}).then(async (m) => {` +
    ` process.exitCode = await m.runWizard({ input: process.stdin, output: process.stdout,` +
    ` configFile: 'wizard.conf' }); })`;
  return [process.execPath, '--input-type=module', '-e', script];
}

const C_COMMAND = [C_DAEMON, '-c', '-f', 'wizard.conf'];

/** Runs the C daemon on a config until it exits; returns its messages. */
function cDaemonCheck(dir: string, file: string): { output: string; status: number | null } {
  const result = spawnSync(C_DAEMON, ['-F', '-f', file, '-p', path.join(dir, 'c.pid')], {
    encoding: 'utf8',
    timeout: 20000,
    killSignal: 'SIGKILL',
  });
  return { output: result.stdout + result.stderr, status: result.status };
}

describe('fence_virtd -c: ours against the real one', () => {
  let tmp: string;
  let scenario = 0;

  beforeAll(() => {
    if (!fs.existsSync(OUR_WIZARD)) {
      throw new Error(`${OUR_WIZARD} is missing: build first (npm run build:ts)`);
    }
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'virtfence-wizard-'));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  function both(answers: string[], conf?: string): { c: Run; ours: Run; dir: string } {
    const dir = path.join(tmp, `s${scenario++}`);
    fs.mkdirSync(dir);
    const c = drive(path.join(dir, 'c'), C_COMMAND, answers, conf);
    const ours = drive(path.join(dir, 'ours'), ourCommand(), answers, conf);
    return { c, ours, dir };
  }

  test('from scratch, every default, saved: same dialog, byte-identical file', () => {
    const { c, ours, dir } = both(['y', '', '', '', '', '', '', '', '', 'y']);
    expect(interfaceLines(ours.transcript)).toEqual(interfaceLines(c.transcript));
    expect(interfaceLines(c.transcript)).toContain('Start from scratch [y/N]? y');
    expect([ours.exitCode, c.exitCode]).toEqual([0, 0]);
    expect(fs.readFileSync(ours.file, 'utf8')).toBe(fs.readFileSync(c.file, 'utf8'));
    expect(fs.statSync(ours.file).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(path.dirname(ours.file))).toEqual(['wizard.conf']);
    const loaded = loadConfigFile(ours.file);
    expect(loaded.warnings).toEqual([]);
    expect(loaded.config.fenceVirtd.listeners).toEqual(['multicast']);
    expect(loaded.config.backends.libvirt.uris).toEqual(['qemu:///system']);
    // The C daemon parses our file, finds both plugins and reaches its file checks.
    const key = path.join(dir, 'missing.key');
    const text = fs.readFileSync(ours.file, 'utf8').replace('/etc/cluster/fence_xvm.key', key);
    fs.writeFileSync(ours.file, text);
    const check = cDaemonCheck(dir, ours.file);
    expect(check.output).not.toMatch(/Failed to parse|syntax error|Could not find/);
    expect(check.output).toContain(`stat failed on file '${key}'`);
  });

  test('Debian sample with invalid answers at every step: same messages and result', () => {
    const answers = [
      '', // module path
      'foo', // listener: unknown
      'n',
      'multicast',
      'not-an-ip',
      'ff05::3:1',
      '0', // port out of range
      '70000',
      '12abc',
      ' 0x10',
      'none', // interface removed
      'rel/key', // key file not absolute
      'n',
      '/etc/cluster/other.key',
      'bogus', // backend unknown
      'n',
      'libvirt',
      'test:///default',
      'y',
    ];
    const { c, ours } = both(answers, DEBIAN_SAMPLE);
    const cLines = interfaceLines(c.transcript);
    expect(cLines).toContain("Port value '1229' is out of range");
    expect(cLines).toContain('Invalid key file: rel/key');
    // C saves the port as typed (" 0x10"); we save it in decimal (documented deviation).
    const cNormalised = cLines.map((l) => l.replace('port = " 0x10";', 'port = "16";'));
    expect(interfaceLines(ours.transcript)).toEqual(cNormalised);
    expect([ours.exitCode, c.exitCode]).toEqual([0, 0]);
    const config = loadConfigFile(ours.file).config;
    expect(config.listeners.multicast).toMatchObject({
      family: 'ipv6',
      address: 'ff05::3:1',
      port: 16,
      interface: undefined,
      keyFile: '/etc/cluster/other.key',
    });
  });

  test('tcp listener with its own address and no key file', () => {
    const answers = ['', 'tcp', '10.1.2.3', '2000', 'none', '', '', 'y'];
    const { c, ours } = both(answers, DEBIAN_SAMPLE);
    const oursLines = interfaceLines(ours.transcript).map((l) =>
      l.replace('Address [127.0.0.1]: ', 'Address [225.0.0.12]: '),
    );
    expect(oursLines).toEqual(interfaceLines(c.transcript));
    expect(fs.readFileSync(ours.file, 'utf8')).toBe(fs.readFileSync(c.file, 'utf8'));
    const config = loadConfigFile(ours.file).config;
    expect(config.fenceVirtd.listeners).toEqual(['tcp']);
    expect(config.listeners.tcp).toMatchObject({ address: '10.1.2.3', port: 2000 });
  });

  test('tcp default address: ours proposes 127.0.0.1 (C shows the multicast group)', () => {
    const { c, ours } = both(['', 'tcp', '', '', '', '', '', 'n'], DEBIAN_SAMPLE);
    expect(interfaceLines(c.transcript)).toContain('TCP Listen IP Address [225.0.0.12]: ');
    expect(interfaceLines(ours.transcript)).toContain('TCP Listen IP Address [127.0.0.1]: ');
    expect(ours.transcript).toContain('\t\taddress = "127.0.0.1";');
    expect([ours.exitCode, c.exitCode]).toEqual([1, 1]);
  });

  test('serial listener: same dialog; we keep the Libvirt URI answer that C drops', () => {
    const answers = [
      '',
      'serial',
      'qemu:///session',
      '/var/run/cluster',
      'bogus',
      'n',
      'vmchannel',
      '',
      '',
      'y',
    ];
    const { c, ours } = both(answers, DEBIAN_SAMPLE);
    const withoutUri = interfaceLines(ours.transcript).filter(
      (l) => l !== '\t\turi = "qemu:///session";',
    );
    expect(withoutUri).toEqual(interfaceLines(c.transcript));
    expect(fs.readFileSync(c.file, 'utf8')).not.toContain('qemu:///session');
    expect(loadConfigFile(ours.file).config.listeners.serial).toEqual({
      uri: 'qemu:///session',
      path: '/var/run/cluster',
      mode: 'vmchannel',
    });
  });

  test('vsock: ours asks its port and key file (C cannot configure it)', () => {
    const { c, ours } = both(['', 'vsock', '', '', '', '', 'n'], DEBIAN_SAMPLE);
    expect(interfaceLines(c.transcript).join('\n')).toContain(
      "Unable to configure unknown listner module 'vsock'",
    );
    const lines = interfaceLines(ours.transcript).join('\n');
    expect(lines).toContain('Vsock Listen Port [1229]: ');
    expect(lines).not.toContain('unknown listner module');
    expect(ours.exitCode).toBe(1);
  });

  test('an unknown listener kept anyway is not configured further', () => {
    for (const answers of [['', 'foo', 'y', 'foo-backend', 'y', 'n']]) {
      const { c, ours } = both(answers, DEBIAN_SAMPLE);
      expect(interfaceLines(ours.transcript)).toEqual(interfaceLines(c.transcript));
      expect([ours.exitCode, c.exitCode]).toEqual([1, 1]);
      expect(fs.readFileSync(ours.file, 'utf8')).toBe(DEBIAN_SAMPLE);
    }
  });

  test('unparsable file, declined: exit 1 and the file is untouched', () => {
    const broken = 'fence_virtd {\r\n}\r\n';
    const { c, ours } = both(['n'], broken);
    expect(interfaceLines(ours.transcript)).toEqual(interfaceLines(c.transcript));
    expect(interfaceLines(ours.transcript)).toEqual([
      'Parsing of wizard.conf failed.',
      'Start from scratch [y/N]? n',
    ]);
    expect([ours.exitCode, c.exitCode]).toEqual([1, 1]);
    expect(fs.readFileSync(ours.file, 'utf8')).toBe(broken);
  });

  test('end of input gives every default and declines the replacement', () => {
    const { c, ours } = both([], DEBIAN_SAMPLE);
    expect(interfaceLines(ours.transcript)).toEqual(interfaceLines(c.transcript));
    expect([ours.exitCode, c.exitCode]).toEqual([1, 1]);
  });
});
