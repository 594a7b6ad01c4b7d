/**
 * `virtfence install host` refuses an installation the hardened unit could not run: the unit's
 * PrivateTmp and ProtectHome hide /tmp, /var/tmp, /home, /root and /run/user from the daemon.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { hiddenByUnit, hiddenFromUnit, install, InstallError } from '../../src/cli/installer.js';

const UNIT = fs.readFileSync(
  path.join(path.dirname(fileURLToPath(import.meta.url)), '../../packaging/fence_virtd.service'),
  'utf8',
);
const HIDDEN = hiddenByUnit(UNIT);

describe('hiddenFromUnit', () => {
  it.each([
    ['/tmp/virtfence', '/tmp'],
    ['/var/tmp/x/dist', '/var/tmp'],
    ['/home/admin/virtfence', '/home'],
    ['/root/.nvm/versions/node/v20/bin/node', '/root'],
    ['/run/user/0/x', '/run/user'],
    ['/root', '/root'],
  ])('%s is hidden by %s', (file, dir) => expect(hiddenFromUnit(file, HIDDEN)).toBe(dir));

  it.each(['/opt/virtfence', '/usr/bin/node', '/usr/local/lib/virtfence', '/tmpfoo/x', '/rooted'])(
    '%s is visible',
    (file) => expect(hiddenFromUnit(file, HIDDEN)).toBeUndefined(),
  );
});

describe('hiddenByUnit', () => {
  it('reads PrivateTmp and ProtectHome from the unit', () => {
    expect(HIDDEN).toEqual(['/tmp', '/var/tmp', '/home', '/root', '/run/user']);
    expect(hiddenByUnit('[Service]\nPrivateTmp=no\nProtectHome=read-only\n')).toEqual([]);
    expect(hiddenByUnit('[Service]\nProtectHome=tmpfs\n')).toEqual(['/home', '/root', '/run/user']);
  });
});

describe('install host from a hidden folder', () => {
  it('refuses before touching anything, naming the folder and why', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vf-install-'));
    try {
      fs.mkdirSync(path.join(root, 'dist/daemon'), { recursive: true });
      fs.writeFileSync(path.join(root, 'dist/daemon/main.js'), '');
      fs.mkdirSync(path.join(root, 'packaging'));
      fs.writeFileSync(path.join(root, 'packaging/fence_virtd.service'), UNIT);
      const stateFile = path.join(root, 'state.json');
      const attempt = () =>
        install({
          role: 'host',
          root,
          dryRun: true,
          paths: {
            sbin: path.join(root, 'sbin'),
            unitDir: path.join(root, 'units'),
            etc: path.join(root, 'etc'),
            logrotateDir: path.join(root, 'logrotate'),
            stateFile,
          },
        });
      expect(attempt).toThrow(InstallError);
      expect(attempt).toThrow(/is under \/tmp, which fence_virtd\.service hides/);
      expect(fs.existsSync(stateFile)).toBe(false);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
