// Configuration: every knob, read once from the environment at start-up and checked all at once.
// A wrong value must stop the process with one line that names the variable and what it expected,
// not surface later as a confusing failure deep in a build. Names follow Nixery wherever Nixery has
// the knob, so its users can switch. This module reads no process.env itself: callers pass it in.
import { isIP } from 'node:net';
import { posix } from 'node:path';
import { z } from 'zod';
import { displayValue, redactUrl } from './display.js';
import type { PackageSource } from './package-source.js';
import { CHANNEL_PATTERN } from './package-source.js';
import { isSystem, SYSTEMS, type System } from './systems.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** NIXYARD_PULL_AUTH: who may pull, and who may make a pull build (docs/auth.md). */
export const PULL_AUTH_MODES = ['none', 'builds', 'all'] as const;
export type PullAuthMode = (typeof PULL_AUTH_MODES)[number];

export type StorageConfig =
  | { readonly backend: 'filesystem'; readonly path: string }
  | {
      readonly backend: 's3';
      readonly bucket: string;
      readonly endpoint: string | undefined;
      readonly region: string;
      readonly forcePathStyle: boolean;
      readonly usePresignedUrls: boolean;
    };

/** Where Redis is: one server by URL, or a primary that Redis Sentinel names and fails over. */
export type RedisConfig =
  | {
      readonly kind: 'url';
      /** REDIS_URL */
      readonly url: string;
    }
  | {
      readonly kind: 'sentinel';
      /** REDIS_SENTINELS: the Sentinels to ask where the primary is. */
      readonly sentinels: ReadonlyArray<{ readonly host: string; readonly port: number }>;
      /** REDIS_SENTINEL_NAME: the primary's name in the Sentinels' configuration. */
      readonly name: string;
      /** REDIS_USERNAME, REDIS_PASSWORD: for the primary and replicas. */
      readonly username: string | undefined;
      readonly password: string | undefined;
      /** REDIS_SENTINEL_PASSWORD: for the Sentinels themselves, when they require one. */
      readonly sentinelPassword: string | undefined;
      /** REDIS_DB */
      readonly db: number | undefined;
    };

