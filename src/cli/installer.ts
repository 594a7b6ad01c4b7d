/**
 * `virtfence install host|guest` and `virtfence uninstall`: put our programs where Pacemaker and
 * systemd look for them (/usr/sbin) the Debian way, and take them back out.
 *
 * - The C files are diverted with `dpkg-divert --local --rename` (fence_virt → fence_virt.distrib),
 *   so a fence-virt upgrade installs beside ours and uninstall renames them back. On Debian
 *   /usr/sbin/fence_xvm is a symlink to fence_virt: it is diverted as a symlink, and ours is
 *   written as a new file after that, never through the link.
 * - Our programs are small launchers holding an absolute Node path and absolute paths into this
 *   installation's dist/: the fencer's minimal PATH may lack node, and a copied launcher keeps
 *   working.
 * - What was done is recorded in a state file, so uninstall removes exactly that.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export type Role = 'host' | 'guest';

export const LAUNCHER_MARK = 'virtfence launcher';

/** The installation this module belongs to (…/dist/cli/installer.js → …). */
export const INSTALL_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface InstallPaths {
  sbin: string;
  /** systemd unit directory for administrator units. */
  unitDir: string;
  etc: string;
  logrotateDir: string;
  stateFile: string;
}

export const DEFAULT_PATHS: InstallPaths = {
  sbin: '/usr/sbin',
  unitDir: '/etc/systemd/system',
  etc: '/etc',
  logrotateDir: '/etc/logrotate.d',
  stateFile: '/var/lib/virtfence/installed.json',
};

/** Programs each role puts into /usr/sbin, and the module each one runs. */
const PROGRAMS: Record<Role, Array<{ name: string; kind: 'agent' | 'daemon' }>> = {
  host: [{ name: 'fence_virtd', kind: 'daemon' }],
  guest: [
    { name: 'fence_virt', kind: 'agent' },
    { name: 'fence_xvm', kind: 'agent' },
  ],
};

export interface InstallState {
  version: 1;
  roles: Role[];
  /** Files we wrote (launchers, unit, samples): removed on uninstall. */
  files: string[];
  /** Paths diverted with dpkg-divert (restored on uninstall). */
  diversions: string[];
}

export interface Step {
  action: 'divert' | 'write' | 'keep' | 'remove' | 'restore' | 'run';
  path: string;
  detail: string;
}

export class InstallError extends Error {}

/** Folders a unit's sandbox replaces with empty ones: PrivateTmp and ProtectHome (systemd.exec). */
export function hiddenByUnit(unit: string): string[] {
  const setting = (key: string): string =>
    new RegExp(`^${key}=(\\S+)`, 'm').exec(unit)?.[1]?.toLowerCase() ?? 'no';
  return [
    ...(/^(yes|true|on|1)$/.test(setting('PrivateTmp')) ? ['/tmp', '/var/tmp'] : []),
    ...(/^(yes|true|on|1|tmpfs)$/.test(setting('ProtectHome'))
      ? ['/home', '/root', '/run/user']
      : []),
  ];
}

/** The hidden folder `file` lies in, if any: a daemon there cannot be run by the unit. */
export function hiddenFromUnit(file: string, hidden: readonly string[]): string | undefined {
  const abs = path.resolve(file);
  return hidden.find((dir) => abs === dir || abs.startsWith(dir + '/'));
}

export function launcherText(
  name: string,
  kind: 'agent' | 'daemon',
  node: string,
  root: string,
): string {
  const module = pathToFileURL(
    path.join(root, 'dist', kind === 'agent' ? 'agents/main.js' : 'daemon/main.js'),
  ).href;
  // env -u: the agents make no TLS connection, and Node reads NODE_EXTRA_CA_CERTS at start-up.
  const shebang =
    kind === 'agent' ? `#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS ${node}` : `#!${node}`;
  const body =
    kind === 'agent'
      ? `import(${JSON.stringify(module)}).then((m) => m.main());`
      : `import(${JSON.stringify(module)}).then(
  (m) => m.main(process.argv.slice(2)).then((code) => process.exit(code)),
  (err) => {
    process.stderr.write('${name}: ' + (err instanceof Error ? err.message : String(err)) + '\\n');
    process.exit(1);
  },
);`;
  return `${shebang}
// ${LAUNCHER_MARK} (virtfence install): ${name} from ${root}.
// Absolute paths on purpose: the fencer's PATH may lack node, and a copy of this file still works.
${body}
`;
}

