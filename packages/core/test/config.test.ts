import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, loadMaintenanceConfig, type Env } from '../src/index.js';

const minimal: Env = { NIXERY_CHANNEL: 'nixos-unstable', STORAGE_PATH: '/var/lib/nixyard' };

/** The one-line message loadConfig throws for `env`. */
function failure(env: Env): string {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${String(error)}`);
    assert.ok(!error.message.includes('\n'), `one line: ${JSON.stringify(error.message)}`);
    return error.message;
  }
  assert.fail(`expected loadConfig(${JSON.stringify(env)}) to throw`);
}

describe('loadConfig', () => {
  it('fills in defaults', () => {
    assert.deepEqual(loadConfig(minimal), {
      port: 8080,
      host: undefined,
      shutdownGraceSeconds: undefined,
      logLevel: 'info',
      source: { kind: 'channel', channel: 'nixos-unstable' },
      storage: { backend: 'filesystem', path: '/var/lib/nixyard' },
      nix: { timeoutSeconds: 60, popularityUrl: undefined },
      redis: { kind: 'url', url: 'redis://127.0.0.1:6379' },
      systems: ['x86_64-linux'],
      indexSystems: undefined,
      worker: { concurrency: 1, metricsPort: 9091, metricsHost: undefined, nice: 10, spareCpus: 0, packThreads: undefined },
      image: { maxLayers: 95, gzipLevel: 5, manifestTtlSeconds: 300 },
      admin: { token: undefined },
      cache: { contentBytes: 256 * 1024 * 1024 },
      admission: { maxQueuedBuilds: 100, maxBuildsPerClient: 4 },
      auth: {
        pull: 'none',
        htpasswdPath: undefined,
        tokenKeyPath: undefined,
        jwks: undefined,
        realm: undefined,
        service: 'nixyard',
        issuer: 'nixyard',
        tokenTtlSeconds: 300,
      },
      proxy: { trustedProxies: [], blobAccelPrefix: undefined },
    });
  });

  it('reaches Redis through Sentinel, and takes one of the two ways only', () => {
    const sentinel = loadConfig({ ...minimal, REDIS_SENTINELS: '10.0.0.1:26379, [fd00::2]:26380,sentinel-3.internal:26379', REDIS_SENTINEL_NAME: 'nixyard', REDIS_PASSWORD: 'pw', REDIS_DB: '2' }).redis;
    assert.deepEqual(sentinel, {
      kind: 'sentinel',
      sentinels: [
        { host: '10.0.0.1', port: 26379 },
        { host: 'fd00::2', port: 26380 },
        { host: 'sentinel-3.internal', port: 26379 },
      ],
      name: 'nixyard',
      username: undefined,
      password: 'pw',
      sentinelPassword: undefined,
      db: 2,
    });
    assert.match(failure({ ...minimal, REDIS_SENTINELS: '10.0.0.1:26379', REDIS_SENTINEL_NAME: 'n', REDIS_URL: 'redis://r:6379' }), /REDIS_URL, REDIS_SENTINELS: expected one of the two/);
    assert.match(failure({ ...minimal, REDIS_SENTINELS: '10.0.0.1:26379' }), /REDIS_SENTINEL_NAME: required with REDIS_SENTINELS/);
    assert.match(failure({ ...minimal, REDIS_PASSWORD: 'pw' }), /REDIS_PASSWORD: only used with REDIS_SENTINELS/);
    for (const bad of ['10.0.0.1', '10.0.0.1:0', 'fd00::2:26379', '10.0.0.1:26379,', '-host:1']) {
      assert.match(failure({ ...minimal, REDIS_SENTINELS: bad, REDIS_SENTINEL_NAME: 'n' }), /^REDIS_SENTINELS: expected a comma-separated list of host:port/, bad);
    }
    assert.equal(failure({ ...minimal, REDIS_SENTINELS: '10.0.0.1:1', REDIS_SENTINEL_NAME: 'n', REDIS_PASSWORD: 'a\nb' }), 'REDIS_PASSWORD: expected a password without control characters, at most 512 characters, got 3 characters');
  });

  it('reads the pull authentication settings, and refuses combinations that cannot work', () => {
    const own = loadConfig({
      ...minimal,
      NIXYARD_PULL_AUTH: 'builds',
      NIXYARD_HTPASSWD: '/etc/nixyard/htpasswd',
      NIXYARD_AUTH_TOKEN_KEY: '/etc/nixyard/token.pem',
      NIXYARD_AUTH_SERVICE: 'registry.example',
      NIXYARD_AUTH_TOKEN_TTL: '600',
    }).auth;
    assert.deepEqual(own, {
      pull: 'builds',
      htpasswdPath: '/etc/nixyard/htpasswd',
      tokenKeyPath: '/etc/nixyard/token.pem',
      jwks: undefined,
      realm: undefined,
      service: 'registry.example',
      issuer: 'nixyard',
      tokenTtlSeconds: 600,
    });
    const external = { NIXYARD_PULL_AUTH: 'all', NIXYARD_AUTH_JWKS: 'https://sso.example/jwks.json', NIXYARD_AUTH_ISSUER: 'https://sso.example', NIXYARD_AUTH_REALM: 'https://sso.example/token' };
    assert.equal(loadConfig({ ...minimal, ...external }).auth.jwks, 'https://sso.example/jwks.json');
    assert.match(failure({ ...minimal, NIXYARD_PULL_AUTH: 'all' }), /^NIXYARD_PULL_AUTH: all needs users: NIXYARD_HTPASSWD/);
    assert.match(failure({ ...minimal, NIXYARD_PULL_AUTH: 'everyone' }), /^NIXYARD_PULL_AUTH: expected one of none, builds, all/);
    assert.match(failure({ ...minimal, NIXYARD_AUTH_TOKEN_KEY: '/k.pem' }), /NIXYARD_AUTH_TOKEN_KEY: the token service issues tokens to NIXYARD_HTPASSWD users/);
    assert.match(failure({ ...minimal, ...external, NIXYARD_HTPASSWD: '/h', NIXYARD_AUTH_TOKEN_KEY: '/k.pem' }), /expected one of the two/);
    assert.match(failure({ ...minimal, ...external, NIXYARD_AUTH_REALM: '' }), /NIXYARD_AUTH_REALM: required with NIXYARD_AUTH_JWKS/);
    // A quote or a comma would break out of the challenge's quoted parameter.
    assert.match(failure({ ...minimal, NIXYARD_AUTH_SERVICE: 'a",b' }), /^NIXYARD_AUTH_SERVICE: expected 1-200 characters/);
  });

  it('reads every variable', () => {
    const config = loadConfig({
      PORT: '9000',
      HOST: '127.0.0.1',
      NIXYARD_SHUTDOWN_GRACE_SECONDS: '25',
      LOG_LEVEL: 'debug',
      NIXERY_PKGS_REPO: 'https://example.org/nixpkgs.git',
      NIXERY_STORAGE_BACKEND: 's3',
      S3_BUCKET: 'nixyard-blobs',
      S3_ENDPOINT: 'http://127.0.0.1:4568',
      AWS_REGION: 'eu-west-1',
      S3_FORCE_PATH_STYLE: 'YES',
      S3_USE_PRESIGNED_URLS: '0',
      NIX_TIMEOUT: '600',
      NIX_POPULARITY_URL: 'file:///srv/popularity.json',
      REDIS_URL: 'rediss://user:pw@redis.internal:6380/2',
      NIXYARD_SYSTEMS: 'x86_64-linux, aarch64-linux',
      NIXYARD_INDEX_SYSTEMS: 'aarch64-linux',
      NIXYARD_WORKER_CONCURRENCY: '4',
      NIXYARD_WORKER_METRICS_PORT: '9200',
      NIXYARD_WORKER_METRICS_HOST: 'worker-1.internal',
      NIXYARD_WORKER_NICE: '0',
      NIXYARD_WORKER_SPARE_CPUS: '1',
      NIXYARD_MAX_QUEUED_BUILDS: '20',
      NIXYARD_MAX_BUILDS_PER_CLIENT: '0',
      NIXYARD_TRUSTED_PROXIES: '172.28.0.0/16, 10.1.2.3,fd00::/8',
      NIXYARD_PULL_AUTH: 'all',
      NIXYARD_AUTH_JWKS: '/etc/nixyard/sso-keys.json',
      NIXYARD_AUTH_ISSUER: 'https://sso.example',
      NIXYARD_AUTH_REALM: 'https://sso.example/token',
      NIXYARD_AUTH_SERVICE: 'registry.example',
      NIXYARD_AUTH_TOKEN_TTL: '60',
      NIXYARD_PACK_THREADS: '3',
      NIXYARD_MAX_LAYERS: '2',
      NIXYARD_GZIP_LEVEL: '9',
      NIXERY_MANIFEST_TTL: '0',
      NIXYARD_ADMIN_TOKEN: 'a'.repeat(16),
      NIXYARD_CONTENT_CACHE_MB: '0',
    });
    assert.deepEqual(config, {
      port: 9000,
      host: '127.0.0.1',
      shutdownGraceSeconds: 25,
      logLevel: 'debug',
      source: { kind: 'git', url: 'https://example.org/nixpkgs.git' },
      storage: {
        backend: 's3',
        bucket: 'nixyard-blobs',
        endpoint: 'http://127.0.0.1:4568',
        region: 'eu-west-1',
        forcePathStyle: true,
        usePresignedUrls: false,
      },
      nix: { timeoutSeconds: 600, popularityUrl: 'file:///srv/popularity.json' },
      redis: { kind: 'url', url: 'rediss://user:pw@redis.internal:6380/2' },
      systems: ['x86_64-linux', 'aarch64-linux'],
      indexSystems: ['aarch64-linux'],
      worker: { concurrency: 4, metricsPort: 9200, metricsHost: 'worker-1.internal', nice: 0, spareCpus: 1, packThreads: 3 },
      image: { maxLayers: 2, gzipLevel: 9, manifestTtlSeconds: 0 },
      admin: { token: 'a'.repeat(16) },
      cache: { contentBytes: 0 },
      admission: { maxQueuedBuilds: 20, maxBuildsPerClient: 0 },
      auth: {
        pull: 'all',
        htpasswdPath: undefined,
        tokenKeyPath: undefined,
        jwks: '/etc/nixyard/sso-keys.json',
        realm: 'https://sso.example/token',
        service: 'registry.example',
        issuer: 'https://sso.example',
        tokenTtlSeconds: 60,
      },
      proxy: { trustedProxies: ['172.28.0.0/16', '10.1.2.3', 'fd00::/8'], blobAccelPrefix: undefined },
    });
  });

  it('returns a deeply frozen object', () => {
    const config = loadConfig(minimal);
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.storage));
    assert.ok(Object.isFrozen(config.systems));
    assert.throws(() => {
      (config as { port: number }).port = 1;
    }, TypeError);
  });

  it('maps NIXERY_PKGS_PATH to a path source and requires it absolute', () => {
    assert.deepEqual(loadConfig({ STORAGE_PATH: '/s', NIXERY_PKGS_PATH: '/srv/pkgs' }).source, {
      kind: 'path',
      path: '/srv/pkgs',
    });
    assert.equal(
      failure({ STORAGE_PATH: '/s', NIXERY_PKGS_PATH: 'pkgs' }),
      'NIXERY_PKGS_PATH: expected an absolute path, got "pkgs"',
    );
  });

  it('gives the documented message for a bad NIX_TIMEOUT', () => {
    assert.equal(failure({ ...minimal, NIX_TIMEOUT: 'abc' }), 'NIX_TIMEOUT: expected a whole number of seconds >= 1, got "abc"');
  });

  // [variable, bad value, text the message must contain]
  const bad: Array<[string, string, string]> = [
    ['PORT', '0', 'port number'],
    ['HOST', 'not a host!', 'IP address or a host name'],
    ['HOST', '-leading.example', 'IP address or a host name'],
    ['NIXYARD_WORKER_METRICS_HOST', '10.0.0.1:9091', 'IP address or a host name'],
    ['NIXYARD_SHUTDOWN_GRACE_SECONDS', '0', 'seconds from 1 to 3600'],
    ['NIXYARD_WORKER_NICE', '20', 'nice value from 0 to 19'],
    ['NIXYARD_WORKER_NICE', '-5', 'nice value from 0 to 19'],
    ['NIXYARD_WORKER_SPARE_CPUS', 'all', 'whole number of CPUs from 0 to 4096'],
    ['NIXYARD_WORKER_SPARE_CPUS', '-1', 'whole number of CPUs from 0 to 4096'],
    ['NIXYARD_MAX_QUEUED_BUILDS', '0', 'whole number >= 1'],
    ['NIXYARD_MAX_BUILDS_PER_CLIENT', '-1', 'whole number >= 0'],
    ['NIXYARD_TRUSTED_PROXIES', '10.0.0.0/33', 'CIDR ranges'],
    ['NIXYARD_TRUSTED_PROXIES', 'proxy.internal', 'CIDR ranges'],
    ['NIXYARD_TRUSTED_PROXIES', '10.0.0.1,,10.0.0.2', 'CIDR ranges'],
    ['NIXYARD_TRUSTED_PROXIES', '10.0.0.0/8/1', 'CIDR ranges'],
    ['PORT', '65536', 'port number'],
    ['PORT', '80x', 'port number'],
    ['PORT', ' 80', 'port number'],
    ['LOG_LEVEL', 'verbose', 'one of trace, debug'],
    ['LOG_LEVEL', 'INFO', 'one of trace'],
    ['NIXERY_STORAGE_BACKEND', 'gcs', 'filesystem or s3'],
    ['STORAGE_PATH', 'relative/dir', 'absolute path'],
    ['S3_BUCKET', 'ab', 'bucket name'],
    ['S3_BUCKET', 'Upper', 'bucket name'],
    ['S3_BUCKET', 'a'.repeat(64), 'bucket name'],
    ['S3_BUCKET', 'a..b', 'bucket name'],
    ['S3_BUCKET', 'a_b', 'bucket name'],
    ['S3_BUCKET', '192.168.1.1', 'bucket name'],
    ['S3_ENDPOINT', 'ftp://x', 'http: or https: URL'],
    ['S3_ENDPOINT', 'not a url', 'http: or https: URL'],
    ['S3_FORCE_PATH_STYLE', 'maybe', 'true/false'],
    ['S3_USE_PRESIGNED_URLS', 'on', 'true/false'],
    ['NIX_TIMEOUT', '0', 'seconds >= 1'],
    ['NIX_TIMEOUT', '1.5', 'seconds >= 1'],
    ['NIX_TIMEOUT', '-3', 'seconds >= 1'],
    ['NIX_TIMEOUT', '1e3', 'seconds >= 1'],
    ['NIX_POPULARITY_URL', 'ftp://x/p.json', 'http:, https: or file: URL'],
    ['REDIS_URL', 'http://127.0.0.1:6379', 'redis: or rediss: URL'],
    ['REDIS_URL', '127.0.0.1:6379', 'redis: or rediss: URL'],
    ['NIXYARD_SYSTEMS', 'x86_64-darwin', 'comma-separated list'],
    ['NIXYARD_SYSTEMS', 'x86_64-linux,', 'comma-separated list'],
    ['NIXYARD_INDEX_SYSTEMS', 'riscv64-linux', 'comma-separated list'],
    ['NIXYARD_WORKER_CONCURRENCY', '0', '>= 1'],
    ['NIXYARD_WORKER_METRICS_PORT', '70000', 'port number'],
    ['NIXYARD_PACK_THREADS', '0', 'from 1 to 256'],
    ['NIXYARD_MAX_LAYERS', '1', 'from 2 to 125'],
    ['NIXYARD_MAX_LAYERS', '126', 'from 2 to 125'],
    ['NIXYARD_GZIP_LEVEL', '0', 'from 1 to 9'],
    ['NIXYARD_GZIP_LEVEL', '10', 'from 1 to 9'],
    ['NIXERY_MANIFEST_TTL', '-1', 'seconds >= 0'],
    ['NIXYARD_ADMIN_TOKEN', 'short', 'at least 16 characters'],
    ['NIXERY_CHANNEL', 'nixos unstable', 'channel name'],
    ['NIXERY_PKGS_REPO', '--upload-pack=x', 'git URL'],
    ['NIXYARD_CONTENT_CACHE_MB', '-1', 'mebibytes'],
    ['NIXYARD_CONTENT_CACHE_MB', '1.5', 'mebibytes'],
    ['NIXYARD_BLOB_ACCEL_PREFIX', '_nixyard/storage/', 'URI path'],
    ['NIXYARD_BLOB_ACCEL_PREFIX', '/_nixyard/storage', 'URI path'],
    ['NIXYARD_BLOB_ACCEL_PREFIX', '/_nixyard/../etc/', 'URI path'],
    ['NIXYARD_BLOB_ACCEL_PREFIX', '/a b/', 'URI path'],
    ['NIXYARD_BLOB_ACCEL_PREFIX', '/x/\r\nX-Evil: 1/', 'URI path'],
  ];
  for (const [name, value, expected] of bad) {
    it(`names ${name} when it is ${JSON.stringify(value.slice(0, 20))}`, () => {
      const message = failure({ ...minimal, [name]: value });
      assert.ok(message.startsWith(`${name}: expected `), message);
      assert.ok(message.includes(expected), message);
    });
  }

  it('never echoes the admin token or URL credentials', () => {
    const token = failure({ ...minimal, NIXYARD_ADMIN_TOKEN: 'hunter2' });
    assert.equal(token, 'NIXYARD_ADMIN_TOKEN: expected at least 16 characters without whitespace, got 7 characters');
    const redis = failure({ ...minimal, REDIS_URL: 'http://admin:s3cret@redis:6379' });
    assert.ok(!redis.includes('s3cret'), redis);
    assert.ok(redis.includes('"http://redis:6379"'), redis);
  });

  it('requires exactly one package source', () => {
    const none = failure({ STORAGE_PATH: '/s' });
    assert.equal(
      none,
      'NIXERY_CHANNEL, NIXERY_PKGS_REPO, NIXERY_PKGS_PATH: expected exactly one to be set, got none',
    );
    const several = failure({ STORAGE_PATH: '/s', NIXERY_CHANNEL: 'nixos-unstable', NIXERY_PKGS_PATH: '/p' });
    assert.ok(several.startsWith('NIXERY_CHANNEL, NIXERY_PKGS_REPO, NIXERY_PKGS_PATH: expected exactly one'));
    assert.ok(several.endsWith('got NIXERY_CHANNEL and NIXERY_PKGS_PATH'), several);
  });

  it('treats empty values as unset', () => {
    const config = loadConfig({ ...minimal, NIXERY_PKGS_PATH: '', PORT: '', NIXYARD_ADMIN_TOKEN: '' });
    assert.equal(config.port, 8080);
    assert.equal(config.source.kind, 'channel');
    assert.equal(config.admin.token, undefined);
  });

  it('requires STORAGE_PATH for the filesystem backend', () => {
    const message = failure({ NIXERY_CHANNEL: 'nixos-unstable' });
    assert.match(message, /^STORAGE_PATH: expected an absolute path \(required by the filesystem/);
  });

  it('reads the proxy blob prefix, for filesystem storage only', () => {
    assert.equal(loadConfig({ ...minimal, NIXYARD_BLOB_ACCEL_PREFIX: '/_nixyard/storage/' }).proxy.blobAccelPrefix, '/_nixyard/storage/');
    const message = failure({ NIXERY_CHANNEL: 'nixos-unstable', NIXERY_STORAGE_BACKEND: 's3', S3_BUCKET: 'abc', NIXYARD_BLOB_ACCEL_PREFIX: '/_s/' });
    assert.match(message, /^NIXYARD_BLOB_ACCEL_PREFIX: only works with the filesystem storage backend/);
  });

  it('requires S3_BUCKET for the s3 backend, and not STORAGE_PATH', () => {
    const message = failure({ NIXERY_CHANNEL: 'nixos-unstable', NIXERY_STORAGE_BACKEND: 's3' });
    assert.match(message, /^S3_BUCKET: expected a bucket name \(required by the s3/);
    assert.ok(!message.includes('STORAGE_PATH'));
    const config = loadConfig({ NIXERY_CHANNEL: 'nixos-unstable', NIXERY_STORAGE_BACKEND: 's3', S3_BUCKET: 'abc' });
    assert.deepEqual(config.storage, {
      backend: 's3',
      bucket: 'abc',
      endpoint: undefined,
      region: 'us-east-1',
      forcePathStyle: false,
      usePresignedUrls: true,
    });
  });

  it('reads booleans in every accepted spelling', () => {
    const s3 = (value: string) =>
      loadConfig({ NIXERY_CHANNEL: 'c', NIXERY_STORAGE_BACKEND: 's3', S3_BUCKET: 'abc', S3_FORCE_PATH_STYLE: value })
        .storage;
    for (const yes of ['true', 'TRUE', 'True', '1', 'yes', 'Yes']) {
      assert.equal((s3(yes) as { forcePathStyle: boolean }).forcePathStyle, true, yes);
    }
    for (const no of ['false', 'FALSE', '0', 'no', 'NO']) {
      assert.equal((s3(no) as { forcePathStyle: boolean }).forcePathStyle, false, no);
    }
  });

  it('reports every problem on one line', () => {
    const message = failure({ PORT: 'x', NIX_TIMEOUT: '0' });
    const parts = message.split('; ');
    assert.equal(parts.length, 4, message);
    assert.ok(parts.some((p) => p.startsWith('PORT: ')));
    assert.ok(parts.some((p) => p.startsWith('NIX_TIMEOUT: ')));
    assert.ok(parts.some((p) => p.startsWith('NIXERY_CHANNEL, NIXERY_PKGS_REPO, NIXERY_PKGS_PATH: ')));
    assert.ok(parts.some((p) => p.startsWith('STORAGE_PATH: ')));
  });

  it('shows control characters and long values safely', () => {
    const message = failure({ ...minimal, LOG_LEVEL: `info\n${'x'.repeat(500)}` });
    assert.match(message, /^LOG_LEVEL: expected one of .*, got "info\\nx+"\.\.\. \(505 characters\)$/);
  });

  it('de-duplicates systems', () => {
    assert.deepEqual(loadConfig({ ...minimal, NIXYARD_SYSTEMS: 'aarch64-linux,aarch64-linux' }).systems, [
      'aarch64-linux',
    ]);
  });
});

describe('loadMaintenanceConfig', () => {
  /** The one-line message loadMaintenanceConfig throws for `env`. */
  function maintenanceFailure(env: Env): string {
    try {
      loadMaintenanceConfig(env);
    } catch (error) {
      assert.ok(error instanceof ConfigError, `expected ConfigError, got ${String(error)}`);
      assert.ok(!error.message.includes('\n'), `one line: ${JSON.stringify(error.message)}`);
      return error.message;
    }
    assert.fail(`expected loadMaintenanceConfig(${JSON.stringify(env)}) to throw`);
  }

  it('needs only STORAGE_PATH, and fills in the defaults loadConfig has', () => {
    const config = loadMaintenanceConfig({ STORAGE_PATH: '/var/lib/nixyard' });
    assert.deepEqual(config, {
      storage: { backend: 'filesystem', path: '/var/lib/nixyard' },
      redis: { kind: 'url', url: 'redis://127.0.0.1:6379' },
      systems: ['x86_64-linux'],
      indexSystems: undefined,
    });
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.storage) && Object.isFrozen(config.systems));
    const full = loadConfig(minimal);
    assert.deepEqual(config, { storage: full.storage, redis: full.redis, systems: full.systems, indexSystems: full.indexSystems });
  });

  it('reads the S3 backend, Redis and the systems', () => {
    const config = loadMaintenanceConfig({
      NIXERY_STORAGE_BACKEND: 's3',
      S3_BUCKET: 'nixyard-blobs',
      S3_ENDPOINT: 'http://127.0.0.1:4568',
      AWS_REGION: 'eu-west-1',
      S3_FORCE_PATH_STYLE: 'yes',
      S3_USE_PRESIGNED_URLS: 'false',
      REDIS_URL: 'redis://redis.internal:6380/1',
      NIXYARD_SYSTEMS: 'x86_64-linux,aarch64-linux',
      NIXYARD_INDEX_SYSTEMS: 'aarch64-linux',
    });
    assert.deepEqual(config, {
      storage: { backend: 's3', bucket: 'nixyard-blobs', endpoint: 'http://127.0.0.1:4568', region: 'eu-west-1', forcePathStyle: true, usePresignedUrls: false },
      redis: { kind: 'url', url: 'redis://redis.internal:6380/1' },
      systems: ['x86_64-linux', 'aarch64-linux'],
      indexSystems: ['aarch64-linux'],
    });
  });

  it('ignores the variables it does not need, set or not, valid or not', () => {
    const config = loadMaintenanceConfig({ STORAGE_PATH: '/s', PORT: 'not a port', NIX_TIMEOUT: '0', NIXERY_CHANNEL: 'a b', NIXYARD_BLOB_ACCEL_PREFIX: 'x' });
    assert.deepEqual(config.storage, { backend: 'filesystem', path: '/s' });
  });

  it('requires what the storage backend needs, with loadConfig\'s messages', () => {
    const fs = maintenanceFailure({});
    assert.equal(fs, 'STORAGE_PATH: expected an absolute path (required by the filesystem storage backend), got nothing');
    assert.ok(failure({ NIXERY_CHANNEL: 'nixos-unstable' }).includes(fs), 'the same words as loadConfig');
    assert.equal(maintenanceFailure({ NIXERY_STORAGE_BACKEND: 's3' }), 'S3_BUCKET: expected a bucket name (required by the s3 storage backend), got nothing');
    assert.equal(maintenanceFailure({ STORAGE_PATH: '', NIXERY_STORAGE_BACKEND: '' }), fs, 'empty values count as unset');
  });

  it('refuses bad values of its variables, every one on one line', () => {
    const message = maintenanceFailure({ STORAGE_PATH: 'relative/path', REDIS_URL: 'http://user:secret@host', NIXYARD_SYSTEMS: 'mips-linux', NIXERY_STORAGE_BACKEND: 'ftp' });
    const parts = message.split('; ');
    assert.ok(parts.some((p) => p.startsWith('STORAGE_PATH: expected an absolute path, got "relative/path"')), message);
    assert.ok(parts.some((p) => p.startsWith('REDIS_URL: expected a redis: or rediss: URL')), message);
    assert.ok(!message.includes('secret'), 'credentials in URLs are not shown');
    assert.ok(parts.some((p) => p.startsWith('NIXYARD_SYSTEMS: ')), message);
    assert.ok(parts.some((p) => p.startsWith('NIXERY_STORAGE_BACKEND: expected filesystem or s3')), message);
    assert.equal(maintenanceFailure({ NIXERY_STORAGE_BACKEND: 's3', S3_BUCKET: 'UPPER' }).split('; ')[0]?.startsWith('S3_BUCKET: expected a DNS-style bucket name'), true);
  });
});
