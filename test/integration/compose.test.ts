/**
 * compose.yaml and the Dockerfile, checked without a container engine: Debian's
 * docker-compose validates the file, our own config loader and amqp parser read every host's
 * fence_virt.conf, and libvirt's test driver opens every host's node XML.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAmqpConfig } from '../../src/amqp/config.js';
import { loadConfigFile } from '../../src/config/load.js';
import { blockValues } from '../../src/config/lookup.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HOSTS = ['host1', 'host2', 'host3'];

function which(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

const haveCompose = which('docker-compose');
if (!haveCompose) console.warn('compose validation skipped: docker-compose is not installed');
const haveVirsh = which('virsh');
if (!haveVirsh) console.warn('node XML check skipped: virsh is not installed');

describe('compose.yaml', () => {
  (haveCompose ? it : it.skip)('is valid for docker-compose and has the expected services', () => {
    const run = spawnSync('docker-compose', ['-f', 'compose.yaml', 'config', '--services'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout.trim().split('\n').sort()).toEqual([
      'broker',
      'guest',
      'host1',
      'host2',
      'host3',
      'keygen',
    ]);
    const full = execFileSync('docker-compose', ['-f', 'compose.yaml', 'config'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    // The hosts run our daemon in the foreground on the mounted config.
    expect(
      full.match(/- bin\/fence_virtd\n\s+- -F\n\s+- -f\n\s+- \/etc\/fence_virt.conf/g),
    ).toHaveLength(3);
    expect(full).toContain('enabled_plugins:/etc/rabbitmq/enabled_plugins:ro');
  });

  it('mounts files that exist', () => {
    const text = readFileSync(join(ROOT, 'compose.yaml'), 'utf8');
    const sources = [...text.matchAll(/- \.\/([^:\s]+):/g)].map((m) => m[1] as string);
    expect(sources.length).toBe(3 + 3 * 3);
    for (const source of sources) expect(existsSync(join(ROOT, source))).toBe(true);
    expect(readFileSync(join(ROOT, 'broker/rabbitmq/docker/enabled_plugins'), 'utf8')).toContain(
      'rabbitmq_amqp1_0',
    );
  });

  it.each(HOSTS)('%s: fence_virt.conf loads and its amqp block is valid', (host) => {
    const { config } = loadConfigFile(join(ROOT, `broker/compose/${host}.conf`));
    expect(config.fenceVirtd.backend).toBe('amqp');
    expect(config.fenceVirtd.listeners).toEqual(['multicast']);
    const parsed = parseAmqpConfig(blockValues(config.tree, 'backends/amqp'));
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
    expect(parsed.unknownKeys).toEqual([]);
    expect(parsed.config).toMatchObject({
      hostId: host,
      cluster: 'demo',
      profile: 'rabbitmq3',
      urls: ['amqp://broker:5672'],
      keyFile: '/etc/cluster/virtfence-cluster.key',
      passwordFile: '/etc/virtfence/amqp.password',
      uris: ['test:///etc/virtfence/node.xml'],
    });
    const compose = readFileSync(join(ROOT, 'compose.yaml'), 'utf8');
    expect(compose).toContain(`./broker/compose/${host}.conf:/etc/fence_virt.conf:ro`);
    expect(compose).toContain(`./broker/compose/${host}-node.xml:/etc/virtfence/node.xml:ro`);
  });

  (haveVirsh ? it.each(HOSTS) : it.skip.each(HOSTS))(
    '%s: the libvirt test driver opens its node XML',
    (host) => {
      const uri = `test://${join(ROOT, `broker/compose/${host}-node.xml`)}`;
      const running = execFileSync('virsh', ['-c', uri, 'list', '--name'], { encoding: 'utf8' });
      const all = execFileSync('virsh', ['-c', uri, 'list', '--all', '--name'], {
        encoding: 'utf8',
      });
      expect(running.trim().split('\n')).toEqual([`${host}-vm1`]);
      expect(all.trim().split('\n').sort()).toEqual([`${host}-vm1`, `${host}-vm2`]);
    },
  );
});

describe('Dockerfile', () => {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');

  it('copies only files that exist in the repository', () => {
    const copies = [...text.matchAll(/^COPY (?!--from)(.+)$/gm)].map((m) =>
      (m[1] as string).split(/\s+/),
    );
    expect(copies.length).toBeGreaterThan(0);
    for (const parts of copies) {
      for (const source of parts.slice(0, -1)) expect(existsSync(join(ROOT, source))).toBe(true);
    }
  });

  it('builds with npm and starts the daemon in the foreground', () => {
    expect(text).toMatch(/RUN npm ci/);
    expect(text).toMatch(/npm run build/);
    expect(text).toContain('CMD ["bin/fence_virtd", "-F", "-f", "/etc/fence_virt.conf"]');
  });
});