function isOurLauncher(file: string): boolean {
  try {
    const st = fs.lstatSync(file);
    if (!st.isFile()) return false;
    return fs.readFileSync(file, 'utf8').slice(0, 600).includes(LAUNCHER_MARK);
  } catch {
    return false;
  }
}

function exists(file: string): boolean {
  try {
    fs.lstatSync(file);
    return true;
  } catch {
    return false;
  }
}

/** Writes via a temporary file and rename: replaces a symlink itself, never its target. */
function writeFileReplacing(file: string, text: string, mode: number): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.virtfence-new`;
  fs.rmSync(tmp, { force: true });
  fs.writeFileSync(tmp, text, { mode, flag: 'wx' });
  fs.chmodSync(tmp, mode);
  fs.renameSync(tmp, file);
}

function readState(file: string): InstallState {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as InstallState;
  } catch {
    return { version: 1, roles: [], files: [], diversions: [] };
  }
}

function writeState(file: string, state: InstallState): void {
  if (state.roles.length === 0 && state.files.length === 0 && state.diversions.length === 0) {
    fs.rmSync(file, { force: true });
    return;
  }
  writeFileReplacing(file, JSON.stringify(state, null, 2) + '\n', 0o644);
}

function dpkgDivert(args: string[]): string {
  try {
    return execFileSync('dpkg-divert', args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    const e = err as { code?: string; stderr?: string; message: string };
    if (e.code === 'ENOENT')
      throw new InstallError('dpkg-divert not found: this installer needs Debian’s dpkg');
    throw new InstallError(`dpkg-divert ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`);
  }
}

/** The diversion of a path, if one exists: the package (or ':' for local) and where to. */
function diversionOf(file: string): string | undefined {
  const out = dpkgDivert(['--listpackage', file]).trim();
  return out === '' ? undefined : out;
}

function systemdRunning(): boolean {
  return fs.existsSync('/run/systemd/system');
}

export interface InstallOptions {
  role: Role;
  node?: string;
  root?: string;
  paths?: InstallPaths;
  dryRun?: boolean;
}

export function install(options: InstallOptions): Step[] {
  const paths = options.paths ?? DEFAULT_PATHS;
  const root = options.root ?? INSTALL_ROOT;
  const node = fs.realpathSync(options.node ?? process.execPath);
  const dry = options.dryRun === true;
  const steps: Step[] = [];
  for (const { kind } of PROGRAMS[options.role]) {
    const module = path.join(root, 'dist', kind === 'agent' ? 'agents/main.js' : 'daemon/main.js');
    if (!fs.existsSync(module))
      throw new InstallError(`${module} is missing: build virtfence first (npm run build)`);
  }
  const unitText =
    options.role === 'host'
      ? fs.readFileSync(path.join(root, 'packaging/fence_virtd.service'), 'utf8')
      : '';
  if (options.role === 'host') {
    const hiddenDirs = hiddenByUnit(unitText);
    for (const [what, file] of [
      ['this installation', fs.realpathSync(root)],
      ['the Node binary', node],
    ] as const) {
      const hidden = hiddenFromUnit(file, hiddenDirs);
      if (hidden !== undefined)
        throw new InstallError(
          `${what} (${file}) is under ${hidden}, which fence_virtd.service hides ` +
            '(PrivateTmp, ProtectHome): the daemon could not start. Install virtfence and Node ' +
            'outside it (e.g. under /opt or /usr/local).',
        );
    }
  }
  const state = readState(paths.stateFile);

  for (const { name, kind } of PROGRAMS[options.role]) {
    const target = path.join(paths.sbin, name);
    const diverted = `${target}.distrib`;
    if (!state.diversions.includes(target)) {
      const existing = diversionOf(target);
      if (existing !== undefined && existing !== 'LOCAL' && existing !== ':') {
        throw new InstallError(`${target} is already diverted by package ${existing}`);
      }
      if (isOurLauncher(target)) {
        throw new InstallError(`${target} is a virtfence launcher not in ${paths.stateFile}`);
      }
      const what = fs.existsSync(target) || exists(target) ? describeFile(target) : 'absent';
      steps.push({ action: 'divert', path: target, detail: `${what} → ${diverted}` });
      if (!dry) {
        dpkgDivert(['--local', '--rename', '--divert', diverted, '--add', target]);
        state.diversions.push(target);
        writeState(paths.stateFile, state);
      }
    }
    if (!dry && exists(target) && !isOurLauncher(target)) {
      throw new InstallError(`${target} still exists after the diversion; not overwriting it`);
    }
    steps.push({ action: 'write', path: target, detail: `launcher: ${node} ${root}/dist` });
    if (!dry) {
      writeFileReplacing(target, launcherText(name, kind, node, root), 0o755);
      if (!state.files.includes(target)) state.files.push(target);
    }
  }

  if (options.role === 'host') {
    const unit = path.join(paths.unitDir, 'fence_virtd.service');
    const sample = path.join(paths.etc, 'virtfence', 'fence_virt.conf.sample');
    const config = path.join(paths.etc, 'fence_virt.conf');
    const logrotate = path.join(paths.logrotateDir, 'virtfence');
    const files: Array<[string, string, number]> = [
      [unit, unitText, 0o644],
      [sample, fs.readFileSync(path.join(root, 'packaging/fence_virt.conf.sample'), 'utf8'), 0o600],
      [logrotate, fs.readFileSync(path.join(root, 'packaging/logrotate'), 'utf8'), 0o644],
    ];
    for (const [file, text, mode] of files) {
      steps.push({ action: 'write', path: file, detail: `mode 0${mode.toString(8)}` });
      if (!dry) {
        writeFileReplacing(file, text, mode);
        if (!state.files.includes(file)) state.files.push(file);
      }
    }
    if (exists(config)) {
      steps.push({ action: 'keep', path: config, detail: 'existing configuration left as it is' });
    } else {
      steps.push({ action: 'write', path: config, detail: `from ${sample} (edit it)` });
      // Not recorded: the administrator's configuration stays after uninstall.
      if (!dry) writeFileReplacing(config, files[1]![1], 0o600);
    }
    if (systemdRunning()) {
      steps.push({ action: 'run', path: 'systemctl', detail: 'daemon-reload' });
      if (!dry) execFileSync('systemctl', ['daemon-reload'], { stdio: 'ignore' });
    }
  }
  if (!dry) {
    if (!state.roles.includes(options.role)) state.roles.push(options.role);
    writeState(paths.stateFile, state);
  }
  return steps;
}

function describeFile(file: string): string {
  const st = fs.lstatSync(file);
  return st.isSymbolicLink() ? `symlink to ${fs.readlinkSync(file)}` : 'file';
}

export interface UninstallOptions {
  /** Only this role's programs; default everything recorded. */
  role?: Role;
  paths?: InstallPaths;
  dryRun?: boolean;
}

export function uninstall(options: UninstallOptions = {}): Step[] {
  const paths = options.paths ?? DEFAULT_PATHS;
  const dry = options.dryRun === true;
  const state = readState(paths.stateFile);
  const roles = options.role ? [options.role] : [...state.roles];
  const steps: Step[] = [];
  const programs = new Set(
    roles.flatMap((r) => PROGRAMS[r].map((p) => path.join(paths.sbin, p.name))),
  );
  const hostFiles = roles.includes('host')
    ? state.files.filter((f) => !f.startsWith(paths.sbin + '/'))
    : [];
  for (const file of [...state.files.filter((f) => programs.has(f)), ...hostFiles]) {
    if (programs.has(file) && exists(file) && !isOurLauncher(file)) {
      steps.push({ action: 'keep', path: file, detail: 'not a virtfence launcher any more' });
    } else {
      steps.push({ action: 'remove', path: file, detail: '' });
      if (!dry) fs.rmSync(file, { force: true });
    }
    if (!dry) state.files = state.files.filter((f) => f !== file);
  }
  for (const target of state.diversions.filter((d) => programs.has(d))) {
    steps.push({ action: 'restore', path: target, detail: `${target}.distrib → ${target}` });
    if (!dry) {
      dpkgDivert(['--local', '--rename', '--divert', `${target}.distrib`, '--remove', target]);
      state.diversions = state.diversions.filter((d) => d !== target);
      writeState(paths.stateFile, state);
    }
  }
  if (roles.includes('host') && systemdRunning()) {
    steps.push({ action: 'run', path: 'systemctl', detail: 'daemon-reload' });
    if (!dry) execFileSync('systemctl', ['daemon-reload'], { stdio: 'ignore' });
  }
  if (!dry) {
    state.roles = state.roles.filter((r) => !roles.includes(r));
    writeState(paths.stateFile, state);
  }
  return steps;
}
