// Pull authentication in-process (auth/, docs/auth.md): the policies of NIXYARD_PULL_AUTH with
// Basic credentials and with tokens, the token endpoint, and every way a credential is refused,
// each with the registry's error body and the challenge a client needs. Keys are generated per
// run, the htpasswd file is bcrypt as `htpasswd -B` writes it (the real tool is used end to end in
// test/e2e/auth.test.ts), and refused tokens are made with jose, as an attacker would.

import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import bcrypt from 'bcryptjs';
import { SignJWT, UnsecuredJWT, decodeJwt } from 'jose';
import { CONFIG_DEFAULTS, type Config, type PullAuthMode } from '@nixyard/core';
import { setUpAuth } from '../src/auth/setup.js';
import { parseHtpasswd, HtpasswdError } from '../src/auth/htpasswd.js';
import { LoginThrottle } from '../src/auth/login-throttle.js';
import { challengeFor, parseRepositoryScope } from '../src/auth/challenge.js';
import { tempDir } from '../../../test/helpers/temp-dir.js';
import { OCI, assertRegistryError, json, seedImage, startRegistry, type TestRegistry } from './registry-fixture.js';

const USER = 'ci-bot';
const PASSWORD = 'correct horse battery staple';
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const bearer = (token: string) => `Bearer ${token}`;

async function htpasswdFile(dir: string): Promise<string> {
  const path = join(dir, 'htpasswd');
  // `htpasswd -B` writes $2y$ hashes; bcryptjs writes $2b$, the same algorithm.
  writeFileSync(path, `${USER}:${bcrypt.hashSync(PASSWORD, 5).replace(/^\$2b\$/, '$2y$')}\nother:${bcrypt.hashSync('other password', 5)}\n`);
  return path;
}

function pemKey(dir: string, name: string): { path: string; privateKey: KeyObject; publicKey: KeyObject } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const path = join(dir, `${name}.pem`);
  writeFileSync(path, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  return { path, privateKey, publicKey };
}

function authConfig(overrides: Partial<Config['auth']> & { pull: PullAuthMode }): Config['auth'] {
  return {
    htpasswdPath: undefined,
    tokenKeyPath: undefined,
    jwks: undefined,
    realm: undefined,
    service: CONFIG_DEFAULTS.authService,
    issuer: CONFIG_DEFAULTS.authIssuer,
    tokenTtlSeconds: CONFIG_DEFAULTS.authTokenTtlSeconds,
    ...overrides,
  };
}

async function withAuth(config: Config['auth']): Promise<TestRegistry> {
  return startRegistry({
    auth: async (metrics) => setUpAuth(config, { fromTrustedProxy: () => false, onFailure: (reason) => metrics.authFailures.inc({ reason }) }),
  });
}

async function failures(registry: TestRegistry, reason: string): Promise<number> {
  const metric = await registry.metrics.authFailures.get();
  return metric.values.find((v) => v.labels.reason === reason)?.value ?? NaN;
}

const unauthorized = (message: string, detail: unknown = null) => ({ status: 401, code: 'UNAUTHORIZED', message, detail });