export interface Config {
  /** PORT: the API's HTTP port. */
  readonly port: number;
  /** HOST: the address the API listens on; undefined means every interface. */
  readonly host: string | undefined;
  /**
   * NIXYARD_SHUTDOWN_GRACE_SECONDS: how long a role may take to stop after SIGTERM before it exits
   * anyway; undefined means the role's own default (SHUTDOWN_GRACE_DEFAULTS).
   */
  readonly shutdownGraceSeconds: number | undefined;
  /** LOG_LEVEL: a pino level. */
  readonly logLevel: LogLevel;
  /** NIXERY_CHANNEL | NIXERY_PKGS_REPO | NIXERY_PKGS_PATH. */
  readonly source: Readonly<PackageSource>;
  /** NIXERY_STORAGE_BACKEND, STORAGE_PATH, S3_*, AWS_REGION. */
  readonly storage: StorageConfig;
  readonly nix: {
    /** NIX_TIMEOUT */
    readonly timeoutSeconds: number;
    /** NIX_POPULARITY_URL */
    readonly popularityUrl: string | undefined;
  };
  /** REDIS_URL, or REDIS_SENTINELS and its companions. */
  readonly redis: RedisConfig;
  /** NIXYARD_SYSTEMS: the systems served / built (a worker consumes these queues). */
  readonly systems: readonly System[];
  /** NIXYARD_INDEX_SYSTEMS: optional list of systems. */
  readonly indexSystems: readonly System[] | undefined;
  readonly worker: {
    /** NIXYARD_WORKER_CONCURRENCY */
    readonly concurrency: number;
    /** NIXYARD_WORKER_METRICS_PORT */
    readonly metricsPort: number;
    /** NIXYARD_WORKER_METRICS_HOST: the address /metrics, /healthz and /readyz listen on; undefined means every interface. */
    readonly metricsHost: string | undefined;
    /**
     * NIXYARD_WORKER_NICE: the CPU priority (nice value, 0-19) a worker builds at, so that builds
     * yield to serving on a shared host.
     */
    readonly nice: number;
    /**
     * NIXYARD_WORKER_SPARE_CPUS: how many of the CPUs a worker may use its builds leave free for
     * serving on a shared host (the first ones); 0 means builds use them all.
     */
    readonly spareCpus: number;
    /** NIXYARD_PACK_THREADS: threads that gzip layer blocks; undefined means one per core. */
    readonly packThreads: number | undefined;
  };
  readonly image: {
    /** NIXYARD_MAX_LAYERS: layer budget, including the symlink layer. */
    readonly maxLayers: number;
    /** NIXYARD_GZIP_LEVEL */
    readonly gzipLevel: number;
    /** NIXERY_MANIFEST_TTL: how long manifests of moving targets are cached, in seconds. */
    readonly manifestTtlSeconds: number;
  };
  readonly admin: {
    /** NIXYARD_ADMIN_TOKEN: undefined means no admin token is configured. */
    readonly token: string | undefined;
  };
  readonly cache: {
    /** NIXYARD_CONTENT_CACHE_MB: the API's memory for manifests and hot blobs, in bytes (0: none). */
    readonly contentBytes: number;
  };
  /** Admission control: how much build work clients can cause (docs/operations.md). */
  readonly admission: {
    /** NIXYARD_MAX_QUEUED_BUILDS: builds waiting per system beyond which a new cold pull gets 429. */
    readonly maxQueuedBuilds: number;
    /** NIXYARD_MAX_BUILDS_PER_CLIENT: cold builds in flight per client address (0: no limit). */
    readonly maxBuildsPerClient: number;
  };
  /** Pull authentication (docs/auth.md). */
  readonly auth: {
    /** NIXYARD_PULL_AUTH */
    readonly pull: PullAuthMode;
    /** NIXYARD_HTPASSWD: an htpasswd file of bcrypt entries, the users who may log in. */
    readonly htpasswdPath: string | undefined;
    /** NIXYARD_AUTH_TOKEN_KEY: a PEM private key; with it, Nixyard issues its own tokens (/auth/token). */
    readonly tokenKeyPath: string | undefined;
    /**
     * NIXYARD_AUTH_JWKS: an external token service's public keys, as an http(s) URL of a JWKS or the
     * absolute path of a JWKS or PEM public key file; with it, Nixyard only verifies tokens.
     */
    readonly jwks: string | undefined;
    /** NIXYARD_AUTH_REALM: the token URL challenges name; undefined means this API's own /auth/token. */
    readonly realm: string | undefined;
    /** NIXYARD_AUTH_SERVICE: the challenge's `service` and the tokens' audience. */
    readonly service: string;
    /** NIXYARD_AUTH_ISSUER: the tokens' issuer (`iss`). */
    readonly issuer: string;
    /** NIXYARD_AUTH_TOKEN_TTL: how long the tokens Nixyard issues are valid, in seconds. */
    readonly tokenTtlSeconds: number;
  };
  readonly proxy: {
    /**
     * NIXYARD_TRUSTED_PROXIES: addresses and CIDR ranges whose X-Forwarded-For is believed when
     * telling clients apart; empty means the connection's own address, always.
     */
    readonly trustedProxies: readonly string[];
    /**
     * NIXYARD_BLOB_ACCEL_PREFIX: the proxy's internal location for the storage directory. With it,
     * blob GETs are answered with `X-Accel-Redirect: <prefix>blobs/sha256/<hex>` and the proxy sends
     * the file itself (filesystem storage only; docs/operations.md).
     */
    readonly blobAccelPrefix: string | undefined;
  };
}

export type Env = Record<string, string | undefined>;

