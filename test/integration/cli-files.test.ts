/**
 * The file-based `virtfence` commands on the built commands in dist/ (build first: npm run
 * build:ts): in this process where a process of their own adds nothing, through `bin/virtfence`
 * in a child process once (the launcher) and where stdin is read (config init). Files produced
 * are checked with our loader and, where it matters, with the real C daemon's parser.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfigFile } from '../../src/config/load.js';
import { virtfenceInProcess } from '../helpers/virtfence.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const VIRTFENCE = path.join(ROOT, 'bin/virtfence');
const C_DAEMON = '/usr/sbin/fence_virtd';

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function virtfence(args: string[], options: { cwd: string; input?: string }): Result {
  const result = spawnSync(process.execPath, [VIRTFENCE, ...args], {
    cwd: options.cwd,
    input: options.input ?? '',
    encoding: 'utf8',
    timeout: 30000,
  });
  if (result.error) throw result.error;
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Runs the C daemon in the foreground on `file`; it stops by itself at its file checks. */
function cDaemonMessages(dir: string, file: string): string {
  const result = spawnSync(C_DAEMON, ['-F', '-f', file, '-p', path.join(dir, 'c.pid')], {
    encoding: 'utf8',
    timeout: 20000,
    killSignal: 'SIGKILL',
  });
  return result.stdout + result.stderr;
}

let dir: string;
beforeAll(() => {
  if (!fs.existsSync(path.join(ROOT, 'dist/cli/commands/keygen.js'))) {
    throw new Error('dist/cli is missing: build first (npm run build:ts)');
  }
});
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virtfence-cli-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('virtfence keygen', () => {
  test('creates 4096 random bytes with mode 0600 and prints only the fingerprint', () => {
    const run = virtfence(['keygen', 'sub/fence_xvm.key'], { cwd: dir });
    expect(run.code).toBe(0);
    const file = path.join(dir, 'sub/fence_xvm.key');
    const key = fs.readFileSync(file);
    expect(key.length).toBe(4096);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const fingerprint = createHash('sha256').update(key).digest('hex').slice(0, 16);
    expect(run.stdout).toBe(
      `Created sub/fence_xvm.key: 4096 random bytes, mode 0600\nFingerprint: ${fingerprint}\n`,
    );
    expect(run.stdout).not.toContain(key.subarray(0, 8).toString('hex'));
  });

  test('refuses to overwrite without --force; --force replaces; --json', async () => {
    fs.writeFileSync(path.join(dir, 'k'), 'old');
    const refused = await virtfenceInProcess(['keygen', 'k'], dir);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(
      'virtfence keygen: k already exists; use --force to replace it (every peer then needs the new key)\n',
    );
    expect(fs.readFileSync(path.join(dir, 'k'), 'utf8')).toBe('old');

    const forced = await virtfenceInProcess(
      ['keygen', 'k', '--force', '--size', '512', '--json'],
      dir,
    );
    expect(forced.code).toBe(0);
    const key = fs.readFileSync(path.join(dir, 'k'));
    expect(JSON.parse(forced.stdout)).toEqual({
      file: 'k',
      bytes: 512,
      fingerprint: createHash('sha256').update(key).digest('hex').slice(0, 16),
      replaced: true,
    });
    expect(fs.readdirSync(dir)).toEqual(['k']);
  });

  test('usage errors are one line with exit code 2', async () => {
    const run = await virtfenceInProcess(['keygen', '--size', '8'], dir);
    expect(run.code).toBe(2);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/^virtfence keygen: .*greater than or equal to 16/);
    const json = await virtfenceInProcess(['keygen', '--bogus', '--json'], dir);
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout)).toEqual({
      error: { message: 'Nonexistent flag: --bogus', exitCode: 2 },
    });
  });
});

describe('virtfence config check', () => {
  test('a valid file with its key: exit 0 and a summary', async () => {
    await virtfenceInProcess(['keygen', 'fence.key'], dir);
    const conf = `fence_virtd { listener = "multicast,tcp"; backend = "libvirt"; }
listeners { multicast { key_file = "${dir}/fence.key"; } tcp { key_file = "${dir}/fence.key"; } }
`;
    fs.writeFileSync(path.join(dir, 'ok.conf'), conf, { mode: 0o600 });
    const run = await virtfenceInProcess(['config', 'check', 'ok.conf'], dir);
    expect(run.stdout).toBe(
      'ok.conf: valid (0 errors, 0 warnings); listeners: multicast, tcp; backend: libvirt\n',
    );
    expect(run.code).toBe(0);
  });

  test('every problem with its line; exit 1; JSON lists the same issues', async () => {
    fs.writeFileSync(
      path.join(dir, 'bad.conf'),
      'fence_virtd {\n\tlistener = "multicast";\n\tbackend = "libvirt";\n\tlistner = "x";\n}\n' +
        'listeners {\n\tmulticast {\n\t\thash = "md5";\n\t\tport = "0";\n\t}\n}\n',
      { mode: 0o600 },
    );
    const run = await virtfenceInProcess(['config', 'check', 'bad.conf'], dir);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe(
      'bad.conf:4: warning: unknown key fence_virtd/listner\n' +
        "bad.conf:8: error: listeners/multicast/hash: 'md5' is not one of none, sha1, sha256, sha512\n" +
        'bad.conf:9: error: listeners/multicast/port: port 0 is out of range (1-65535)\n' +
        'bad.conf: invalid (2 errors, 1 warning)\n',
    );
    const json = await virtfenceInProcess(['config', 'check', 'bad.conf', '--json'], dir);
    expect(json.code).toBe(1);
    const result = JSON.parse(json.stdout) as { valid: boolean; issues: { line: number }[] };
    expect(result.valid).toBe(false);
    expect(result.issues.map((i) => i.line)).toEqual([4, 8, 9]);
  });

  test('syntax errors give line and column; a missing file is a one-line error', async () => {
    fs.writeFileSync(path.join(dir, 'crlf.conf'), 'fence_virtd {\r\n}\r\n');
    const run = await virtfenceInProcess(['config', 'check', 'crlf.conf'], dir);
    expect(run.code).toBe(1);
    expect(run.stdout.split('\n')[0]).toMatch(
      /^crlf\.conf:2:1: error: expected '=' or '\{' after '\\r'.*CR is not whitespace/,
    );
    const missing = await virtfenceInProcess(['config', 'check', 'missing.conf'], dir);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^virtfence config check: cannot read missing\.conf: ENOENT/);
  });
});