describe('NIXYARD_PULL_AUTH=all with Basic credentials (htpasswd)', () => {
  let dir: ReturnType<typeof tempDir>;
  let registry: TestRegistry;
  before(async () => {
    dir = tempDir('auth-basic');
    registry = await withAuth(authConfig({ pull: 'all', htpasswdPath: await htpasswdFile(dir.path) }));
    await seedImage(registry.storage, 'hello');
  });
  after(async () => {
    await registry.close();
    dir.cleanup();
  });

  test('GET /v2/ without credentials: 401 with a Basic challenge; with them: 200', async () => {
    const anonymous = await registry.request('GET', '/v2/');
    assertRegistryError(anonymous, unauthorized('authentication required'));
    assert.equal(anonymous.headers['www-authenticate'], 'Basic realm="nixyard",charset="UTF-8"');
    // An empty pair is what clients without credentials send: anonymous, not a failed login.
    const empty = await registry.request('GET', '/v2/', { Authorization: basic('', '') });
    assert.equal(empty.status, 401);
    assert.equal(await failures(registry, 'wrong_password'), 0);
    assert.equal((await registry.request('GET', '/v2/', { Authorization: basic(USER, PASSWORD) })).status, 200);
  });

  test('every /v2/ request needs a user: a warm manifest and a cold one', async () => {
    const warm = await registry.request('GET', '/v2/hello/manifests/latest', { Accept: OCI });
    assertRegistryError(warm, unauthorized('authentication required: this registry serves logged-in users only', { name: 'hello' }));
    assert.equal(warm.headers['www-authenticate'], 'Basic realm="nixyard",charset="UTF-8"');
    assert.equal((await registry.request('GET', '/v2/hello/manifests/latest', { Accept: OCI, Authorization: basic(USER, PASSWORD) })).status, 200);
    const cold = await registry.request('GET', '/v2/jq/manifests/latest', { Accept: OCI, Authorization: basic(USER, PASSWORD) });
    assert.equal(cold.status, 200);
    assert.deepEqual(registry.builds.jobs.map((job) => job.packages), [['jq']]);
  });

  test('a wrong password and an unknown user: the same 401, counted apart', async () => {
    const wrong = await registry.request('GET', '/v2/hello/manifests/latest', { Authorization: basic(USER, 'guess') });
    const unknown = await registry.request('GET', '/v2/hello/manifests/latest', { Authorization: basic('nobody', PASSWORD) });
    for (const res of [wrong, unknown]) assertRegistryError(res, unauthorized('the credentials are not valid', { name: 'hello' }));
    assert.equal(await failures(registry, 'wrong_password'), 1);
    assert.equal(await failures(registry, 'unknown_user'), 1);
    const malformed = await registry.request('GET', '/v2/', { Authorization: 'Basic !!!' });
    assert.equal(malformed.status, 401);
    assert.equal(await failures(registry, 'malformed'), 1);
    // Basic alone: a Bearer token is not a way in.
    assert.equal((await registry.request('GET', '/v2/', { Authorization: 'Bearer abc.def.ghi' })).status, 401);
    assert.equal(await failures(registry, 'unsupported_scheme'), 1);
  });
});

