/**
 * `npm run demo -- --local`: our fence_virtd on libvirt's test hypervisor with a fresh key, and the real
 * C fence_xvm listing, querying and rebooting a VM through it. Prints every step.
 */
import { randomBytes } from 'node:crypto';
import { C_XVM, runAgent, startDaemon, tempDir, type RunningDaemon } from '../harness/processes.js';
import { errText, toText } from '../../src/util/errors.js';

const PORT = 12290;

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

async function xvm(keyFile: string, args: string[]): Promise<void> {
  const shown = ['fence_xvm', ...args].join(' ');
  say(`\n$ ${shown}`);
  const started = Date.now();
  const result = await runAgent(C_XVM, ['-p', String(PORT), '-k', keyFile, '-t', '10', ...args]);
  const out = (result.stdout + result.stderr).trimEnd();
  if (out) say(out.replace(/^/gm, '  '));
  say(`  (exit ${result.code}, ${Date.now() - started} ms)`);
}

async function main(): Promise<void> {
  const dir = tempDir('virtfence-demo-');
  let daemon: RunningDaemon | undefined;
  try {
    const keyFile = dir.file('fence_xvm.key', randomBytes(4096));
    const configFile = dir.file(
      'fence_virt.conf',
      `fence_virtd {\n\tlistener = "multicast";\n\tbackend = "libvirt";\n}\n` +
        `listeners {\n\tmulticast {\n\t\tkey_file = "${keyFile}";\n\t\taddress = "225.0.0.12";\n\t\tport = "${PORT}";\n\t\tinterface = "lo";\n\t}\n}\n` +
        `backends {\n\tlibvirt {\n\t\turi = "test:///default";\n\t}\n}\n`,
    );
    say('virtfence demo: our fence_virtd serving the real /usr/sbin/fence_xvm');
    say(`  key:    ${keyFile} (4096 random bytes, mode 0600)`);
    say(`  config: ${configFile}`);
    say(`  libvirt: test:///default (libvirt's built-in test hypervisor, one VM named "test")`);
    daemon = await startDaemon({
      kind: 'ours',
      configFile,
      pidFile: `${dir.path}/fence_virtd.pid`,
    });
    say(
      `  daemon: bin/fence_virtd -F -f ${configFile} (pid ${daemon.pid}), multicast 225.0.0.12:${PORT} on lo`,
    );

    await xvm(keyFile, ['-o', 'list']);
    await xvm(keyFile, ['-o', 'status', '-H', 'test']);
    await xvm(keyFile, ['-o', 'reboot', '-H', 'test']);
    await xvm(keyFile, ['-o', 'status', '-H', 'test']);
    await xvm(keyFile, ['-o', 'off', '-H', 'test']);
    await xvm(keyFile, ['-o', 'status', '-H', 'test']);
    await xvm(keyFile, ['-o', 'on', '-H', 'test']);
    await xvm(keyFile, ['-o', 'status', '-H', 'no-such-vm']);

    say('\nWhat the daemon logged for each request:');
    for (const entry of daemon.logs.filter((e) => e.event === 'request')) {
      say(
        `  ${toText(entry.id)} ${toText(entry.action)} ${toText(entry.target) || '-'} from ${toText(entry.source)}: ${toText(entry.result)} (${toText(entry.reason)}) in ${toText(entry.duration_ms)} ms`,
      );
    }
  } finally {
    await daemon?.stop();
    dir.remove();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${errText(err)}\n`);
  process.exit(1);
});
