/**
 * Broker URLs → rhea connection options (src/amqp/connection.ts): host, port, transport, SNI and
 * credentials, for names, IPv4 and bracketed IPv6 literals. Pure: no connection is made.
 */
import { connectionOptions, safeUrl, type ConnectionSettings } from '../../src/amqp/connection.js';

function settings(url: string, extra: Partial<ConnectionSettings> = {}): ConnectionSettings {
  return {
    url,
    containerId: 'c1',
    username: undefined,
    password: undefined,
    tls: false,
    ca: undefined,
    idleTimeoutMs: 5000,
    hostname: undefined,
    ...extra,
  };
}

const pick = (url: string, extra: Partial<ConnectionSettings> = {}) => {
  const o = connectionOptions(settings(url, extra)) as unknown as Record<string, unknown>;
  return {
    host: o.host,
    port: o.port,
    transport: o.transport,
    servername: o.servername,
    username: o.username,
    password: o.password,
  };
};

describe('connectionOptions', () => {
  it.each([
    ['amqp://broker.example:5673', { host: 'broker.example', port: 5673, transport: 'tcp' }],
    ['amqp://10.0.0.5', { host: '10.0.0.5', port: 5672, transport: 'tcp' }],
    ['amqp://[::1]:5680', { host: '::1', port: 5680, transport: 'tcp' }],
    ['amqp://[fd00::5]', { host: 'fd00::5', port: 5672, transport: 'tcp' }],
    ['amqps://[fd00::5]', { host: 'fd00::5', port: 5671, transport: 'tls', servername: '' }],
    ['amqps://10.0.0.5', { host: '10.0.0.5', port: 5671, transport: 'tls', servername: '' }],
    [
      'amqps://b.example',
      { host: 'b.example', port: 5671, transport: 'tls', servername: 'b.example' },
    ],
  ])('%s', (url, expected) => {
    expect(pick(url)).toEqual({
      servername: undefined,
      username: undefined,
      password: undefined,
      ...expected,
    });
  });

  it('takes credentials from the URL, decoded, unless given apart', () => {
    expect(pick('amqp://h%40st:p%3Ass@[::1]:5672')).toMatchObject({
      host: '::1',
      username: 'h@st',
      password: 'p:ss',
    });
    expect(pick('amqp://a:b@[::1]:5672', { username: 'user', password: 'pw' })).toMatchObject({
      username: 'user',
      password: 'pw',
    });
  });

  it('never logs the password: safeUrl drops it, IPv6 brackets kept', () => {
    expect(safeUrl('amqp://u:secret@[fd00::5]:5672')).toBe('amqp://u@[fd00::5]:5672');
  });
});