describe('NIXYARD_PULL_AUTH=builds with Nixyard\'s own token service', () => {
  let dir: ReturnType<typeof tempDir>;
  let registry: TestRegistry;
  let key: ReturnType<typeof pemKey>;
  let origin: string;
  before(async () => {
    dir = tempDir('auth-token');
    key = pemKey(dir.path, 'token-key');
    registry = await withAuth(authConfig({ pull: 'builds', htpasswdPath: await htpasswdFile(dir.path), tokenKeyPath: key.path }));
    await seedImage(registry.storage, 'hello');
    origin = (await registry.request('GET', '/v2/')).headers['www-authenticate']!.toString().match(/realm="(http:\/\/[^/]+)\/auth\/token"/)![1]!;
  });
  after(async () => {
    await registry.close();
    dir.cleanup();
  });

  async function token(scope: string, credentials?: [string, string]): Promise<string> {
    const res = await registry.request('GET', `/auth/token?service=nixyard&scope=${encodeURIComponent(scope)}`, credentials ? { Authorization: basic(...credentials) } : {});
    assert.equal(res.status, 200, res.body.toString());
    assert.equal(res.headers['cache-control'], 'no-store');
    const body = json(res) as { token: string; access_token: string; expires_in: number; issued_at: string };
    assert.equal(body.token, body.access_token);
    assert.equal(body.expires_in, 300);
    assert.ok(!Number.isNaN(Date.parse(body.issued_at)));
    return body.token;
  }

  test('GET /v2/ names the token service; the challenge of a repository names its scope', async () => {
    const base = await registry.request('GET', '/v2/');
    assert.equal(base.status, 401);
    assert.equal(base.headers['www-authenticate'], `Bearer realm="${origin}/auth/token",service="nixyard"`);
    const cold = await registry.request('GET', '/v2/jq/manifests/latest', { Accept: OCI });
    assert.equal(cold.headers['www-authenticate'], `Bearer realm="${origin}/auth/token",service="nixyard",scope="repository:jq:pull"`);
  });

  test('anonymous clients pull what is built, with or without an anonymous token, and build nothing', async () => {
    assert.equal((await registry.request('GET', '/v2/hello/manifests/latest', { Accept: OCI })).status, 200);
    const anonymous = await token('repository:hello:pull repository:jq:pull');
    const claims = decodeJwt(anonymous);
    assert.equal(claims.sub, undefined);
    assert.deepEqual(claims.access, [
      { type: 'repository', name: 'hello', actions: ['pull'] },
      { type: 'repository', name: 'jq', actions: ['pull'] },
    ]);
    assert.equal((await registry.request('GET', '/v2/', { Authorization: bearer(anonymous) })).status, 200);
    assert.equal((await registry.request('GET', '/v2/hello/manifests/latest', { Accept: OCI, Authorization: bearer(anonymous) })).status, 200);
    const before = registry.builds.jobs.length;
    const cold = await registry.request('GET', '/v2/jq/manifests/latest', { Accept: OCI, Authorization: bearer(anonymous) });
    assertRegistryError(
      cold,
      unauthorized('jq is not built yet, and building it needs a logged-in user; anonymous clients pull only images already built', { name: 'jq' }),
    );
    assert.equal(registry.builds.jobs.length, before, 'no build job');
  });

  test('a user\'s token builds; push is never granted', async () => {
    const user = await token('repository:jq:pull,push', [USER, PASSWORD]);
    const claims = decodeJwt(user);
    assert.equal(claims.sub, USER);
    assert.equal(claims.iss, 'nixyard');
    assert.equal(claims.aud, 'nixyard');
    assert.deepEqual(claims.access, [{ type: 'repository', name: 'jq', actions: ['pull'] }]);
    const res = await registry.request('GET', '/v2/jq/manifests/latest', { Accept: OCI, Authorization: bearer(user) });
    assert.equal(res.status, 200);
  });

  test('containerd\'s form: POST grant_type=password', async () => {
    const form = new URLSearchParams({ grant_type: 'password', username: USER, password: PASSWORD, service: 'nixyard', scope: 'repository:hello:pull', client_id: 'containerd-client' });
    const res = await registry.request('POST', '/auth/token', { 'Content-Type': 'application/x-www-form-urlencoded' }, form.toString());
    assert.equal(res.status, 200, res.body.toString());
    const body = json(res) as { access_token: string; scope: string };
    assert.equal(body.scope, 'repository:hello:pull');
    assert.equal(decodeJwt(body.access_token).sub, USER);
    const refresh = await registry.request('POST', '/auth/token', { 'Content-Type': 'application/x-www-form-urlencoded' }, 'grant_type=refresh_token&refresh_token=x');
    assert.equal(refresh.status, 400);
    assert.equal((json(refresh) as { error: string }).error, 'unsupported_grant_type');
  });

  test('a wrong password gets no token', async () => {
    const res = await registry.request('GET', '/auth/token?service=nixyard&scope=repository:hello:pull', { Authorization: basic(USER, 'guess') });
    assertRegistryError(res, unauthorized('the credentials are not valid'));
    assert.equal(res.headers['www-authenticate'], 'Basic realm="nixyard",charset="UTF-8"');
  });

  test('refused tokens: another repository, expired, another key, alg none, another issuer, no pull', async () => {
    const sign = (claims: Record<string, unknown>, signingKey: KeyObject = key.privateKey, exp: number | string = '5m') =>
      new SignJWT(claims).setProtectedHeader({ alg: 'ES256' }).setIssuer((claims.iss as string) ?? 'nixyard').setAudience('nixyard').setSubject(USER).setIssuedAt().setExpirationTime(exp).sign(signingKey);
    const access = (name: string, actions = ['pull']) => [{ type: 'repository', name, actions }];
    const cases: Array<[string, string, number, string | undefined]> = [
      ['for another repository', await token('repository:jq:pull', [USER, PASSWORD]), 401, 'insufficient_scope'],
      ['expired', await sign({ access: access('hello') }, key.privateKey, Math.floor(Date.now() / 1000) - 3600), 401, 'invalid_token'],
      ['signed by another key', await sign({ access: access('hello') }, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey), 401, 'invalid_token'],
      ['alg none', new UnsecuredJWT({ access: access('hello') }).setIssuer('nixyard').setAudience('nixyard').setSubject(USER).setExpirationTime('5m').encode(), 401, 'invalid_token'],
      ['from another issuer', await sign({ iss: 'elsewhere', access: access('hello') }), 401, 'invalid_token'],
      [
        'HS256 with the public key as its secret',
        await new SignJWT({ access: access('hello') })
          .setProtectedHeader({ alg: 'HS256' })
          .setIssuer('nixyard')
          .setAudience('nixyard')
          .setSubject(USER)
          .setExpirationTime('5m')
          .sign(Buffer.from(key.publicKey.export({ type: 'spki', format: 'pem' }) as string)),
        401,
        'invalid_token',
      ],
      ['naming the repository without pull', await sign({ access: access('hello', []) }), 403, undefined],
    ];
    for (const [what, refused, status, error] of cases) {
      const res = await registry.request('GET', '/v2/hello/manifests/latest', { Accept: OCI, Authorization: bearer(refused) });
      assert.equal(res.status, status, what);
      const body = json(res) as { errors: Array<{ code: string }> };
      assert.equal(body.errors[0]!.code, status === 403 ? 'DENIED' : 'UNAUTHORIZED', what);
      if (error) assert.equal(res.headers['www-authenticate'], `Bearer realm="${origin}/auth/token",service="nixyard",scope="repository:hello:pull",error="${error}"`, what);
    }
    assert.equal(await failures(registry, 'expired_token'), 1);
    assert.equal(await failures(registry, 'invalid_token'), 4);
  });
});