/** Thrown by loadConfig; `message` is one line, `problems` the individual parts. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(problems.join('; '));
    this.problems = Object.freeze([...problems]);
  }
}

// ---- value parsers: each returns the value, or undefined when the text is not acceptable ----

const wholeNumber = (min: number, max = Number.MAX_SAFE_INTEGER) => (raw: string) => {
  if (!/^[0-9]{1,15}$/.test(raw)) return undefined;
  const n = Number(raw);
  return n >= min && n <= max ? n : undefined;
};

const TRUE_WORDS = new Set(['true', '1', 'yes']);
const FALSE_WORDS = new Set(['false', '0', 'no']);
const boolean = (raw: string) => {
  const word = raw.toLowerCase();
  return TRUE_WORDS.has(word) ? true : FALSE_WORDS.has(word) ? false : undefined;
};

const oneOf = <T extends string>(values: readonly T[]) => (raw: string) =>
  (values as readonly string[]).includes(raw) ? (raw as T) : undefined;

const absolutePath = (raw: string) =>
  posix.isAbsolute(raw) && !/[\x00-\x1f\x7f]/.test(raw) ? raw : undefined;

const urlWithProtocol = (protocols: readonly string[]) => (raw: string) => {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return undefined;
  }
  return protocols.includes(url.protocol) ? raw : undefined;
};

// An absolute URI path ending in "/", of plain path characters only: it is sent as a header.
const uriPathPrefix = (raw: string) => (/^\/(?:[A-Za-z0-9._~-]+\/)*$/.test(raw) && !/(^|\/)\.\.?\//.test(raw) ? raw : undefined);

const systemList = (raw: string): System[] | undefined => {
  const items = raw.split(',').map((s) => s.trim());
  if (items.length === 0 || !items.every(isSystem)) return undefined;
  return [...new Set(items as System[])];
};

// DNS-compatible S3 bucket names: 3-63 of [a-z0-9.-], starting and ending with a letter or digit,
// no empty label, no label starting/ending with "-", not shaped like an IPv4 address.
const bucketName = (raw: string) => {
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(raw)) return undefined;
  if (raw.split('.').some((label) => label.length === 0 || label.startsWith('-') || label.endsWith('-'))) {
    return undefined;
  }
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(raw)) return undefined;
  return raw;
};

const nonBlank = (raw: string) => (/^[\x21-\x7e]+$/.test(raw) && !raw.startsWith('-') ? raw : undefined);
const channelName = (raw: string) => (CHANNEL_PATTERN.test(raw) ? raw : undefined);
/** An IP address or a host name (letters, digits, dots, hyphens). */
const listenAddress = (raw: string) =>
  isIP(raw) !== 0 || /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(raw) ? raw : undefined;

/** `host:port,host:port`, hosts as listenAddress takes them, IPv6 in brackets. */
const hostPorts = (raw: string): Array<{ host: string; port: number }> | undefined => {
  const items = raw.split(',').map((item) => item.trim());
  const parsed: Array<{ host: string; port: number }> = [];
  for (const item of items) {
    const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):([0-9]{1,5})$/.exec(item);
    const host = m && (m[1] ?? m[2]);
    const port = m ? wholeNumber(1, 65535)(m[3]!) : undefined;
    if (!host || port === undefined || listenAddress(host) === undefined) return undefined;
    parsed.push({ host, port });
  }
  return parsed;
};
const redisName = (raw: string) => (/^[A-Za-z0-9._-]{1,64}$/.test(raw) ? raw : undefined);
const redisSecret = (raw: string) => (raw.length <= 512 && !/[\x00-\x1f\x7f]/.test(raw) ? raw : undefined);

/** A comma-separated list of IP addresses and CIDR ranges (address/prefix length). */
const addressRanges = (raw: string): string[] | undefined => {
  const items = raw.split(',').map((item) => item.trim());
  for (const item of items) {
    const [address, prefix, extra] = item.split('/');
    const family = isIP(address ?? '');
    if (family === 0 || extra !== undefined) return undefined;
    if (prefix !== undefined && wholeNumber(0, family === 4 ? 32 : 128)(prefix) === undefined) return undefined;
  }
  return [...new Set(items)];
};

/** Text that goes into a quoted WWW-Authenticate parameter or a JWT claim as it is. */
const plainWord = (raw: string) => (/^[A-Za-z0-9._:/@+-]{1,200}$/.test(raw) ? raw : undefined);
const jwksLocation = (raw: string) => absolutePath(raw) ?? urlWithProtocol(['http:', 'https:'])(raw);

const adminToken = (raw: string) => (raw.length >= 16 && !/[\s\x00-\x1f\x7f]/.test(raw) ? raw : undefined);


interface VarOptions {
  /** How the received value is shown: default quoted; 'url' redacts credentials; 'secret' shows only the length. */
  show?: 'value' | 'url' | 'secret';
}

/**
 * A zod schema for one optional variable. A value the parser refuses becomes an issue whose message
 * is `expected <expected>, got <shown value>`.
 */
function envVar<T>(expected: string, parse: (raw: string) => T | undefined, options: VarOptions = {}) {
  return z
    .string()
    .transform((raw, ctx): T => {
      const value = parse(raw);
      if (value === undefined) {
        const shown =
          options.show === 'secret'
            ? `${raw.length} characters`
            : displayValue(options.show === 'url' ? redactUrl(raw) : raw, 80);
        ctx.addIssue({ code: 'custom', message: `expected ${expected}, got ${shown}` });
        return z.NEVER;
      }
      return value;
    })
    .optional();
}

