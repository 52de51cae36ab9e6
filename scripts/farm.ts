// `npm run farm -- up | down | status`: the whole Nixyard topology on this one machine, each host a
// network namespace with its own address on one bridge (scripts/farm/, docs/scaling.md). `up`
// returns once everything is ready and leaves the farm running; `down` removes every namespace,
// link and process it made, also after an `up` that failed or was killed. Run as root.

import { parseArgs } from 'node:util';
import { DEFAULT_PREFIX, DEFAULT_STATE_DIR, DEFAULT_SUBNET, farmDown, farmStatus, farmUp, type FarmState } from './farm/farm.js';

const USAGE = `usage: npm run farm -- <up|down|status> [options]
  --state DIR       the farm's state directory (default ${DEFAULT_STATE_DIR})
  --prefix P        of every namespace and link (default ${DEFAULT_PREFIX}; up and, without a state, down)
  --subnet A.B.C.0/24   the hosts' addresses (default ${DEFAULT_SUBNET}; up)
  --tsx             run the API and workers from their sources (up; default: compiled, building first if stale)
  --no-build        with stale builds, use tsx instead of running \`npm run build\` (up)
  --keep-files      keep the state directory, logs and storage (down)`;

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

function describe(state: FarmState): string {
  const rows = [['HOST', 'ADDRESS', 'ROLE', 'PORT', 'PID']];
  rows.push(['(root)', state.rootAddress, `bridge ${state.bridge}`, '', '']);
  for (const host of state.hosts) {
    for (const proc of state.processes.filter((p) => p.host === host.name)) {
      const role = proc.role === 'worker' ? `worker (${proc.env.NIXYARD_SYSTEMS})` : proc.role;
      rows.push([host.name, host.address, role, String(proc.port), String(proc.pid)]);
    }
  }
  return [
    table(rows),
    '',
    `registry (proxy):   http://${state.registry}/`,
    `Prometheus:         ${state.prometheusUrl}/`,
    `REDIS_SENTINELS=${state.redisSentinels} REDIS_SENTINEL_NAME=${state.redisSentinelName}`,
    `shared storage:     ${state.storagePath}`,
    `logs:               ${state.stateDir}/logs/   (roles: ${state.roles})`,
    `admin token:        in ${state.stateDir}/state.json`,
    `try:  skopeo inspect --tls-verify=false docker://${state.registry}/hello:latest`,
  ].join('\n');
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      state: { type: 'string' },
      prefix: { type: 'string' },
      subnet: { type: 'string' },
      tsx: { type: 'boolean' },
      'no-build': { type: 'boolean' },
      'keep-files': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, ...rest] = positionals;
  if (values.help || command === undefined || rest.length > 0) {
    process.stderr.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const stateDir = values.state ?? DEFAULT_STATE_DIR;
  const log = (line: string) => process.stderr.write(`farm: ${line}\n`);
  switch (command) {
    case 'up': {
      const started = Date.now();
      const abort = new AbortController();
      // Ctrl-C or a polite kill: `up` removes what it made (a SIGKILL leaves that to `down`).
      for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => abort.abort());
      const farm = await farmUp({
        stateDir,
        prefix: values.prefix,
        subnet: values.subnet,
        roles: values.tsx ? 'tsx' : 'auto',
        build: !values['no-build'],
        log,
        signal: abort.signal,
      });
      process.stdout.write(`${describe(farm)}\n\nThe farm is up (${((Date.now() - started) / 1000).toFixed(1)} s). Stop it with: npm run farm -- down\n`);
      return 0;
    }
    case 'down': {
      const removed = await farmDown({ stateDir, prefix: values.prefix }, { keepFiles: values['keep-files'] });
      log(`removed ${removed.namespaces.length} namespaces (${removed.namespaces.join(', ') || 'none'}) and links ${removed.links.join(', ') || '(none)'}`);
      return 0;
    }
    case 'status': {
      const status = await farmStatus(stateDir);
      if (!status) {
        log(`no farm recorded in ${stateDir}`);
        return 1;
      }
      const rows = [['HOST', 'ADDRESS', 'PROCESS', 'ROLE', 'PORT', 'PID', 'LINK', 'STATE']];
      for (const r of status.rows) {
        rows.push([r.host, r.address, r.process, r.role, String(r.port), String(r.pid), r.link, r.notReady === undefined ? 'ready' : `not ready: ${r.notReady}`]);
      }
      process.stdout.write(`${table(rows)}\n\nregistry http://${status.state.registry}/   Prometheus ${status.state.prometheusUrl}/\n`);
      return status.rows.every((r) => r.notReady === undefined && r.link === 'up') ? 0 : 1;
    }
    default:
      process.stderr.write(`${USAGE}\n`);
      return 2;
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`farm: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