describe('an external token service (NIXYARD_AUTH_JWKS)', () => {
  test('tokens signed by its key are believed; /auth/token is not offered', async () => {
    const dir = tempDir('auth-jwks');
    const key = pemKey(dir.path, 'sso');
    const publicPath = join(dir.path, 'sso.pub.pem');
    writeFileSync(publicPath, key.publicKey.export({ type: 'spki', format: 'pem' }));
    const registry = await withAuth(authConfig({ pull: 'all', jwks: publicPath, issuer: 'https://sso.example', realm: 'https://sso.example/token', service: 'registry.example' }));
    try {
      await seedImage(registry.storage, 'hello');
      const base = await registry.request('GET', '/v2/');
      assert.equal(base.headers['www-authenticate'], 'Bearer realm="https://sso.example/token",service="registry.example"');
      const token = await new SignJWT({ access: [{ type: 'repository', name: 'hello', actions: ['pull'] }] })
        .setProtectedHeader({ alg: 'ES256' })
        .setIssuer('https://sso.example')
        .setAudience('registry.example')
        .setSubject('alice')
        .setExpirationTime('5m')
        .sign(key.privateKey);
      assert.equal((await registry.request('GET', '/v2/hello/manifests/latest', { Accept: OCI, Authorization: bearer(token) })).status, 200);
      assert.equal((await registry.request('GET', '/auth/token?service=registry.example')).status, 404);
    } finally {
      await registry.close();
      dir.cleanup();
    }
  });
});

describe('challenges and scopes', () => {
  const requestFrom = (headers: Record<string, string>) =>
    ({ headers, socket: { localAddress: '10.0.0.5', localPort: 8080 } }) as unknown as import('node:http').IncomingMessage;
  const settings = (trusted: boolean) => ({ scheme: 'bearer' as const, service: 'nixyard', realm: undefined, fromTrustedProxy: () => trusted });

  test('the realm is the address the client used; https only when a trusted proxy says so', () => {
    const behindProxy = requestFrom({ host: 'registry.example', 'x-forwarded-proto': 'https' });
    assert.equal(challengeFor(settings(true), behindProxy, 'jq'), 'Bearer realm="https://registry.example/auth/token",service="nixyard",scope="repository:jq:pull"');
    assert.equal(challengeFor(settings(false), behindProxy, 'jq'), 'Bearer realm="http://registry.example/auth/token",service="nixyard",scope="repository:jq:pull"');
  });

  test('nothing from the request breaks out of a quoted parameter', () => {
    const hostile = requestFrom({ host: 'evil",error="x' });
    assert.equal(challengeFor(settings(false), hostile, 'jq"/x'), 'Bearer realm="http://10.0.0.5:8080/auth/token",service="nixyard"');
  });

  test('repository scopes: the image names Nixyard serves, with their actions', () => {
    assert.deepEqual(parseRepositoryScope('repository:shell/git:pull,push'), { name: 'shell/git', actions: ['pull', 'push'] });
    for (const other of ['registry:catalog:*', 'repository:../etc:pull', 'repository::pull', 'repository:jq', 'jq:pull']) {
      assert.equal(parseRepositoryScope(other), undefined, other);
    }
  });
});

describe('htpasswd files and the login throttle', () => {
  test('only bcrypt entries are accepted, and the message names the line, never the hash', () => {
    assert.equal(parseHtpasswd(`# users\n${USER}:${bcrypt.hashSync('x', 4).replace('$2b$', '$2y$')}\n`).size, 1);
    for (const line of ['md5:$apr1$abc$0123456789abcdefghijkl', 'sha:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=', 'nohash']) {
      assert.throws(
        () => parseHtpasswd(`ok:${bcrypt.hashSync('x', 4)}\n${line}\n`),
        (err: Error) => err instanceof HtpasswdError && /line 2/.test(err.message) && !err.message.includes('$apr1$') && !err.message.includes('{SHA}'),
      );
    }
  });

  test('after a few failures from one address, each check waits twice as long, up to a bound', async () => {
    const waited: number[] = [];
    const throttle = new LoginThrottle(async (ms) => void waited.push(ms));
    for (let i = 0; i < 10; i++) {
      await throttle.wait('192.0.2.1');
      throttle.failed('192.0.2.1');
    }
    await throttle.wait('198.51.100.7');
    assert.deepEqual(waited, [250, 500, 1000, 2000, 4000, 5000, 5000]);
  });
});
