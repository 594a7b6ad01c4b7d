/**
 * `virtfence install guest|host` → a fence through the real Pacemaker fencer
 * (`pacemaker-fenced -s` + `stonith_admin`) → `virtfence uninstall`, in a private mount
 * namespace whose /usr/sbin, /etc and /var/lib are overlays (the machine is not touched). The
 * fencer runs with a PATH that holds no node; a copied launcher still runs.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, tempDir, type TempDir } from '../helpers/daemon.js';

let dir: TempDir;
const results: Record<string, { rc: number; out: string }> = {};

beforeAll(() => {
  dir = tempDir('virtfence-install-');
  const run = spawnSync(
    'unshare',
    [
      '-m',
      '--propagation',
      'private',
      'bash',
      path.join(ROOT, 'test/scripts/install-pacemaker.sh'),
      ROOT,
      dir.path,
    ],
    { encoding: 'utf8', timeout: 90_000 },
  );
  if (run.status !== 0) throw new Error(`install-pacemaker.sh: ${run.status} ${run.stderr}`);
  const resultDir = path.join(dir.path, 'results');
  for (const f of fs.readdirSync(resultDir)) {
    if (!f.endsWith('.rc')) continue;
    const name = f.slice(0, -3);
    results[name] = {
      rc: Number(fs.readFileSync(path.join(resultDir, f), 'utf8')),
      out: fs.readFileSync(path.join(resultDir, `${name}.out`), 'utf8'),
    };
  }
  results.daemon = { rc: 0, out: fs.readFileSync(path.join(resultDir, 'daemon.log'), 'utf8') };
  results.notify = { rc: 0, out: fs.readFileSync(path.join(resultDir, 'notify.log'), 'utf8') };
}, 100_000);
afterAll(() => dir?.remove());

const OURS = 'it asks fence_virtd on the host to act on a guest';
const C_TEXT = 'fence_xvm is an I/O Fencing agent which can be used with virtual machines.';
const step = (name: string): { rc: number; out: string } => {
  const r = results[name];
  if (!r) throw new Error(`step ${name} did not run`);
  return r;
};

describe('install → fence through the Pacemaker fencer → uninstall', () => {
  it('diverts the C programs with dpkg-divert --rename (fence_xvm as the symlink it is) and writes our launchers', () => {
    expect(step('before-ls').out).toMatch(/\/usr\/sbin\/fence_xvm -> fence_virt/);
    expect(step('install-guest').rc).toBe(0);
    expect(step('install-host').rc).toBe(0);
    const ls = step('after-ls').out;
    expect(ls).toMatch(/\/usr\/sbin\/fence_xvm\.distrib -> fence_virt/);
    expect(ls).toMatch(/^-rwxr-xr-x .* \/usr\/sbin\/fence_virt\.distrib$/m);
    expect(ls).toMatch(/^-rwxr-xr-x .* \/usr\/sbin\/fence_virtd\.distrib$/m);
    expect(ls).toMatch(/^-rwxr-xr-x .* \/usr\/sbin\/fence_xvm$/m); // a file now, not the link
    expect(step('diversions').out.trim().split('\n').sort()).toEqual([
      'local diversion of /usr/sbin/fence_virt to /usr/sbin/fence_virt.distrib',
      'local diversion of /usr/sbin/fence_virtd to /usr/sbin/fence_virtd.distrib',
      'local diversion of /usr/sbin/fence_xvm to /usr/sbin/fence_xvm.distrib',
    ]);
    expect(step('unit').out).toMatch(/^Type=notify$/m);
    expect(step('unit').out).toMatch(/^ExecStart=\/usr\/sbin\/fence_virtd -F /m);
  });

  it('a copied launcher runs without node on PATH (absolute Node and dist paths)', () => {
    expect(step('copied').rc).toBe(0);
    expect(step('copied').out).toContain(OURS);
  });

  it("the daemon runs as the unit starts it, inside the unit's sandbox rebuilt by hand", () => {
    // ExecStart from the installed unit; ProtectSystem=strict, PrivateTmp, ProtectHome,
    // PrivateDevices, NoNewPrivileges, no capabilities, RuntimeDirectory for the pid file.
    const view = step('sandbox-view').out;
    expect(view).toContain(
      '/usr/sbin/fence_virtd -F -f /etc/fence_virt.conf -p /run/fence_virtd/fence_virtd.pid',
    );
    expect(view).toMatch(/^fence_virtd\.pid$/m);
    expect(view).toMatch(/^NoNewPrivs:\s+1$/m);
    expect(view).toMatch(/^CapBnd:\s+0{16}$/m);
    expect(view).toMatch(/^CapEff:\s+0{16}$/m);
    expect(view).toMatch(/^\/ ro,/m);
    expect(view).toMatch(/^\/home ro,/m);
    expect(view.match(/^(full|null|random|tty|urandom|zero)$/gm)).toHaveLength(6);
    // ReadWritePaths lets start-up correct a loose key file mode, as C does.
    expect(step('key-mode').out.trim()).toBe('600');
    // Type=notify from inside the sandbox: READY=1 once serving, STOPPING=1 at the end.
    expect(step('notify').out.split('\n').filter(Boolean)).toEqual([
      'STATUS=Reading the configuration',
      'STATUS=Starting backend libvirt',
      'STATUS=Starting listener multicast',
      'READY=1 STATUS=Serving: listeners multicast, backend libvirt',
      'STOPPING=1 STATUS=Stopping on SIGTERM',
    ]);
  });

  it('the fencer runs ours: metadata, validate-all, and a fence that powers the VM off', () => {
    expect(step('metadata').rc).toBe(0);
    expect(step('metadata').out).toContain(OURS);
    expect(step('validate').rc).toBe(0);
    expect(step('validate').out).toContain('Validation of fence_xvm succeeded');
    expect(step('validate-bad').rc).not.toBe(0);
    expect(step('validate-bad').out).toContain('Unsupported auth type: md5');
    expect(step('register').rc).toBe(0);
    expect(step('status-before')).toEqual({ rc: 0, out: 'Status: ON\n' });
    expect(step('fence-off').rc).toBe(0);
    expect(step('status-after')).toEqual({ rc: 2, out: 'Status: OFF\n' });
    // The daemon (started through its /usr/sbin launcher) executed the fencer's off.
    const requests = step('daemon')
      .out.split('\n')
      .filter((l) => l.includes('"event":"request"'))
      .map((l) => JSON.parse(l) as { action: string; target: string; result: string });
    expect(requests).toContainEqual(
      expect.objectContaining({ action: 'off', target: 'test', result: 'success' }),
    );
  });

  it('uninstall restores the C programs and removes the unit', () => {
    expect(step('uninstall').rc).toBe(0);
    expect(step('restored-ls').out).toMatch(/\/usr\/sbin\/fence_xvm -> fence_virt/);
    const cLine = (out: string): string | undefined =>
      out.split('\n').find((l) => l.endsWith(' /usr/sbin/fence_virt'));
    expect(cLine(step('restored-ls').out)).toBe(cLine(step('before-ls').out));
    expect(step('restored-diversions').out).toBe('');
    expect(step('restored-metadata').out).toContain(C_TEXT);
    expect(step('restored-unit').rc).not.toBe(0);
  });
});