const EnvSchema = z.object({
  PORT: envVar('a port number from 1 to 65535', wholeNumber(1, 65535)),
  HOST: envVar('an IP address or a host name', listenAddress),
  NIXYARD_SHUTDOWN_GRACE_SECONDS: envVar('a whole number of seconds from 1 to 3600', wholeNumber(1, 3600)),
  LOG_LEVEL: envVar(`one of ${LOG_LEVELS.join(', ')}`, oneOf(LOG_LEVELS)),

  NIXERY_CHANNEL: envVar('a channel name such as nixos-unstable', channelName),
  NIXERY_PKGS_REPO: envVar('a git URL without whitespace, not starting with "-"', nonBlank, { show: 'url' }),
  NIXERY_PKGS_PATH: envVar('an absolute path', absolutePath),

  NIXERY_STORAGE_BACKEND: envVar('filesystem or s3', oneOf(['filesystem', 's3'] as const)),
  STORAGE_PATH: envVar('an absolute path', absolutePath),
  S3_BUCKET: envVar('a DNS-style bucket name (3-63 characters of a-z, 0-9, "." and "-")', bucketName),
  S3_ENDPOINT: envVar('an http: or https: URL', urlWithProtocol(['http:', 'https:']), { show: 'url' }),
  AWS_REGION: envVar('a region name such as us-east-1', (raw) => (/^[a-z0-9-]{1,64}$/.test(raw) ? raw : undefined)),
  S3_FORCE_PATH_STYLE: envVar('true/false, 1/0 or yes/no', boolean),
  S3_USE_PRESIGNED_URLS: envVar('true/false, 1/0 or yes/no', boolean),

  NIX_TIMEOUT: envVar('a whole number of seconds >= 1', wholeNumber(1)),
  NIX_POPULARITY_URL: envVar('an http:, https: or file: URL', urlWithProtocol(['http:', 'https:', 'file:']), {
    show: 'url',
  }),

  REDIS_URL: envVar('a redis: or rediss: URL', urlWithProtocol(['redis:', 'rediss:']), { show: 'url' }),
  REDIS_SENTINELS: envVar('a comma-separated list of host:port', hostPorts),
  REDIS_SENTINEL_NAME: envVar('1-64 characters of A-Z, a-z, 0-9 and ._-', redisName),
  REDIS_USERNAME: envVar('a user name without control characters', redisSecret),
  REDIS_PASSWORD: envVar('a password without control characters, at most 512 characters', redisSecret, { show: 'secret' }),
  REDIS_SENTINEL_PASSWORD: envVar('a password without control characters, at most 512 characters', redisSecret, { show: 'secret' }),
  REDIS_DB: envVar('a database number from 0 to 15', wholeNumber(0, 15)),

  NIXYARD_SYSTEMS: envVar(`a comma-separated list of ${SYSTEMS.join(', ')}`, systemList),
  NIXYARD_INDEX_SYSTEMS: envVar(`a comma-separated list of ${SYSTEMS.join(', ')}`, systemList),
  NIXYARD_WORKER_CONCURRENCY: envVar('a whole number >= 1', wholeNumber(1)),
  NIXYARD_WORKER_METRICS_PORT: envVar('a port number from 1 to 65535', wholeNumber(1, 65535)),
  NIXYARD_WORKER_METRICS_HOST: envVar('an IP address or a host name', listenAddress),
  NIXYARD_MAX_QUEUED_BUILDS: envVar('a whole number >= 1', wholeNumber(1)),
  NIXYARD_MAX_BUILDS_PER_CLIENT: envVar('a whole number >= 0 (0: no limit)', wholeNumber(0)),
  NIXYARD_TRUSTED_PROXIES: envVar('a comma-separated list of IP addresses and CIDR ranges such as 10.0.0.0/8', addressRanges),
  NIXYARD_PACK_THREADS: envVar('a whole number from 1 to 256', wholeNumber(1, 256)),
  NIXYARD_WORKER_NICE: envVar('a nice value from 0 to 19', wholeNumber(0, 19)),
  NIXYARD_WORKER_SPARE_CPUS: envVar('a whole number of CPUs from 0 to 4096', wholeNumber(0, 4096)),
  NIXYARD_MAX_LAYERS: envVar('a whole number from 2 to 125 (including the symlink layer)', wholeNumber(2, 125)),
  NIXYARD_GZIP_LEVEL: envVar('a whole number from 1 to 9', wholeNumber(1, 9)),
  NIXERY_MANIFEST_TTL: envVar('a whole number of seconds >= 0', wholeNumber(0)),
  NIXYARD_ADMIN_TOKEN: envVar('at least 16 characters without whitespace', adminToken, { show: 'secret' }),
  NIXYARD_CONTENT_CACHE_MB: envVar('a whole number of mebibytes >= 0', wholeNumber(0, 1024 * 1024)),
  NIXYARD_PULL_AUTH: envVar(`one of ${PULL_AUTH_MODES.join(', ')}`, oneOf(PULL_AUTH_MODES)),
  NIXYARD_HTPASSWD: envVar('an absolute path', absolutePath),
  NIXYARD_AUTH_TOKEN_KEY: envVar('an absolute path', absolutePath),
  NIXYARD_AUTH_JWKS: envVar('an http: or https: URL, or an absolute path', jwksLocation, { show: 'url' }),
  NIXYARD_AUTH_REALM: envVar('an http: or https: URL', urlWithProtocol(['http:', 'https:']), { show: 'url' }),
  NIXYARD_AUTH_SERVICE: envVar('1-200 characters of A-Z, a-z, 0-9 and ._:/@+-', plainWord),
  NIXYARD_AUTH_ISSUER: envVar('1-200 characters of A-Z, a-z, 0-9 and ._:/@+-', plainWord),
  NIXYARD_AUTH_TOKEN_TTL: envVar('a whole number of seconds from 10 to 86400', wholeNumber(10, 86400)),
  NIXYARD_BLOB_ACCEL_PREFIX: envVar('a URI path starting and ending with "/", such as /_nixyard/storage/', uriPathPrefix),
});

