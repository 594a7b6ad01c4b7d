/**
 * Agent conformance: OUR fence_xvm / fence_virt and the REAL /usr/sbin ones run the same table
 * side by side, offline and against a real fence_virtd (the C one, and ours as a drop-in), with
 * multicast and tcp listeners on libvirt's in-process test driver. Outputs are compared after
 * normalising only the program name, the descriptions we wrote in our own words, C's hash-mismatch
 * diagnostics and the errno text after a failed connect (C prints a clobbered errno there).
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  C_VIRT,
  C_XVM,
  ROOT,
  runAgent,
  tempDir,
  type AgentResult,
  type TempDir,
} from '../helpers/daemon.js';
import { agentArgs, type AgentArgs } from '../helpers/agent-args.js';
import { TEST_DOMAIN, startFenceVirtd, type CDaemon } from '../helpers/c-daemon.js';

const OUR_XVM = path.join(ROOT, 'bin/fence_xvm');
const OUR_VIRT = path.join(ROOT, 'bin/fence_virt');
const AGENTS = {
  fence_xvm: { c: C_XVM, ours: OUR_XVM },
  fence_virt: { c: C_VIRT, ours: OUR_VIRT },
} as const;
type AgentName = keyof typeof AGENTS;

/** Program names and our own-words descriptions out; structure (labels, order, attributes) stays. */
export function normalise(text: string): string {
  return text
    .replace(/\/(?:usr\/sbin|[^\s:']*\/bin)\/(fence_xvm|fence_virt)/g, '$1')
    .replace(/<longdesc>[\s\S]*?<\/longdesc>/g, '<longdesc/>')
    .replace(/<shortdesc lang="en">.*<\/shortdesc>/g, '<shortdesc/>')
    .split('\n')
    .filter((line) => !/^ {24}/.test(line)) // wrapped description continuation
    .filter((line) => !/^(Hash mismatch:|[CHR] = )/.test(line))
    .map((line) => (/^ {2}\S/.test(line) ? line.slice(0, 22).trimEnd() : line))
    .map((line) =>
      line
        .replace(
          /^(Unable to connect to fence_virtd host \S+|vmchannel connect:) .*$/,
          '$1 <errno>',
        )
        .replace(/^(Error reading challenge response:) .*(Invalid response)/, '$1 <errno>$2'),
    )
    .join('\n');
}

interface Pair {
  c: AgentResult;
  ours: AgentResult;
}

async function runBoth(agent: AgentName, args: string[], stdin?: string): Promise<Pair> {
  const options = { timeoutMs: 30_000, ...(stdin !== undefined ? { stdin } : {}) };
  const c = await runAgent(AGENTS[agent].c, args, options);
  const ours = await runAgent(AGENTS[agent].ours, args, options);
  return { c, ours };
}

function expectSame({ c, ours }: Pair): void {
  expect({
    code: ours.code,
    stdout: normalise(ours.stdout),
    stderr: normalise(ours.stderr),
  }).toEqual({
    code: c.code,
    stdout: normalise(c.stdout),
    stderr: normalise(c.stderr),
  });
}

beforeAll(() => {
  if (!fs.existsSync(path.join(ROOT, 'dist/agents/main.js'))) {
    throw new Error('dist/agents/main.js is missing: build first (npm run build:ts)');
  }
});

describe('offline: options, help, version, metadata', () => {
  const xvmCases: string[][] = [
    ['-h'],
    ['-?'],
    ['-V'],
    ['-p', '0'],
    ['-p', '65536', '-n', 'x'],
    ['-I', '-p', '0'],
    ['-M'],
    ['-M', 'x', '-n', 'a'],
    ['-o', 'status'],
    ['-n', 'a', '-H', 'b'],
    ['-n', ''],
    ['-o', 'status', '-n', 'x'.repeat(64)],
    ['-t', 'abc', '-n', 'x'],
    ['-t', '2147483648', '-n', 'x', '-o', 'validate-all'],
    ['-r', '0', '-w', '-1', '-o', 'bogus'],
    ['-c', 'md5', '-C', 'md4'],
    ['-k', '/nonexistent/key', '-n', 'x', '-o', 'validate-all'],
    ['-i', 'foo', '-o', 'list'],
    ['-a', 'foo', '-n', 'x', '-o', 'validate-all'],
    ['-o', 'validate-all', '-n', 'x'],
    ['-o', 'VALIDATE-ALL', '-n', 'x', '-t', '0x10', '-w', '010', '-p', ' 5'],
    ['-o', 'validate-all'],
    ['-u1'],
    ['-V', '-p', '0'],
    ['-h', '-p', '0'],
    ['--', '-o', 'validate-all'],
    ['operand', '-o', 'validate-all', '-n', 'x'],
    ['-o', 'metadata'],
  ];
  it.each(xvmCases)('fence_xvm %p', async (...args) => {
    expectSame(await runBoth('fence_xvm', args));
  });

  const virtCases: string[][] = [
    ['-h'],
    ['-o', 'metadata'],
    ['-S1', '-n', 'x', '-o', 'validate-all'],
    ['-Sabc', '-n', 'x', '-o', 'validate-all'],
    ['-S', '-n', 'x', '-o', 'validate-all'],
    ['-i', 'ipv4'],
    ['-r', '5'],
    ['-u'],
    ['-T', '::1', '-D', '/dev/ttyS9', '-P', 'x', '-A', 'y', '-o', 'validate-all', '-n', 'x'],
  ];
  it.each(virtCases)('fence_virt %p', async (...args) => {
    expectSame(await runBoth('fence_virt', args));
  });

  const stdinCases: Array<[AgentName, string]> = [
    ['fence_xvm', 'action=status\nipport=0\nfoo=bar\n  # c\n#x=1\nipaddr=1.2.3.4\n\nbad line\n'],
    ['fence_xvm', 'action=validate-all\nport=x\nnodename=n\nagent=a\nself\n'],
    ['fence_xvm', 'action=validate-all\nplug=\n'],
    ['fence_xvm', 'action = off\nport=x\noption=validate-all\n'],
    ['fence_xvm', 'action=validate-all\ndomain=x\nplug=y\ninterface=lo\n'],
    ['fence_xvm', 'action=metadata\n'],
    ['fence_virt', 'action=validate-all\nport=x\nvsock=1\nretrans=5\n'],
    ['fence_virt', 'action=validate-all\nport=x\nvsock\nipaddr=::1\nserial_device=/dev/ttyS1\n'],
    ['fence_virt', 'ACTION=VALIDATE-ALL\nPLUG=x\ntimeout=\n'],
  ];
  it.each(stdinCases)('%s with stdin %p', async (agent, stdin) => {
    expectSame(await runBoth(agent, [], stdin));
  });
});

describe('offline: transport failures', () => {
  let dir: TempDir;
  let key: string;
  beforeAll(() => {
    dir = tempDir('vf-agent-offline-');
    key = dir.file('key', 'example-key-0123');
  });
  afterAll(() => dir.remove());

  it.each([
    [['-D', '/nonexistent/tty', '-o', 'status', '-n', 'x', '-t', '1']],
    [['-D', '/dev/null', '-o', 'status', '-n', 'x', '-t', '1']],
    [['-D', '/dev/null', '-P', '9600,8X1', '-o', 'status', '-n', 'x']],
    [['-D', '/dev/null', '-P', '1234', '-o', 'status', '-n', 'x']],
    [['-A', '127.0.0.1', '-p', '12399', '-o', 'status', '-n', 'x', '-t', '2']],
  ])('fence_virt serial/vmchannel %p', async (args) => {
    expectSame(await runBoth('fence_virt', args));
  });

  it('fence_virt -T to a closed port and to a name', async () => {
    expectSame(
      await runBoth(
        'fence_virt',
        agentArgs({ tcp: '127.0.0.1', port: 12399, key, action: 'status', target: 'x' }),
      ),
    );
    expectSame(
      await runBoth(
        'fence_virt',
        agentArgs({ tcp: 'foo', port: 12399, key, action: 'status', target: 'x' }),
      ),
    );
  });

  it('fence_virt -S: the same connect failure as C, through the vsock addon', async () => {
    // No vsock transport on this machine: connect fails in the kernel, for both the same way.
    const pair = await runBoth('fence_virt', ['-S3', '-k', key, '-o', 'status', '-n', 'x']);
    expectSame(pair);
    expect(pair.ours.stdout).toMatch(/^Unable to connect to fence_virtd host 3:1229 \S/);
  });

  it('fence_xvm whose callback port is taken: Failed to listen per attempt, then -1', async () => {
    const { createServer } = await import('node:net');
    const holder = createServer();
    await new Promise<void>((resolve, reject) => {
      holder.once('error', reject);
      holder.listen(12346, '0.0.0.0', resolve);
    });
    try {
      const pair = await runBoth(
        'fence_xvm',
        agentArgs({ key, port: 12346, timeout: 1, retrans: 5, action: 'status', target: 'x' }),
      );
      expectSame(pair);
      expect(pair.ours.code).toBe(255);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });

  it('deviation: a missing default key file is an error unless hash and auth are none', async () => {
    const ours = await runAgent(
      OUR_XVM,
      agentArgs({ port: 12399, timeout: 1, action: 'status', target: 'x' }),
    );
    expect(ours.code).toBe(1);
    expect(ours.stdout).toMatch(
      /^Could not read \/etc\/cluster\/fence_xvm.key \(No such file or directory\); .*-c none -C none/,
    );
    expect(ours.stdout).toContain('Operation failed');
    const c = await runAgent(
      C_XVM,
      agentArgs({ port: 12399, timeout: 1, retrans: 10, action: 'status', target: 'x' }),
    );
    expect(c.stdout).toContain('trying without authentication');
  });

  it('deviation: timeout*10 < retrans makes one round instead of looping forever', async () => {
    const ours = await runAgent(
      OUR_XVM,
      agentArgs({ key, port: 12399, timeout: 1, retrans: 15, action: 'status', target: 'x' }),
    );
    expect(ours).toEqual({
      code: 1,
      stdout: 'Timed out waiting for response\nOperation failed\n',
      stderr: '',
    });
  });
});

type Transport = 'multicast' | 'tcp';

/** Which agent speaks to which listener, and how: fence_xvm by multicast, fence_virt -T. */
const TRANSPORTS: Record<Transport, { agent: AgentName; tcp?: string }> = {
  multicast: { agent: 'fence_xvm' },
  tcp: { agent: 'fence_virt', tcp: '127.0.0.1' },
};

type StepArgs = (transport: Transport) => AgentArgs | undefined;
const both =
  (args: AgentArgs): StepArgs =>
  () =>
    args;
const only =
  (transport: Transport, args: AgentArgs): StepArgs =>
  (t) =>
    t === transport ? args : undefined;

/**
 * One sequence of steps for both listeners, in order (a step sees the VM as the steps before it
 * left it); a step that only one agent has is skipped for the other. Each step's settings add to
 * the transport's key, port and a 5 s timeout.
 */
const STEPS: Array<[string, StepArgs, number]> = [
  ['status of a running domain', both({ action: 'status', target: 'test' }), 0],
  ['status of an unknown domain', both({ action: 'status', target: 'nosuch' }), 2],
  [
    'status by UUID with -u',
    only('multicast', { uuid: true, action: 'status', target: TEST_DOMAIN.uuid }),
    0,
  ],
  ['list', both({ action: 'list' }), 0],
  ['list with sha512 packets', only('tcp', { hash: 'sha512', action: 'list' }), 0],
  ['list-status', only('multicast', { action: 'list-status' }), 0],
  ['monitor', both({ action: 'monitor' }), 0],
  ['null', both({ action: 'null', target: 'test' }), 1],
  ['on while running', only('multicast', { action: 'on', target: 'test' }), 0],
  [
    'sha512 packets to a sha256 daemon',
    only('multicast', { hash: 'sha512', action: 'status', target: 'test' }),
    0,
  ],
  ['off', both({ action: 'off', target: 'test' }), 0],
  ['status when off', both({ action: 'status', target: 'test' }), 2],
  ['list when off', only('multicast', { action: 'list' }), 0],
  ['reboot when off (no power-on)', only('multicast', { action: 'reboot', target: 'test' }), 0],
  ['on', both({ action: 'on', target: 'test' }), 0],
  ['reboot', only('multicast', { action: 'reboot', target: 'test' }), 0],
  ['status after reboot', only('multicast', { action: 'status', target: 'test' }), 0],
  ['off of an unknown domain', only('multicast', { action: 'off', target: 'nosuch' }), 1],
  [
    'a challenge with another algorithm than the daemon (tcp: C always uses sha256)',
    (t) => ({ auth: t === 'multicast' ? 'sha1' : 'sha512', action: 'status', target: 'test' }),
    1,
  ],
  [
    'a weaker packet hash than the daemon wants',
    only('multicast', { hash: 'sha1', action: 'status', target: 'test', timeout: 1, retrans: 5 }),
    1,
  ],
  [
    'the wrong key',
    (t) => ({
      key: 'wrong',
      action: 'status',
      target: 'test',
      timeout: t === 'multicast' ? 1 : 2,
      ...(t === 'multicast' ? { retrans: 5 } : {}),
    }),
    1,
  ],
  ['a delayed null', only('multicast', { delay: 1, action: 'null', target: 'test' }), 1],
];

describe.each([
  ['c', 'multicast', 12310],
  ['ours', 'multicast', 12311],
  ['c', 'tcp', 12320],
  ['ours', 'tcp', 12321],
] as const)('against the %s fence_virtd, %s listener', (kind, transport, port) => {
  const { agent, tcp } = TRANSPORTS[transport];
  let daemon: CDaemon;
  let dir: TempDir;
  let key: string;
  let wrongKey: string;
  const argsOf = (step: AgentArgs): string[] =>
    agentArgs({
      tcp,
      port,
      timeout: 5,
      ...step,
      key: step.key === 'wrong' ? wrongKey : key,
    });

  beforeAll(async () => {
    dir = tempDir(`vf-agent-${transport}-`);
    key = dir.file('key', 'example-key-0123');
    wrongKey = dir.file('wrong', 'not-the-key');
    daemon = await startFenceVirtd({ kind, listener: transport, port, keyFile: key });
  });
  afterAll(async () => {
    await daemon?.stop();
    dir?.remove();
  });

  const steps = STEPS.flatMap(([name, args, code]) => {
    const step = args(transport);
    return step ? [[name, step, code] as const] : [];
  });
  it.each(steps)('%s', async (_name, step, expected) => {
    const pair = await runBoth(agent, argsOf(step));
    expectSame(pair);
    expect(pair.ours.code).toBe(expected);
  });

  it('stdin mode', async () => {
    const stdin =
      transport === 'multicast'
        ? `action=status\nport=test\nipport=${port}\nkey_file=${key}\ntimeout=5\nnodename=node1\n`
        : `action=status\nplug=test\nipaddr=127.0.0.1\nipport=${port}\nkey_file=${key}\n`;
    const pair = await runBoth(agent, [], stdin);
    expectSame(pair);
    expect(pair.ours.stdout).toBe('Status: ON\n');
  });

  it('list prints the C line format', async () => {
    const { ours } = await runBoth(agent, argsOf({ action: 'list' }));
    expect(ours.stdout).toBe(`${'test'.padEnd(32)} ${TEST_DOMAIN.uuid} on\n`);
  });
});

describe.each([
  ['c', 12312],
  ['ours', 12313],
] as const)('IPv6 multicast against the %s fence_virtd', (kind, port) => {
  let daemon: CDaemon;
  let dir: TempDir;
  let key: string;
  beforeAll(async () => {
    dir = tempDir('vf-agent-mc6-');
    key = dir.file('key', 'example-key-0123');
    daemon = await startFenceVirtd({
      kind,
      listener: 'multicast',
      family: 'ipv6',
      address: 'ff05::3:1',
      port,
      keyFile: key,
    });
  });
  afterAll(async () => {
    await daemon?.stop();
    dir?.remove();
  });

  it.each([
    [['-i', 'ipv6', '-o', 'status', '-n', 'test'], 0],
    [['-a', 'ff05::3:1', '-o', 'list'], 0],
    [['-i', 'IPV6', '-o', 'status', '-n', 'nosuch'], 2],
  ])('%p', async (args, expected) => {
    const pair = await runBoth('fence_xvm', [...agentArgs({ port, key, timeout: 5 }), ...args]);
    expectSame(pair);
    expect(pair.ours.code).toBe(expected);
  });
});

describe.each([
  ['c', 12322],
  ['ours', 12323],
] as const)('static groups on the %s tcp listener', (kind, port) => {
  let daemon: CDaemon;
  let dir: TempDir;
  let key: string;
  beforeAll(async () => {
    dir = tempDir('vf-agent-groups-');
    key = dir.file('key', 'example-key-0123');
    // 127.0.0.1 may act on the UUID of `test` only: by name it is denied, by UUID allowed.
    daemon = await startFenceVirtd({
      kind,
      listener: 'tcp',
      port,
      keyFile: key,
      groups: [{ name: 'g1', ip: ['127.0.0.1'], uuid: [TEST_DOMAIN.uuid] }],
    });
  });
  afterAll(async () => {
    await daemon?.stop();
    dir?.remove();
  });

  it.each([
    [['-o', 'status', '-n', 'test'], 3],
    [['-o', 'off', '-n', 'test'], 3],
    [['-o', 'status', '-n', TEST_DOMAIN.uuid], 0],
    [['-o', 'list'], 0],
  ])('%p', async (args, expected) => {
    const pair = await runBoth('fence_virt', [
      ...agentArgs({ tcp: '127.0.0.1', port, key, timeout: 5 }),
      ...args,
    ]);
    expectSame(pair);
    expect(pair.ours.code).toBe(expected);
  });
});
