// The deployable proxy configuration (ops/nginx/nginx.conf) rewritten for a machine without
// Docker: the proxy test, `npm run bench:serve` (test/helpers/nginx.ts) and the farm
// (scripts/farm/) all run the real file on Debian's nginx (1.22) with only what differs from the
// compose topology substituted: the replicas' addresses, the listening address, the storage
// directory and the pid file. 1.22 cannot parse `resolve` in an upstream, so that parameter and
// Docker's `resolver` are left out. Every substitution must match exactly once, so a change to the
// file that this module does not understand fails loudly instead of running something else.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { REPO_ROOT } from './stack.js';

export const NGINX_CONF = join(REPO_ROOT, 'ops/nginx/nginx.conf');
/** The API replicas' STORAGE_PATH in docker-compose.yml, which the proxy mounts at the same path. */
export const COMPOSE_STORAGE_PATH = '/var/lib/nixyard/storage';
/** NIXYARD_BLOB_ACCEL_PREFIX in docker-compose.yml, the proxy's internal storage location. */
export const BLOB_ACCEL_PREFIX = '/_nixyard/storage/';

export interface SubstitutionOptions {
  /** The API replicas, `host:port` each, in place of the compose file's servers. */
  upstreams: string[];
  /** The storage directory the API uses, in place of the compose volume's mount point. */
  storagePath: string;
  port: number;
  /** The address nginx listens on (default 127.0.0.1), in place of every interface. */
  listenAddress?: string;
  pidFile: string;
}

function replaceOnce(text: string, pattern: RegExp, replacement: string | ((...m: string[]) => string), what: string): string {
  const found = text.match(new RegExp(pattern.source, pattern.flags.replace('g', '') + 'g'));
  if (!found || found.length !== 1) {
    throw new Error(`ops/nginx/nginx.conf: expected exactly one ${what} (${pattern}), found ${found?.length ?? 0}`);
  }
  return text.replace(pattern, replacement as string);
}

/** The compose proxy configuration with this machine's addresses. */
export function localNginxConfig(source: string, options: SubstitutionOptions): string {
  if (options.upstreams.length === 0) throw new Error('nginx needs at least one upstream');
  if (!options.storagePath.startsWith('/')) throw new Error('storagePath must be absolute');
  const listenAddress = options.listenAddress ?? '127.0.0.1';
  if (!/^[0-9.]+$/.test(listenAddress)) throw new Error(`listenAddress must be an IPv4 address, not ${listenAddress}`);
  let conf = source;
  conf = replaceOnce(conf, /^(\s*)pid\s+[^;]+;/m, `$1pid ${options.pidFile};`, 'pid directive');
  // Docker's embedded DNS; the upstream below gets fixed addresses instead.
  conf = replaceOnce(conf, /^\s*resolver\s+[^;]+;[^\n]*\n/m, '', 'resolver directive');
  conf = replaceOnce(
    conf,
    /(upstream\s+nixyard_api\s*\{)([^}]*)\}/,
    (_all: string, open: string, body: string) => {
      const servers = [...body.matchAll(/^(\s*)server\s+\S+((?:\s+[^\s;]+)*)\s*;[^\n]*\n/gm)];
      const first = servers[0];
      if (!first) throw new Error('ops/nginx/nginx.conf: the nixyard_api upstream has no server line');
      const indent = first[1]!.replace(/^[\r\n]+/, '');
      const params = first[2]!.split(/\s+/).filter((p) => p !== '' && p !== 'resolve').join(' ');
      const lines = options.upstreams.map((address) => `${indent}server ${address}${params ? ` ${params}` : ''};\n`).join('');
      let placed = false;
      // The first server line becomes the given ones, in its place; the others go.
      const replaced = body.replace(/^[ \t]*server\s+[^;]+;[^\n]*\n/gm, () => (placed ? '' : ((placed = true), lines)));
      return `${open}${replaced}}`;
    },
    'nixyard_api upstream',
  );
  conf = replaceOnce(conf, /^(\s*)listen\s+8080\s*;/m, `$1listen ${listenAddress}:${options.port};`, '`listen 8080`');
  const storage = options.storagePath.endsWith('/') ? options.storagePath : `${options.storagePath}/`;
  conf = replaceOnce(conf, /(\salias\s+)\/var\/lib\/nixyard\/storage\/;/, `$1${storage};`, `alias of ${COMPOSE_STORAGE_PATH}/`);
  const directives = conf.replace(/#[^\n]*/g, '');
  if (/\bresolver?\b/.test(directives)) throw new Error('ops/nginx/nginx.conf: a `resolve` this module did not substitute is left');
  return conf;
}

/**
 * The kernel settings docker-compose.yml gives the proxy's network namespace (its `sysctls`), for
 * the farm's proxy host: the same TCP timeouts, from the one place they are written.
 */
export function composeProxySysctls(): Record<string, string> {
  const compose = parseYaml(readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
    services?: { proxy?: { sysctls?: Record<string, string | number> } };
  };
  const sysctls = compose.services?.proxy?.sysctls ?? {};
  const settings: Record<string, string> = {};
  for (const [name, value] of Object.entries(sysctls)) {
    if (!/^net\.[a-z0-9_.]+$/.test(name) || !/^[0-9]+$/.test(String(value))) {
      throw new Error(`docker-compose.yml: the proxy's sysctl ${name}=${value} is not a numeric net.* setting`);
    }
    settings[name] = String(value);
  }
  return settings;
}