const SOURCE_VARS = ['NIXERY_CHANNEL', 'NIXERY_PKGS_REPO', 'NIXERY_PKGS_PATH'] as const;

export const CONFIG_DEFAULTS = Object.freeze({
  port: 8080,
  logLevel: 'info' as LogLevel,
  storageBackend: 'filesystem' as const,
  awsRegion: 'us-east-1',
  s3ForcePathStyle: false,
  s3UsePresignedUrls: true,
  nixTimeoutSeconds: 60,
  redisUrl: 'redis://127.0.0.1:6379',
  systems: Object.freeze(['x86_64-linux'] as System[]),
  workerConcurrency: 1,
  workerMetricsPort: 9091,
  workerNice: 10,
  workerSpareCpus: 0,
  maxLayers: 95,
  gzipLevel: 5,
  manifestTtlSeconds: 300,
  contentCacheMb: 256,
  maxQueuedBuilds: 100,
  maxBuildsPerClient: 4,
  pullAuth: 'none' as PullAuthMode,
  authService: 'nixyard',
  authIssuer: 'nixyard',
  authTokenTtlSeconds: 300,
});

/** Each role's NIXYARD_SHUTDOWN_GRACE_SECONDS when unset: a worker may be finishing a build. */
export const SHUTDOWN_GRACE_DEFAULTS = Object.freeze({ api: 10, worker: 30 });

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/** `env` without empty values: they count as unset (`FOO=` in an env file, compose's `${FOO}` of an unset variable). */
function presentValues(env: Env): Record<string, string> {
  const present: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (typeof value === 'string' && value !== '') present[key] = value;
  }
  return present;
}

/** One `VARIABLE: expected ..., got ...` line per value a schema refused. */
function schemaProblems(error: z.ZodError): string[] {
  return error.issues.map((issue) => `${issue.path.map(String).join('.')}: ${issue.message}`);
}

/** What the chosen storage backend requires and is missing; checked on presence alone. */
function storageProblems(present: Record<string, string>): string[] {
  const backendRaw = present.NIXERY_STORAGE_BACKEND ?? CONFIG_DEFAULTS.storageBackend;
  const problems: string[] = [];
  if (backendRaw === 'filesystem' && present.STORAGE_PATH === undefined) {
    problems.push('STORAGE_PATH: expected an absolute path (required by the filesystem storage backend), got nothing');
  }
  if (backendRaw === 's3' && present.S3_BUCKET === undefined) {
    problems.push('S3_BUCKET: expected a bucket name (required by the s3 storage backend), got nothing');
  }
  return problems;
}

