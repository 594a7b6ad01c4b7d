/**
 * Metadata and Pacemaker's own tooling: our agents' and the C agents' `-o metadata` validate with
 * xmllint against schemas/fence-agent-metadata.rng; stonith_admin and crm_resource read our agents'
 * metadata and run their validate-all. Pacemaker looks for agents in /usr/sbin only, so ours are put
 * there with a bind mount inside a private mount namespace (`unshare -m`): nothing outside this
 * test's own commands ever sees it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';
import { C_VIRT, C_XVM, ROOT, tempDir, type TempDir } from '../helpers/daemon.js';

const SCHEMA = path.join(ROOT, 'schemas/fence-agent-metadata.rng');
const OURS = {
  fence_xvm: path.join(ROOT, 'bin/fence_xvm'),
  fence_virt: path.join(ROOT, 'bin/fence_virt'),
};

function xmllint(xml: string): { code: number | null; stderr: string } {
  const run = spawnSync('xmllint', ['--noout', '--relaxng', SCHEMA, '-'], {
    input: xml,
    encoding: 'utf8',
  });
  return { code: run.status, stderr: run.stderr };
}

function metadataOf(binary: string): string {
  return execFileSync(binary, ['-o', 'metadata'], { encoding: 'utf8' });
}

describe('metadata validates against the FenceAgentAPI RELAX NG schema', () => {
  it.each([
    ['ours', 'fence_xvm', OURS.fence_xvm],
    ['ours', 'fence_virt', OURS.fence_virt],
    ['C', 'fence_xvm', C_XVM],
    ['C', 'fence_virt', C_VIRT],
  ])('%s %s', (_who, _name, binary) => {
    expect(xmllint(metadataOf(binary))).toEqual({ code: 0, stderr: '- validates\n' });
  });

  it('rejects documents that break the structure', () => {
    const good = metadataOf(OURS.fence_xvm);
    const broken = [
      good.replace('unique="0"', 'unique="2"'),
      good.replace(/<getopt mixed="-d" \/>/, ''),
      good.replace('<action name="list" />', '<action name="dance" />'),
      good.replace(/<actions>[\s\S]*<\/actions>/, ''),
      good.replace('<content type="boolean" />', '<content type="float" />'),
    ];
    for (const xml of broken) expect(xmllint(xml).code).not.toBe(0);
  });
});

/**
 * Runs a shell script in a private mount namespace where /usr/sbin/fence_virt (which fence_xvm
 * links to on Debian) is a wrapper that runs our agent of the name it was invoked under.
 */
function withOurAgents(
  dir: TempDir,
  script: string,
): { code: number | null; stdout: string; stderr: string } {
  const wrapper = dir.file(
    'fence_agent.sh',
    `#!/bin/sh\nexec ${process.execPath} ${path.join(ROOT, 'bin')}/"\${0##*/}" "$@"\n`,
    0o755,
  );
  const run = spawnSync(
    'unshare',
    ['-m', 'sh', '-c', `mount --bind ${wrapper} /usr/sbin/fence_virt && ${script}`],
    { encoding: 'utf8', timeout: 30_000 },
  );
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

function namespacesWork(): boolean {
  return spawnSync('unshare', ['-m', 'true']).status === 0;
}

describe('Pacemaker tooling with our agents in /usr/sbin (no cluster running)', () => {
  let dir: TempDir;
  const run = namespacesWork() ? it : it.skip;
  beforeAll(() => {
    dir = tempDir('vf-agent-pcmk-');
  });
  afterAll(() => dir.remove());

  run('stonith_admin --metadata returns our document, which still validates', () => {
    for (const name of Object.keys(OURS)) {
      const out = withOurAgents(dir, `stonith_admin --metadata --agent ${name}`);
      expect(out.code).toBe(0);
      expect(out.stdout).toContain(`<resource-agent name="${name}"`);
      expect(out.stdout).toContain('asks fence_virtd on the host'); // our wording, not C's
      expect(xmllint(out.stdout).code).toBe(0);
    }
  });

  run('crm_resource --show-metadata lists the same parameters as C', () => {
    const params = (xml: string): string[] =>
      [...xml.matchAll(/<parameter name="([^"]+)"/g)].map((m) => m[1]!);
    const ours = withOurAgents(dir, 'crm_resource --show-metadata stonith:fence_xvm');
    const c = spawnSync('crm_resource', ['--show-metadata', 'stonith:fence_xvm'], {
      encoding: 'utf8',
    });
    expect(ours.code).toBe(0);
    expect(params(ours.stdout)).toEqual(params(c.stdout));
    expect(params(ours.stdout)).toContain('plug');
  });

  run('stonith_admin --validate runs our validate-all, with the same verdicts as C', () => {
    const cases = [
      ['--option', 'port=vm1', '--option', 'ipport=1229'],
      ['--option', 'port=vm1', '--option', 'ipport=0'],
      ['--option', 'ipport=1229'],
      ['--option', 'port=vm1', '--option', 'hash=md5'],
    ];
    for (const options of cases) {
      const args = ['--validate', '--agent', 'fence_xvm', ...options];
      const ours = withOurAgents(dir, `stonith_admin ${args.join(' ')}`);
      const c = spawnSync('stonith_admin', args, { encoding: 'utf8', timeout: 30_000 });
      expect({ code: ours.code, stdout: ours.stdout }).toEqual({
        code: c.status,
        stdout: c.stdout,
      });
    }
  });

  it('crm_resource --validate cannot run stonith agents without a cluster (documented limit)', () => {
    const c = spawnSync(
      'crm_resource',
      ['--validate', '--class', 'stonith', '--agent', 'fence_xvm'],
      {
        encoding: 'utf8',
      },
    );
    expect(c.stdout + c.stderr).toContain(
      'Manual execution of the stonith standard is unsupported',
    );
  });
});