describe('virtfence config convert', () => {
  const CLUSTER_CONF = `<?xml version="1.0"?>
<cluster name="vc" config_version="1">
  <fence_xvmd key_file="KEY" multicast_address="225.0.0.14" port="1231" family="ipv4"
              auth="sha512" hash="sha256" use_uuid="1"/>
</cluster>
`;

  test('cluster.conf: the written file is accepted by our loader and by the C daemon', async () => {
    const key = path.join(dir, 'absent.key');
    fs.writeFileSync(path.join(dir, 'cluster.conf'), CLUSTER_CONF.replace('KEY', key));
    const run = await virtfenceInProcess(
      ['config', 'convert', 'cluster.conf', '-o', 'fence_virt.conf'],
      dir,
    );
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('  mapped (6):\n');
    expect(run.stdout).toContain('    use_uuid = "1" (no equivalent in fence_virtd)\n');
    const out = path.join(dir, 'fence_virt.conf');
    expect(fs.statSync(out).mode & 0o777).toBe(0o600);
    const { config, warnings } = loadConfigFile(out);
    expect(warnings).toEqual([]);
    expect(config.listeners.multicast).toMatchObject({ address: '225.0.0.14', port: 1231 });
    const messages = cDaemonMessages(dir, out);
    expect(messages).not.toMatch(/Failed to parse|syntax error|Could not find/);
    expect(messages).toContain(`stat failed on file '${key}'`);

    const again = await virtfenceInProcess(
      ['config', 'convert', 'cluster.conf', '-o', 'fence_virt.conf'],
      dir,
    );
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('fence_virt.conf already exists; use --force');
  });

  test('fence_virt.conf to stdout, report to stderr; --json carries both', async () => {
    fs.writeFileSync(
      path.join(dir, 'old.conf'),
      'fence_virtd { listener = "multicast"; backend = "libvirt"; wait_for_backend = "1"; }\n' +
        'fence_virtd { listener = "multicast"; backend = "libvirt"; }\n',
    );
    const run = await virtfenceInProcess(['config', 'convert', 'old.conf'], dir);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(
      'fence_virtd {\n\tlistener = "multicast";\n\tbackend = "libvirt";\n}\n\n',
    );
    expect(run.stderr).toContain('duplicate block fence_virtd on line 1 is ignored (line 2 wins)');
    const json = await virtfenceInProcess(['config', 'convert', 'old.conf', '--json'], dir);
    const result = JSON.parse(json.stdout) as { config: string; kept: unknown[]; format: string };
    expect(result.format).toBe('fence_virt.conf');
    expect(result.config).toBe(run.stdout);
    expect(result.kept).toHaveLength(2);
  });

  test('an invalid source is refused with the reason', async () => {
    fs.writeFileSync(path.join(dir, 'x.conf'), 'fence_virtd { backend = "libvirt"; }\n');
    const run = await virtfenceInProcess(['config', 'convert', 'x.conf'], dir);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /^virtfence config convert: cannot convert x\.conf: .*Failed to determine listener/,
    );
  });
});

describe('virtfence config init', () => {
  test('piped answers write the same file as the real fence_virtd -c', () => {
    const answers = 'y\n\n\n\n\n\n\n\n\ny\n';
    const c = spawnSync(C_DAEMON, ['-c', '-f', path.join(dir, 'c.conf')], {
      input: answers,
      encoding: 'utf8',
      timeout: 20000,
    });
    expect(c.status).toBe(0);
    const ours = virtfence(['config', 'init', '--file', 'ours.conf'], { cwd: dir, input: answers });
    expect(ours.code).toBe(0);
    expect(ours.stdout).toContain('Replace ours.conf with the above [y/N]? ');
    expect(fs.readFileSync(path.join(dir, 'ours.conf'), 'utf8')).toBe(
      fs.readFileSync(path.join(dir, 'c.conf'), 'utf8'),
    );
  });

  test('declining exits 1', () => {
    const run = virtfence(['config', 'init', '--file', 'n.conf'], { cwd: dir, input: 'n\n' });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('Parsing of n.conf failed.\nStart from scratch [y/N]? ');
    expect(fs.existsSync(path.join(dir, 'n.conf'))).toBe(false);
  });
});

describe('help', () => {
  test('every command documents examples', async () => {
    for (const command of [
      ['keygen'],
      ['config', 'check'],
      ['config', 'convert'],
      ['config', 'init'],
    ]) {
      const run = await virtfenceInProcess([...command, '--help'], dir);
      expect(run.code).toBe(0);
      expect(run.stdout).toContain('EXAMPLES');
      expect(run.stdout).toContain(`$ virtfence ${command.join(' ')}`);
    }
  });
});