/**
 * Which authentication settings go together (docs/auth.md): a pull policy other than none needs a
 * way to log in; Nixyard either issues its own tokens (a key, and htpasswd users to issue them to)
 * or verifies an external service's (its keys, issuer and realm), not both.
 */
function authProblems(present: Record<string, string>): string[] {
  const problems: string[] = [];
  const mode = present.NIXYARD_PULL_AUTH ?? CONFIG_DEFAULTS.pullAuth;
  const { NIXYARD_HTPASSWD: htpasswd, NIXYARD_AUTH_TOKEN_KEY: key, NIXYARD_AUTH_JWKS: jwks } = present;
  if (mode !== 'none' && htpasswd === undefined && jwks === undefined) {
    problems.push(`NIXYARD_PULL_AUTH: ${mode} needs users: NIXYARD_HTPASSWD (htpasswd file) or NIXYARD_AUTH_JWKS (an external token service)`);
  }
  if (key !== undefined && jwks !== undefined) {
    problems.push('NIXYARD_AUTH_TOKEN_KEY, NIXYARD_AUTH_JWKS: expected one of the two (issue tokens here, or verify an external service\'s), got both');
  }
  if (key !== undefined && htpasswd === undefined) {
    problems.push('NIXYARD_AUTH_TOKEN_KEY: the token service issues tokens to NIXYARD_HTPASSWD users, which is not set');
  }
  if (jwks !== undefined) {
    for (const name of ['NIXYARD_AUTH_ISSUER', 'NIXYARD_AUTH_REALM'] as const) {
      if (present[name] === undefined) problems.push(`${name}: required with NIXYARD_AUTH_JWKS (the external token service's), got nothing`);
    }
  }
  return problems;
}

/**
 * Redis is reached one of two ways: REDIS_URL (default 127.0.0.1:6379), or REDIS_SENTINELS with
 * the primary's name, where credentials come in variables of their own rather than in a URL.
 */
function redisProblems(present: Record<string, string>): string[] {
  const problems: string[] = [];
  const sentinelOnly = ['REDIS_SENTINEL_NAME', 'REDIS_USERNAME', 'REDIS_PASSWORD', 'REDIS_SENTINEL_PASSWORD', 'REDIS_DB'] as const;
  if (present.REDIS_SENTINELS !== undefined) {
    if (present.REDIS_URL !== undefined) problems.push('REDIS_URL, REDIS_SENTINELS: expected one of the two ways to reach Redis, got both');
    if (present.REDIS_SENTINEL_NAME === undefined) problems.push("REDIS_SENTINEL_NAME: required with REDIS_SENTINELS (the primary's name in the Sentinels' configuration), got nothing");
  } else {
    for (const name of sentinelOnly) {
      if (present[name] !== undefined) problems.push(`${name}: only used with REDIS_SENTINELS (with REDIS_URL, credentials and database go into the URL)`);
    }
  }
  return problems;
}

type RedisEnv = Pick<
  z.output<typeof EnvSchema>,
  'REDIS_URL' | 'REDIS_SENTINELS' | 'REDIS_SENTINEL_NAME' | 'REDIS_USERNAME' | 'REDIS_PASSWORD' | 'REDIS_SENTINEL_PASSWORD' | 'REDIS_DB'
>;

/** The Redis configuration of parsed variables that passed redisProblems. */
function redisConfigOf(e: RedisEnv): RedisConfig {
  if (e.REDIS_SENTINELS === undefined) return { kind: 'url', url: e.REDIS_URL ?? CONFIG_DEFAULTS.redisUrl };
  return {
    kind: 'sentinel',
    sentinels: e.REDIS_SENTINELS,
    name: e.REDIS_SENTINEL_NAME as string,
    username: e.REDIS_USERNAME,
    password: e.REDIS_PASSWORD,
    sentinelPassword: e.REDIS_SENTINEL_PASSWORD,
    db: e.REDIS_DB,
  };
}

/** The variables that choose and configure storage, as EnvSchema parses them. */
type StorageEnv = Pick<
  z.output<typeof EnvSchema>,
  'NIXERY_STORAGE_BACKEND' | 'STORAGE_PATH' | 'S3_BUCKET' | 'S3_ENDPOINT' | 'AWS_REGION' | 'S3_FORCE_PATH_STYLE' | 'S3_USE_PRESIGNED_URLS'
>;

