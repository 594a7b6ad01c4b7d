/** The `hosts` key of the routed backends (amqp and cpg blocks): one declaration, both blocks. */
import { parseAmqpConfig } from '../../src/amqp/config.js';
import { parseCpgConfig } from '../../src/backends/cpg/config.js';

const amqp = { url: 'amqp://broker:5672', key_file: '/k', host_id: 'hv1' };

describe('hosts key', () => {
  it('is absent by default', () => {
    const a = parseAmqpConfig(amqp);
    expect(a.ok && a.config.hosts).toBeUndefined();
    const c = parseCpgConfig({ uri: 'x' }, { hostId: 'hv1' });
    expect(c.ok && c.config.hosts).toBeUndefined();
  });

  it('reads a comma-separated list, trimmed, without repeats', () => {
    const a = parseAmqpConfig({ ...amqp, hosts: ' hv1, hv2 ,hv3,hv2,' });
    expect(a.ok && a.config.hosts).toEqual(['hv1', 'hv2', 'hv3']);
    const c = parseCpgConfig({ uri: 'x', hosts: 'node-a,node-b' }, { hostId: 'node-a' });
    expect(c.ok && c.config.hosts).toEqual(['node-a', 'node-b']);
  });

  it.each([
    [',', /names no host/],
    ['hv1,bad host', /'bad host' is not a host id/],
  ])('refuses %j naming the key', (hosts, message) => {
    for (const r of [
      parseAmqpConfig({ ...amqp, hosts }),
      parseCpgConfig({ uri: 'x', hosts }, { hostId: 'hv1' }),
    ]) {
      expect(r.ok).toBe(false);
      if (r.ok) continue;
      const p = r.problems.find((x) => x.key === 'hosts');
      expect(p?.message).toMatch(message);
    }
  });
});
