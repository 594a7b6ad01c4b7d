/**
 * The shipped unit: systemd's own analyser accepts it and rates its exposure (the sandbox itself
 * is exercised by the install test, which runs the daemon inside it).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ROOT } from '../helpers/daemon.js';

const UNIT = path.join(ROOT, 'packaging/fence_virtd.service');

describe('packaging/fence_virtd.service', () => {
  it('passes systemd-analyze verify', () => {
    const r = spawnSync('systemd-analyze', ['verify', UNIT], { encoding: 'utf8' });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
  });

  it('is rated OK (exposure at most 2.5 of 10) by systemd-analyze security', () => {
    const r = spawnSync('systemd-analyze', ['security', '--offline=true', UNIT], {
      encoding: 'utf8',
    });
    const level = /Overall exposure level for fence_virtd\.service: ([\d.]+) (\w+)/.exec(r.stdout);
    expect(level).not.toBeNull();
    expect(Number(level![1])).toBeLessThanOrEqual(2.5);
    expect(level![2]).toBe('OK');
    // The directives the daemon was checked against are set.
    for (const directive of ['NoNewPrivileges=', 'PrivateTmp=', 'ProtectHome=', 'ProtectSystem=']) {
      const line = r.stdout.split('\n').find((l) => l.includes(directive));
      expect({ directive, line: line?.trim().startsWith('✓') }).toEqual({ directive, line: true });
    }
  });
});