/** The storage configuration of parsed variables that passed storageProblems. */
function storageConfigOf(e: StorageEnv): StorageConfig {
  return (e.NIXERY_STORAGE_BACKEND ?? CONFIG_DEFAULTS.storageBackend) === 's3'
    ? {
        backend: 's3',
        bucket: e.S3_BUCKET as string,
        endpoint: e.S3_ENDPOINT,
        region: e.AWS_REGION ?? CONFIG_DEFAULTS.awsRegion,
        forcePathStyle: e.S3_FORCE_PATH_STYLE ?? CONFIG_DEFAULTS.s3ForcePathStyle,
        usePresignedUrls: e.S3_USE_PRESIGNED_URLS ?? CONFIG_DEFAULTS.s3UsePresignedUrls,
      }
    : { backend: 'filesystem', path: e.STORAGE_PATH as string };
}

/**
 * Reads and validates the whole configuration from `env` (pass `process.env`). An empty string
 * counts as unset. Throws ConfigError listing every problem on one line. The result is deeply frozen.
 */
export function loadConfig(env: Env): Config {
  const present = presentValues(env);
  const parsed = EnvSchema.safeParse(present);
  const problems = parsed.success ? [] : schemaProblems(parsed.error);

  // Cross-variable rules are checked on presence alone, so they are reported alongside field errors.
  const setSources = SOURCE_VARS.filter((name) => present[name] !== undefined);
  if (setSources.length !== 1) {
    problems.push(
      `${SOURCE_VARS.join(', ')}: expected exactly one to be set, got ${
        setSources.length === 0 ? 'none' : setSources.join(' and ')
      }`,
    );
  }
  const backendRaw = present.NIXERY_STORAGE_BACKEND ?? CONFIG_DEFAULTS.storageBackend;
  if (backendRaw !== 'filesystem' && present.NIXYARD_BLOB_ACCEL_PREFIX !== undefined) {
    problems.push('NIXYARD_BLOB_ACCEL_PREFIX: only works with the filesystem storage backend (S3 serves blobs through presigned URLs)');
  }
  problems.push(...storageProblems(present), ...authProblems(present), ...redisProblems(present));

  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  const e = parsed.data;

  const source: PackageSource =
    e.NIXERY_CHANNEL !== undefined
      ? { kind: 'channel', channel: e.NIXERY_CHANNEL }
      : e.NIXERY_PKGS_REPO !== undefined
        ? { kind: 'git', url: e.NIXERY_PKGS_REPO }
        : { kind: 'path', path: e.NIXERY_PKGS_PATH as string };

  const storage = storageConfigOf(e);

  const config: Config = {
    port: e.PORT ?? CONFIG_DEFAULTS.port,
    host: e.HOST,
    shutdownGraceSeconds: e.NIXYARD_SHUTDOWN_GRACE_SECONDS,
    logLevel: e.LOG_LEVEL ?? CONFIG_DEFAULTS.logLevel,
    source,
    storage,
    nix: {
      timeoutSeconds: e.NIX_TIMEOUT ?? CONFIG_DEFAULTS.nixTimeoutSeconds,
      popularityUrl: e.NIX_POPULARITY_URL,
    },
    redis: redisConfigOf(e),
    systems: e.NIXYARD_SYSTEMS ?? [...CONFIG_DEFAULTS.systems],
    indexSystems: e.NIXYARD_INDEX_SYSTEMS,
    worker: {
      concurrency: e.NIXYARD_WORKER_CONCURRENCY ?? CONFIG_DEFAULTS.workerConcurrency,
      metricsPort: e.NIXYARD_WORKER_METRICS_PORT ?? CONFIG_DEFAULTS.workerMetricsPort,
      metricsHost: e.NIXYARD_WORKER_METRICS_HOST,
      nice: e.NIXYARD_WORKER_NICE ?? CONFIG_DEFAULTS.workerNice,
      spareCpus: e.NIXYARD_WORKER_SPARE_CPUS ?? CONFIG_DEFAULTS.workerSpareCpus,
      packThreads: e.NIXYARD_PACK_THREADS,
    },
    image: {
      maxLayers: e.NIXYARD_MAX_LAYERS ?? CONFIG_DEFAULTS.maxLayers,
      gzipLevel: e.NIXYARD_GZIP_LEVEL ?? CONFIG_DEFAULTS.gzipLevel,
      manifestTtlSeconds: e.NIXERY_MANIFEST_TTL ?? CONFIG_DEFAULTS.manifestTtlSeconds,
    },
    admin: { token: e.NIXYARD_ADMIN_TOKEN },
    cache: { contentBytes: (e.NIXYARD_CONTENT_CACHE_MB ?? CONFIG_DEFAULTS.contentCacheMb) * 1024 * 1024 },
    admission: {
      maxQueuedBuilds: e.NIXYARD_MAX_QUEUED_BUILDS ?? CONFIG_DEFAULTS.maxQueuedBuilds,
      maxBuildsPerClient: e.NIXYARD_MAX_BUILDS_PER_CLIENT ?? CONFIG_DEFAULTS.maxBuildsPerClient,
    },
    auth: {
      pull: e.NIXYARD_PULL_AUTH ?? CONFIG_DEFAULTS.pullAuth,
      htpasswdPath: e.NIXYARD_HTPASSWD,
      tokenKeyPath: e.NIXYARD_AUTH_TOKEN_KEY,
      jwks: e.NIXYARD_AUTH_JWKS,
      realm: e.NIXYARD_AUTH_REALM,
      service: e.NIXYARD_AUTH_SERVICE ?? CONFIG_DEFAULTS.authService,
      issuer: e.NIXYARD_AUTH_ISSUER ?? CONFIG_DEFAULTS.authIssuer,
      tokenTtlSeconds: e.NIXYARD_AUTH_TOKEN_TTL ?? CONFIG_DEFAULTS.authTokenTtlSeconds,
    },
    proxy: { trustedProxies: e.NIXYARD_TRUSTED_PROXIES ?? [], blobAccelPrefix: e.NIXYARD_BLOB_ACCEL_PREFIX },
  };
  return deepFreeze(config);
}

/**
 * For a process's start-up: the configuration, or one line on stderr naming what is wrong
 * (`nixyard <role>: NIX_TIMEOUT: ...`) and exit code 2.
 */
export function loadConfigOrExit(role: string, env: Env = process.env): Config {
  try {
    return loadConfig(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`nixyard ${role}: ${err.message}\n`);
    process.exit(2);
  }
}

/** What `nixyard gc` and `nixyard fsck` need: storage, and for gc the Redis and systems of the build queues. */
export interface MaintenanceConfig {
  /** NIXERY_STORAGE_BACKEND, STORAGE_PATH, S3_*, AWS_REGION. */
  readonly storage: StorageConfig;
  /** REDIS_URL, or REDIS_SENTINELS and its companions. */
  readonly redis: RedisConfig;
  /** NIXYARD_SYSTEMS */
  readonly systems: readonly System[];
  /** NIXYARD_INDEX_SYSTEMS */
  readonly indexSystems: readonly System[] | undefined;
}

/** The variables maintenance reads, with loadConfig's parsers and messages; every other one is ignored. */
const MaintenanceEnvSchema = EnvSchema.pick({
  NIXERY_STORAGE_BACKEND: true,
  STORAGE_PATH: true,
  S3_BUCKET: true,
  S3_ENDPOINT: true,
  AWS_REGION: true,
  S3_FORCE_PATH_STYLE: true,
  S3_USE_PRESIGNED_URLS: true,
  REDIS_URL: true,
  REDIS_SENTINELS: true,
  REDIS_SENTINEL_NAME: true,
  REDIS_USERNAME: true,
  REDIS_PASSWORD: true,
  REDIS_SENTINEL_PASSWORD: true,
  REDIS_DB: true,
  NIXYARD_SYSTEMS: true,
  NIXYARD_INDEX_SYSTEMS: true,
});

/**
 * Like loadConfig, for storage maintenance (gc, fsck), which runs where an operator is, not as a
 * role: it reads and checks only the storage variables, REDIS_URL and the systems, so no package
 * source or role setting is needed. Same defaults, same one-line ConfigError; deeply frozen.
 */
export function loadMaintenanceConfig(env: Env): MaintenanceConfig {
  const present = presentValues(env);
  const parsed = MaintenanceEnvSchema.safeParse(present);
  const problems = [...(parsed.success ? [] : schemaProblems(parsed.error)), ...storageProblems(present), ...redisProblems(present)];
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  const e = parsed.data;
  return deepFreeze({
    storage: storageConfigOf(e),
    redis: redisConfigOf(e),
    systems: e.NIXYARD_SYSTEMS ?? [...CONFIG_DEFAULTS.systems],
    indexSystems: e.NIXYARD_INDEX_SYSTEMS,
  });
}
