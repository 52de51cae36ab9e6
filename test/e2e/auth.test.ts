// Pull authentication end to end (docs/auth.md): a registry that builds on demand is a compute
// service open to anyone who can send a GET, so operators turn on NIXYARD_PULL_AUTH, and then every
// client their teams use must still pull, and everything else must be refused in a way those
// clients understand (status, registry JSON body, WWW-Authenticate challenge).
//
// One farm (a private Redis, one worker, the bundled set) and several API processes on it, one per
// way of running: `none`, `builds` and `all`; Basic against an htpasswd file; Nixyard's own token
// service with an EC, an RSA and an Ed25519 key; an external token service (a tiny one inside this
// test, on 127.0.0.1) whose keys the API reads from a JWKS file, a JWKS URL or a PEM file. Real
// clients pull from each: `skopeo copy --src-creds`, `podman login` then `podman pull`, containerd's
// `ctr image pull --user` (a daemon of this test with its own root and socket, as in
// container-engines.test.ts), and the raw token flow with curl. The tokens this test forges
// (expired, signed by another key, `alg: none`, ...) are made with jose; the users file with the real
// `htpasswd -B`; keys with node:crypto.
//
// `hello` is built once, anonymously, by the API without auth; every client pulls it warm. Two more
// images are each built by the first authenticated pull of a builds-mode API, after their anonymous
// pulls were refused without a build. Everything runs at LOG_LEVEL=debug with the processes' output
// in files, and the last tests grep those, /metrics and the status page for every password, token
// and hash used. A client test is skipped, saying why, only when its binary is not installed.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SignJWT, UnsecuredJWT, decodeJwt, decodeProtectedHeader, exportJWK, jwtVerify, type JWTPayload } from 'jose';
import { OCI_IMAGE_MANIFEST, PATH_REVISION, buildJobFor, manifestRecordKey, parseImageName } from '@nixyard/core';
import { freePort, startRole } from '../../scripts/stack.js';
import { BUNDLED_SET } from '../helpers/bundled-set.js';
import { family, parseExposition } from '../helpers/prometheus-exposition.js';
import { jobCount, metricValue, rawRequest, startStack, type StackApi, type TestStack } from '../helpers/stack.js';
import { startContainerd } from '../helpers/containerd.js';
import { tempDir } from '../helpers/temp-dir.js';

/** Built once, anonymously, before anything else; every client pulls it warm. */
const WARM = 'hello';
/** Unbuilt until the builds-mode Basic API gets an authenticated pull of it. */
const COLD_BASIC = 'iana-etc';
/** Unbuilt until the builds-mode token API gets an authenticated pull of it. */
const COLD_TOKEN = 'busybox';
/** Each client step is bounded, so a hung client fails its test instead of stalling the suite. */
const STEP_TIMEOUT_MS = 60_000;
/** A step that builds an image. */
const BUILD_TIMEOUT_MS = 600_000;
const BUILDS_STARTED = 'nixyard_builds_total{result="started"}';

const has = (binary: string) => spawnSync('sh', ['-c', `command -v ${binary}`]).status === 0;
const missing = (...binaries: string[]) => {
  const absent = binaries.filter((b) => !has(b));
  return absent.length > 0 ? `${absent.join(' and ')} not installed (scripts/install-system-packages.sh --test installs it)` : false;
};
const suiteMissing = missing('htpasswd', 'skopeo', 'curl');
const podmanMissing = missing('podman');
const containerdMissing = missing('containerd', 'ctr');

// ---- secrets: everything the last tests look for in logs, /metrics and the status page ----

/** Secret value → what it is (for the failure message, which never prints the value). */
const secrets = new Map<string, string>();
function secret(value: string, what: string): string {
  if (value.length >= 12) secrets.set(value, what);
  return value;
}
/** A token and its signature part (a log that kept only the signature would still leak a credential). */
function rememberToken(token: string, what: string): string {
  secret(token, what);
  const signature = token.split('.')[2];
  if (signature) secret(signature, `${what} (signature)`);
  return token;
}
const newPassword = (what: string) => secret(randomBytes(18).toString('base64url'), what);
/** Command lines shown in failure messages, with secrets masked. */
const shown = (args: string[]) => args.map((a) => ([...secrets.keys()].some((s) => a.includes(s)) ? '***' : a)).join(' ');

interface User {
  user: string;
  password: string;
}
const CI: User = { user: 'ci-bot', password: newPassword('password of ci-bot') };
const ALICE: User = { user: 'alice', password: newPassword('password of alice') };
const WRONG_PASSWORD = newPassword('a wrong password');
/** The external token service's own user (it is not in the htpasswd file). */
const EXTERNAL: User = { user: 'ext-user', password: newPassword('password of the external service user') };
const ADMIN_TOKEN = secret(randomBytes(24).toString('hex'), 'the admin token');
const EXTERNAL_ISSUER = 'https://tokens.test';
const EXTERNAL_SERVICE = 'nixyard-external';
for (const { user, password } of [CI, ALICE, { user: CI.user, password: WRONG_PASSWORD }, EXTERNAL]) {
  secret(Buffer.from(`${user}:${password}`).toString('base64'), `Basic credentials of ${user}`);
}

// ---- processes ----

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs a command without blocking the event loop (the test's own token service must keep answering). */
function run(command: string, args: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? STEP_TIMEOUT_MS);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut });
    });
    if (options.input !== undefined) {
      child.stdin!.on('error', () => {}); // a command that exits without reading its input
      child.stdin!.end(options.input);
    }
  });
}

async function succeeds(command: string, args: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  const ran = await run(command, args, options);
  const why = ran.timedOut ? `timed out after ${options.timeoutMs ?? STEP_TIMEOUT_MS} ms` : `exited ${ran.code}`;
  assert.equal(ran.code, 0, `${command} ${shown(args)} ${why}: ${ran.stderr.slice(-2000)}`);
  return ran.stdout;
}

async function fails(command: string, args: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<Ran> {
  const ran = await run(command, args, options);
  assert.ok(!ran.timedOut, `${command} ${shown(args)} timed out`);
  assert.notEqual(ran.code, 0, `${command} ${shown(args)} should fail`);
  return ran;
}

// ---- HTTP ----

interface Answer {
  status: number;
  headers: Headers;
  body: Buffer;
  ms: number;
}

async function http(url: string, headers: Record<string, string> = {}, init: { method?: string; body?: string; timeoutMs?: number } = {}): Promise<Answer> {
  const started = performance.now();
  const res = await fetch(url, {
    method: init.method ?? 'GET',
    headers,
    ...(init.body === undefined ? {} : { body: init.body }),
    redirect: 'manual',
    signal: AbortSignal.timeout(init.timeoutMs ?? STEP_TIMEOUT_MS),
  });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body, ms: performance.now() - started };
}

const basic = ({ user, password }: User) => ({ Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });
const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
/** The challenge of Basic mode, exactly: the realm, and the charset of RFC 7617. */
const BASIC_CHALLENGE = { scheme: 'Basic', params: { realm: 'nixyard', charset: 'UTF-8' } as Record<string, string> };
/** What skopeo sends to a Basic challenge when it has no credentials. */
const EMPTY_BASIC = { Authorization: `Basic ${Buffer.from(':').toString('base64')}` };
const manifestUrl = (registry: string, name: string) => `http://${registry}/v2/${name}/manifests/latest`;
const manifest = (registry: string, name: string, headers: Record<string, string> = {}, timeoutMs?: number) =>
  http(manifestUrl(registry, name), { Accept: OCI_IMAGE_MANIFEST, ...headers }, timeoutMs === undefined ? {} : { timeoutMs });

/**
 * Requests meant to fail authentication come from addresses of their own (X-Forwarded-For, believed
 * from 127.0.0.1 where NIXYARD_TRUSTED_PROXIES says so), so that the failed-login throttle they
 * trigger never slows the real clients, which connect from 127.0.0.1 itself.
 */
let nextAddress = 1;
const fromElsewhere = () => {
  const n = nextAddress++;
  return { 'X-Forwarded-For': `198.18.${n >> 8}.${n & 255}` };
};

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** The WWW-Authenticate header, parsed strictly: one Basic or Bearer challenge of quoted parameters. */
function challengeOf(headers: Headers | Record<string, string | string[] | undefined>): Challenge | undefined {
  const header = headers instanceof Headers ? headers.get('www-authenticate') : (headers['www-authenticate'] as string | undefined);
  if (header === null || header === undefined) return undefined;
  const m = /^(Basic|Bearer) (.+)$/.exec(header);
  assert.ok(m, `a Basic or Bearer challenge: ${header}`);
  const params: Record<string, string> = {};
  const param = /([A-Za-z_]+)="([^"]*)"(?:, ?|$)/y;
  for (let at = 0; at < m[2]!.length; ) {
    param.lastIndex = at;
    const p = param.exec(m[2]!);
    assert.ok(p, `well-formed challenge parameters: ${header}`);
    params[p[1]!] = p[2]!;
    at = param.lastIndex;
  }
  return { scheme: m[1]!, params };
}

interface RegistryErrorBody {
  errors: Array<{ code: string; message: string; detail?: unknown }>;
}

/**
 * A refusal as the contract has it: the status, Content-Type application/json, the registry's error
 * body with `code`, and for 401 the challenge. `error: 'any'` leaves the challenge's `error`
 * parameter unchecked (where the contract names none).
 */
function assertRefused(answer: Answer, what: string, status: 401 | 403, code: string, challenge?: { scheme: string; params: Record<string, string>; error?: string }): void {
  assert.equal(answer.status, status, `${what}: status (body ${answer.body.toString().slice(0, 300)})`);
  assert.match(answer.headers.get('content-type') ?? '', /^application\/json(;|$)/, `${what}: Content-Type`);
  const body = JSON.parse(answer.body.toString()) as RegistryErrorBody;
  assert.equal(body.errors?.[0]?.code, code, `${what}: error code in ${answer.body.toString()}`);
  assert.equal(typeof body.errors[0]!.message, 'string', `${what}: error message`);
  assert.ok('detail' in body.errors[0]!, `${what}: error detail`);
  if (challenge) {
    const got = challengeOf(answer.headers);
    assert.ok(got, `${what}: a WWW-Authenticate challenge`);
    const params = { ...got.params };
    if (challenge.error === 'any') delete params.error;
    const expected = { ...challenge.params, ...(challenge.error && challenge.error !== 'any' ? { error: challenge.error } : {}) };
    assert.deepEqual({ scheme: got.scheme, params }, { scheme: challenge.scheme, params: expected }, `${what}: challenge`);
  }
}

/** Checks every case, then fails once listing each that failed (so one run shows them all). */
async function eachCase(cases: Array<[string, () => Promise<void>]>): Promise<void> {
  const failed: string[] = [];
  for (const [what, check] of cases) {
    try {
      await check();
    } catch (err) {
      const message = (err as Error).message.split('\n')[0]!;
      failed.push(message.startsWith(what) ? message : `${what}: ${message}`);
    }
  }
  assert.deepEqual(failed, [], `${failed.length} of ${cases.length} cases failed`);
}

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

// ---- keys and tokens ----

interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The PEM PKCS#8 private key's file. */
  path: string;
  publicPem: string;
}

function keyPair(kind: 'ec' | 'rsa' | 'ed25519', path: string): KeyPair {
  const { privateKey, publicKey } =
    kind === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : kind === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  writeFileSync(path, pem, { mode: 0o600 });
  for (const line of pem.split('\n').slice(1, -2)) secret(line, `a line of the ${kind} private key`);
  return { privateKey, publicKey, path, publicPem: publicKey.export({ type: 'spki', format: 'pem' }) as string };
}

const now = () => Math.floor(Date.now() / 1000);
const pullAccess = (name: string, actions = ['pull']) => [{ type: 'repository', name, actions }];

/** Claims of a valid token for `name`, with `over` on top (an undefined value removes a claim). */
function claims(issuer: string, audience: string, name: string, over: Record<string, unknown> = {}): JWTPayload {
  const t = now();
  return { iss: issuer, aud: audience, sub: CI.user, access: pullAccess(name), iat: t, nbf: t, exp: t + 300, jti: randomUUID(), ...over };
}

/** Signs a token as a token service would (the header of a real one: alg, kid, typ). */
async function forge(payload: JWTPayload, key: KeyObject | Uint8Array, header: Record<string, unknown>, what: string): Promise<string> {
  const token = await new SignJWT(payload).setProtectedHeader(header as { alg: string }).sign(key);
  return rememberToken(token, what);
}

interface TokenAnswer {
  token?: string;
  access_token?: string;
  expires_in?: number;
  issued_at?: string;
  scope?: string;
}

const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;

/** GET /auth/token as docker, skopeo and podman ask it. */
async function tokenGet(registry: string, params: Record<string, string | string[]>, headers: Record<string, string> = {}): Promise<Answer> {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const one of [v].flat()) query.append(k, one);
  return http(`http://${registry}/auth/token?${query}`, headers);
}

/** POST /auth/token with a form, as containerd asks it. */
async function tokenPost(registry: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<Answer> {
  return http(`http://${registry}/auth/token`, { 'Content-Type': 'application/x-www-form-urlencoded', ...headers }, { method: 'POST', body: new URLSearchParams(form).toString() });
}

/** A token from the API's own service (GET), checked for its shape; remembered as a secret. */
async function issuedToken(registry: string, service: string, name: string | undefined, user?: User): Promise<string> {
  const answer = await tokenGet(registry, { service, ...(name ? { scope: `repository:${name}:pull` } : {}) }, user ? basic(user) : {});
  assert.equal(answer.status, 200, `token for ${user?.user ?? 'anonymous'}: ${answer.body.toString().slice(0, 300)}`);
  const body = JSON.parse(answer.body.toString()) as TokenAnswer;
  assert.ok(body.token, 'a token');
  return rememberToken(body.token, `a token issued by ${registry} to ${user?.user ?? 'anonymous'}`);
}

// ---- the real clients ----

const work = tempDir('e2e-auth');
const logDir = join(work.path, 'logs');
let containerd: { address: string; stop(): Promise<void> } | undefined;

async function skopeoCopy(registry: string, name: string, user?: User, timeoutMs = STEP_TIMEOUT_MS): Promise<Ran> {
  const layout = join(work.path, `skopeo-${randomUUID()}`);
  return run('skopeo', ['copy', '--src-tls-verify=false', ...(user ? ['--src-creds', `${user.user}:${user.password}`] : []), `docker://${registry}/${name}:latest`, `oci:${layout}:latest`], { timeoutMs });
}

async function skopeoPulls(registry: string, name: string, user?: User, timeoutMs = STEP_TIMEOUT_MS): Promise<void> {
  const ran = await skopeoCopy(registry, name, user, timeoutMs);
  assert.equal(ran.code, 0, `skopeo copy of ${registry}/${name} as ${user?.user ?? 'anonymous'}: ${ran.timedOut ? 'timed out' : ran.stderr.slice(-2000)}`);
}

async function skopeoRefused(registry: string, name: string, user?: User): Promise<void> {
  const ran = await skopeoCopy(registry, name, user);
  assert.ok(!ran.timedOut, 'skopeo copy timed out');
  assert.notEqual(ran.code, 0, `skopeo copy of ${registry}/${name} as ${user?.user ?? 'anonymous'} should be refused`);
  assert.match(ran.stderr, /unauthorized|authentication required|401/i, `skopeo says why: ${ran.stderr.slice(-1000)}`);
}

function podman(...args: string[]): string[] {
  return ['--root', join(work.path, 'podman-root'), '--runroot', join(work.path, 'podman-run'), '--storage-driver', 'vfs', ...args];
}

/** podman login (when given a user), then podman pull; the image is removed afterwards, so the next pull fetches every blob. */
async function podmanPulls(registry: string, name: string, user: User | undefined): Promise<void> {
  const authfile = join(work.path, `podman-auth-${randomUUID()}.json`);
  writeFileSync(authfile, '{"auths":{}}');
  if (user) {
    const out = await succeeds('podman', podman('login', '--authfile', authfile, '--tls-verify=false', '--username', user.user, '--password-stdin', registry), { input: user.password });
    assert.match(out, /Login Succeeded/i);
  }
  const ref = `${registry}/${name}:latest`;
  await succeeds('podman', podman('pull', '--quiet', '--authfile', authfile, '--tls-verify=false', `docker://${ref}`));
  try {
    await succeeds('podman', podman('image', 'exists', ref));
  } finally {
    await run('podman', podman('rmi', '--force', ref));
  }
}

async function ctrPull(registry: string, name: string, user: User | undefined): Promise<Ran> {
  assert.ok(containerd, 'the containerd daemon runs');
  return run('ctr', [
    '--address',
    containerd.address,
    '--namespace',
    'nixyard-auth',
    'image',
    'pull',
    '--plain-http',
    '--snapshotter',
    'native',
    ...(user ? ['--user', `${user.user}:${user.password}`] : []),
    `${registry}/${name}:latest`,
  ]);
}

/** ctr image pull (unpacked into the native snapshotter); the image is removed afterwards with its content. */
async function ctrPulls(registry: string, name: string, user: User | undefined): Promise<void> {
  const ran = await ctrPull(registry, name, user);
  const ref = `${registry}/${name}:latest`;
  try {
    assert.equal(ran.code, 0, `ctr image pull ${ref} as ${user?.user ?? 'anonymous'}: ${ran.timedOut ? 'timed out' : ran.stderr.slice(-2000)}`);
  } finally {
    await run('ctr', ['--address', containerd!.address, '--namespace', 'nixyard-auth', 'image', 'rm', '--sync', ref]);
  }
}

interface Curled {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** One request with curl; the headers of the last response. */
async function curl(url: string, options: { user?: User; headers?: Record<string, string> } = {}): Promise<Curled> {
  const id = randomUUID();
  const headerFile = join(work.path, `curl-${id}.headers`);
  const bodyFile = join(work.path, `curl-${id}.body`);
  const args = ['-sS', '--max-time', '30', '-D', headerFile, '-o', bodyFile, '-w', '%{http_code}'];
  if (options.user) args.push('-u', `${options.user.user}:${options.user.password}`);
  for (const [k, v] of Object.entries(options.headers ?? {})) args.push('-H', `${k}: ${v}`);
  const status = Number(await succeeds('curl', [...args, url]));
  const blocks = readFileSync(headerFile, 'utf8').trim().split(/\r?\n\r?\n/);
  const headers: Record<string, string> = {};
  for (const line of blocks.at(-1)!.split(/\r?\n/).slice(1)) {
    const at = line.indexOf(':');
    if (at > 0) headers[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
  }
  return { status, headers, body: readFileSync(bodyFile) };
}

/**
 * The raw flow a script would follow: /v2/; on a Bearer challenge, a token from the realm it names
 * (for the scope of the manifest's challenge), or Basic credentials on every request on a Basic one;
 * then the manifest and a layer, each checked against its digest.
 */
async function curlFlow(registry: string, name: string, user: User): Promise<void> {
  const base = await curl(`http://${registry}/v2/`);
  let auth: { user?: User; headers?: Record<string, string> } = { user };
  let realm: string | undefined;
  let service: string | undefined;
  if (base.status === 200) {
    assert.equal(base.headers['www-authenticate'], undefined, '/v2/ asks for nothing');
  } else {
    assert.equal(base.status, 401, '/v2/ answers 200 or 401');
    const challenge = challengeOf(base.headers);
    assert.ok(challenge, 'a challenge on /v2/');
    if (challenge.scheme === 'Bearer') [realm, service] = [challenge.params.realm, challenge.params.service];
  }
  if (realm !== undefined) {
    // The scope comes from the manifest's own challenge, as clients learn it.
    const refused = await curl(manifestUrl(registry, name), { headers: { Accept: OCI_IMAGE_MANIFEST } });
    let scope = `repository:${name}:pull`;
    if (refused.status === 401) scope = challengeOf(refused.headers)?.params.scope ?? scope;
    const url = new URL(realm);
    url.searchParams.set('service', service ?? '');
    url.searchParams.set('scope', scope);
    const got = await curl(url.toString(), { user });
    assert.equal(got.status, 200, `token from ${realm}: ${got.body.toString().slice(0, 300)}`);
    const token = rememberToken((JSON.parse(got.body.toString()) as TokenAnswer).token!, `a token curl got from ${realm}`);
    auth = { headers: { Authorization: `Bearer ${token}` } };
  }
  assert.equal((await curl(`http://${registry}/v2/`, auth)).status, 200, '/v2/ with credentials');
  const m = await curl(manifestUrl(registry, name), { ...auth, headers: { ...auth.headers, Accept: OCI_IMAGE_MANIFEST } });
  assert.equal(m.status, 200, `manifest: ${m.body.toString().slice(0, 300)}`);
  assert.equal(m.headers['docker-content-digest'], sha256(m.body));
  const layer = (JSON.parse(m.body.toString()) as { layers: Array<{ digest: string }> }).layers[0]!.digest;
  const blob = await curl(`http://${registry}/v2/${name}/blobs/${layer}`, auth);
  assert.equal(blob.status, 200, 'blob');
  assert.equal(sha256(blob.body), layer, 'the blob hashes to its digest');
}

// ---- the external token service: what an operator runs beside Nixyard, here on loopback ----

interface TokenService {
  realm: string;
  jwksUrl: string;
  key: KeyPair;
  kid: string;
  jwksFetches: number;
  close(): Promise<void>;
}

/**
 * Issues ES256 tokens for EXTERNAL's password (GET with Basic, or POST with a form as containerd
 * sends), anonymous ones (no `sub`) to clients without credentials, and serves its JWKS.
 */
async function startTokenService(key: KeyPair, kid: string): Promise<TokenService> {
  const jwk = { ...(await exportJWK(key.publicKey)), kid, alg: 'ES256', use: 'sig' };
  const json = (res: import('node:http').ServerResponse, status: number, body: unknown) =>
    res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
  const service: TokenService = { realm: '', jwksUrl: '', key, kid, jwksFetches: 0, close: async () => {} };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const url = new URL(req.url ?? '/', 'http://token-service');
        if (req.method === 'GET' && url.pathname === '/jwks.json') {
          service.jwksFetches++;
          return json(res, 200, { keys: [jwk] });
        }
        if (url.pathname !== '/token') return json(res, 404, { error: 'not found' });
        let params = url.searchParams;
        let given: User | undefined;
        if (req.method === 'POST') {
          params = new URLSearchParams(Buffer.concat(chunks).toString());
          if (params.get('grant_type') === 'password') given = { user: params.get('username') ?? '', password: params.get('password') ?? '' };
        } else {
          const m = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
          if (m) {
            const decoded = Buffer.from(m[1]!, 'base64').toString();
            const at = decoded.indexOf(':');
            given = { user: decoded.slice(0, at), password: decoded.slice(at + 1) };
          }
        }
        if (given && !(given.user === EXTERNAL.user && given.password === EXTERNAL.password)) {
          return json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'wrong user or password', detail: null }] });
        }
        const scopes = params.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
        const access = scopes.map((s) => {
          const [type, name, actions] = [s.slice(0, s.indexOf(':')), s.slice(s.indexOf(':') + 1, s.lastIndexOf(':')), s.slice(s.lastIndexOf(':') + 1)];
          return { type, name, actions: actions.split(',').filter((a) => a === 'pull') };
        });
        const token = await forge(
          { iss: EXTERNAL_ISSUER, aud: params.get('service') ?? '', ...(given ? { sub: given.user } : {}), access, iat: now(), nbf: now(), exp: now() + 300, jti: randomUUID() },
          key.privateKey,
          { alg: 'ES256', kid, typ: 'JWT' },
          `a token the external service issued to ${given?.user ?? 'anonymous'}`,
        );
        json(res, 200, { token, access_token: token, expires_in: 300, issued_at: new Date().toISOString(), scope: scopes.join(' ') });
      })().catch((err: unknown) => json(res, 500, { error: String(err) }));
    });
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', () => listening()));
  const { port } = server.address() as { port: number };
  service.realm = `http://127.0.0.1:${port}/token`;
  service.jwksUrl = `http://127.0.0.1:${port}/jwks.json`;
  service.close = () => new Promise((closed) => server.close(() => closed()));
  return service;
}

// ---- the suite ----

describe('pull authentication', { skip: suiteMissing }, () => {
  let stack: TestStack;
  let stackStopped = false;
  let htpasswdFile: string;
  const keys = {} as Record<'ec' | 'rsa' | 'ed25519' | 'stranger' | 'strangerRsa' | 'external', KeyPair>;
  let tokens: TokenService;
  /** The APIs on the farm, by how they run. `none` is the stack's own, without any auth variable. */
  const apis = {} as Record<'basicBuilds' | 'basicAll' | 'tokenNone' | 'tokenBuilds' | 'tokenAll' | 'externalFile' | 'externalUrl' | 'externalPem', StackApi>;
  let none: string;
  /** How the anonymous build of WARM went, on the API without auth (checked by the first test). */
  let warmBuild: { status: number; buildsBefore: number; buildsAfter: number };
  /** Output of API processes the start-up tests ran (they must not print secrets either). */
  const startupOutputs: string[] = [];

  const buildsStarted = () => metricValue(stack.workerMetricsUrl, BUILDS_STARTED);
  async function stored(name: string): Promise<boolean> {
    const job = buildJobFor({ spec: parseImageName(name), source: { kind: 'path', path: BUNDLED_SET }, revision: PATH_REVISION });
    return (await stack.storage.getRecord(manifestRecordKey(job.imageKey))) != null;
  }
  /** Runs `refusals`, then checks that no job was enqueued and no build started. */
  async function startsNoBuild(name: string, refusals: () => Promise<void>): Promise<void> {
    const [builds, jobs] = [await buildsStarted(), await jobCount(stack.redis.url)];
    await refusals();
    await new Promise((r) => setTimeout(r, 1000)); // a job a worker took would show by now
    assert.equal(await jobCount(stack.redis.url), jobs, 'no build job was enqueued');
    assert.equal(await buildsStarted(), builds, 'the worker started no build (nixyard_builds_total{result="started"})');
    assert.equal(await stored(name), false, `${name} is still not built`);
  }

  before(async () => {
    htpasswdFile = join(work.path, 'htpasswd');
    for (const [i, { user, password }] of [CI, ALICE].entries()) {
      await succeeds('htpasswd', ['-B', '-b', ...(i === 0 ? ['-c'] : []), htpasswdFile, user, password]);
    }
    for (const line of readFileSync(htpasswdFile, 'utf8').split('\n').filter(Boolean)) {
      const hash = line.slice(line.indexOf(':') + 1);
      assert.match(hash, /^\$2[aby]\$/, 'htpasswd -B writes bcrypt');
      secret(hash, 'a bcrypt hash of the htpasswd file');
      secret(hash.slice(7), 'a bcrypt hash of the htpasswd file, without its prefix');
    }
    keys.ec = keyPair('ec', join(work.path, 'ec.pem'));
    keys.rsa = keyPair('rsa', join(work.path, 'rsa.pem'));
    keys.ed25519 = keyPair('ed25519', join(work.path, 'ed25519.pem'));
    keys.stranger = keyPair('ec', join(work.path, 'stranger-ec.pem'));
    keys.strangerRsa = keyPair('rsa', join(work.path, 'stranger-rsa.pem'));
    keys.external = keyPair('ec', join(work.path, 'external.pem'));
    tokens = await startTokenService(keys.external, 'external-1');
    const jwksFile = join(work.path, 'external-jwks.json');
    writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(keys.external.publicKey)), kid: 'external-1', alg: 'ES256', use: 'sig' }] }));
    const pemFile = join(work.path, 'external-public.pem');
    writeFileSync(pemFile, keys.external.publicPem);

    stack = await startStack({ env: { LOG_LEVEL: 'debug' }, logDir });
    none = stack.registry;
    const trusted = { NIXYARD_TRUSTED_PROXIES: '127.0.0.1' };
    const external = { NIXYARD_AUTH_ISSUER: EXTERNAL_ISSUER, NIXYARD_AUTH_SERVICE: EXTERNAL_SERVICE, NIXYARD_AUTH_REALM: tokens.realm, ...trusted };
    const started = await Promise.all([
      stack.addApi({ NIXYARD_PULL_AUTH: 'builds', NIXYARD_HTPASSWD: htpasswdFile, ...trusted }),
      stack.addApi({ NIXYARD_PULL_AUTH: 'all', NIXYARD_HTPASSWD: htpasswdFile, ...trusted }),
      stack.addApi({ NIXYARD_PULL_AUTH: 'none', NIXYARD_HTPASSWD: htpasswdFile, NIXYARD_AUTH_TOKEN_KEY: keys.ed25519.path, ...trusted }),
      // No trusted proxy here: its X-Forwarded-Proto must be ignored.
      stack.addApi({ NIXYARD_PULL_AUTH: 'builds', NIXYARD_HTPASSWD: htpasswdFile, NIXYARD_AUTH_TOKEN_KEY: keys.ec.path, NIXYARD_AUTH_TOKEN_TTL: '120' }),
      stack.addApi({
        NIXYARD_PULL_AUTH: 'all',
        NIXYARD_HTPASSWD: htpasswdFile,
        NIXYARD_AUTH_TOKEN_KEY: keys.rsa.path,
        NIXYARD_AUTH_SERVICE: 'registry.test',
        NIXYARD_AUTH_ISSUER: 'nixyard-test',
        NIXYARD_ADMIN_TOKEN: ADMIN_TOKEN,
        ...trusted,
      }),
      stack.addApi({ NIXYARD_PULL_AUTH: 'all', NIXYARD_AUTH_JWKS: jwksFile, ...external }),
      stack.addApi({ NIXYARD_PULL_AUTH: 'builds', NIXYARD_AUTH_JWKS: tokens.jwksUrl, ...external }),
      stack.addApi({ NIXYARD_PULL_AUTH: 'all', NIXYARD_AUTH_JWKS: pemFile, ...external }),
    ]);
    [apis.basicBuilds, apis.basicAll, apis.tokenNone, apis.tokenBuilds, apis.tokenAll, apis.externalFile, apis.externalUrl, apis.externalPem] = started as [
      StackApi, StackApi, StackApi, StackApi, StackApi, StackApi, StackApi, StackApi,
    ];

    // The image every client pulls warm, built by an anonymous pull of the API without auth.
    assert.equal(await stored(WARM), false, `${WARM} is not built yet`);
    const buildsBefore = await buildsStarted();
    const res = await manifest(none, WARM, {}, BUILD_TIMEOUT_MS);
    warmBuild = { status: res.status, buildsBefore, buildsAfter: await buildsStarted() };
    assert.equal(res.status, 200, `the anonymous build of ${WARM}: ${res.body.toString().slice(0, 300)}`);

    if (!containerdMissing) containerd = await startContainerd(join(work.path, 'containerd'));
  });

  after(async () => {
    await containerd?.stop();
    if (!stackStopped) await stack?.stop();
    await tokens?.close();
    work.cleanup();
  });

  describe('NIXYARD_PULL_AUTH=none', () => {
    test('without auth variables: /v2/ answers 200 with no challenge, an anonymous pull built hello, skopeo copies it', { timeout: STEP_TIMEOUT_MS * 2 }, async () => {
      assert.equal(warmBuild.status, 200);
      assert.equal(warmBuild.buildsAfter - warmBuild.buildsBefore, 1, 'the anonymous pull started one build');
      const base = await http(`http://${none}/v2/`);
      assert.equal(base.status, 200);
      assert.equal(base.headers.get('www-authenticate'), null);
      await skopeoPulls(none, WARM);
    });

    test('auth settings under none: auth is off, /v2/ answers 200 to anyone, /auth/token is not offered', async () => {
      const registry = apis.tokenNone.registry;
      const base = await http(`http://${registry}/v2/`);
      assert.equal(base.status, 200);
      assert.equal(base.headers.get('www-authenticate'), null);
      assert.equal((await manifest(registry, WARM)).status, 200, 'an anonymous warm pull');
      // Credentials are not even looked at: a wrong password is no failed login.
      assert.equal((await manifest(registry, WARM, basic({ user: CI.user, password: WRONG_PASSWORD }))).status, 200);
      const token = await http(`http://${registry}/auth/token?service=nixyard&scope=repository:${WARM}:pull`, basic(CI));
      assert.equal(token.status, 404);
    });

    realClients('none, with auth settings', () => apis.tokenNone.registry);
  });

  describe('NIXYARD_PULL_AUTH=builds, Basic (htpasswd)', () => {
    const registry = () => apis.basicBuilds.registry;
    const challenge = BASIC_CHALLENGE;

    test('/v2/: 401 with the Basic challenge without credentials or with empty ones, 401 to a wrong password, 200 to a user', async () => {
      assertRefused(await http(`http://${registry()}/v2/`), 'no credentials', 401, 'UNAUTHORIZED', challenge);
      assertRefused(await http(`http://${registry()}/v2/`, EMPTY_BASIC), 'empty Basic credentials', 401, 'UNAUTHORIZED', challenge);
      assertRefused(await http(`http://${registry()}/v2/`, { ...basic({ user: CI.user, password: WRONG_PASSWORD }), ...fromElsewhere() }), 'a wrong password', 401, 'UNAUTHORIZED', challenge);
      assert.equal((await http(`http://${registry()}/v2/`, basic(CI))).status, 200);
      assert.equal((await http(`http://${registry()}/v2/`, basic(ALICE))).status, 200);
    });

    test('anonymous clients pull what is built: manifest (GET, HEAD, with or without empty credentials), tags/list, blobs; skopeo copies it', async () => {
      for (const headers of [{}, EMPTY_BASIC]) {
        const m = await manifest(registry(), WARM, headers);
        assert.equal(m.status, 200, `warm manifest ${JSON.stringify(headers)}`);
        const head = await http(manifestUrl(registry(), WARM), { Accept: OCI_IMAGE_MANIFEST, ...headers }, { method: 'HEAD' });
        assert.equal(head.status, 200, 'HEAD of the warm manifest');
        for (const layer of (JSON.parse(m.body.toString()) as { layers: Array<{ digest: string }> }).layers) {
          const blob = await http(`http://${registry()}/v2/${WARM}/blobs/${layer.digest}`, headers);
          assert.equal(blob.status, 200, `blob ${layer.digest}`);
          assert.equal(sha256(blob.body), layer.digest);
        }
      }
      assert.equal((await http(`http://${registry()}/v2/${WARM}/tags/list`)).status, 200);
      assert.equal((await http(`http://${registry()}/v2/${COLD_BASIC}/tags/list`)).status, 200, 'tags/list of an unbuilt image builds nothing');
      await skopeoPulls(registry(), WARM);
    });

    test('an anonymous pull of an unbuilt image gets 401 with the challenge and starts no build; so does a wrong password', async () => {
      assert.equal(await stored(COLD_BASIC), false);
      await startsNoBuild(COLD_BASIC, async () => {
        assertRefused(await manifest(registry(), COLD_BASIC), 'anonymous cold GET', 401, 'UNAUTHORIZED', challenge);
        assertRefused(await manifest(registry(), COLD_BASIC, EMPTY_BASIC), 'cold GET with empty credentials', 401, 'UNAUTHORIZED', challenge);
        const head = await http(manifestUrl(registry(), COLD_BASIC), { Accept: OCI_IMAGE_MANIFEST }, { method: 'HEAD' });
        assert.equal(head.status, 401, 'anonymous cold HEAD (containerd asks HEAD first)');
        assertRefused(await manifest(registry(), COLD_BASIC, { ...basic({ user: CI.user, password: WRONG_PASSWORD }), ...fromElsewhere() }), 'cold GET, wrong password', 401, 'UNAUTHORIZED', challenge);
        await skopeoRefused(registry(), COLD_BASIC);
      });
    });

    test('the same pull with credentials (skopeo --src-creds) builds the image and succeeds', { timeout: BUILD_TIMEOUT_MS }, async () => {
      const builds = await buildsStarted();
      await skopeoPulls(registry(), COLD_BASIC, CI, BUILD_TIMEOUT_MS);
      assert.equal((await buildsStarted()) - builds, 1, 'one build');
      assert.equal(await stored(COLD_BASIC), true);
      // Built now: anonymous clients may pull it.
      assert.equal((await manifest(registry(), COLD_BASIC)).status, 200);
    });

    realClients('builds, Basic', registry);

    // Failures last: the failed-login throttle slows every credential check of an address after a few.
    test('a wrong password is refused even for a built image (skopeo --src-creds, and the raw request)', async () => {
      assertRefused(await manifest(registry(), WARM, { ...basic({ user: CI.user, password: WRONG_PASSWORD }), ...fromElsewhere() }), 'warm GET, wrong password', 401, 'UNAUTHORIZED', challenge);
      await skopeoRefused(registry(), WARM, { user: CI.user, password: WRONG_PASSWORD });
    });
  });

  describe('NIXYARD_PULL_AUTH=builds, token service (EC P-256)', () => {
    const registry = () => apis.tokenBuilds.registry;
    const realm = () => `http://${registry()}/auth/token`;
    const onBase = () => ({ scheme: 'Bearer', params: { realm: realm(), service: 'nixyard' } });
    const onRepo = (name: string) => ({ scheme: 'Bearer', params: { realm: realm(), service: 'nixyard', scope: `repository:${name}:pull` } });

    test('/v2/: 401 with the Bearer challenge (no scope) without a token, 200 with any valid token, even an anonymous one', async () => {
      assertRefused(await http(`http://${registry()}/v2/`), 'no token', 401, 'UNAUTHORIZED', onBase());
      const anonymous = await issuedToken(registry(), 'nixyard', WARM);
      assert.equal((await http(`http://${registry()}/v2/`, bearer(anonymous))).status, 200, 'an anonymous token');
      assert.equal((await http(`http://${registry()}/v2/`, bearer(await issuedToken(registry(), 'nixyard', WARM, CI)))).status, 200, 'a user token');
    });

    test('the realm is http://<Host>/auth/token; X-Forwarded-Proto from a proxy that is not trusted is ignored', async () => {
      const answer = await rawRequest(registry(), 'GET', '/v2/', { Host: 'registry.example:5000', 'X-Forwarded-Proto': 'https' });
      assert.equal(answer.status, 401);
      assert.equal(challengeOf(answer.headers)?.params.realm, 'http://registry.example:5000/auth/token');
    });

    test('GET /auth/token with Basic credentials: the token, access_token, expires_in (NIXYARD_AUTH_TOKEN_TTL) and issued_at; an ES256 JWT granting pull', async () => {
      const answer = await tokenGet(registry(), { service: 'nixyard', scope: `repository:${WARM}:pull` }, basic(CI));
      assert.equal(answer.status, 200, answer.body.toString());
      assert.match(answer.headers.get('content-type') ?? '', /^application\/json(;|$)/);
      const body = JSON.parse(answer.body.toString()) as TokenAnswer;
      rememberToken(body.token!, 'a token issued to ci-bot');
      assert.equal(body.access_token, body.token, 'access_token is the token');
      assert.equal(body.expires_in, 120);
      assert.match(body.issued_at ?? '', RFC3339);
      assert.ok(Math.abs(Date.parse(body.issued_at!) - Date.now()) < 60_000, 'issued now');
      assert.equal(decodeProtectedHeader(body.token!).alg, 'ES256');
      const { payload } = await jwtVerify(body.token!, keys.ec.publicKey, { issuer: 'nixyard', audience: 'nixyard', algorithms: ['ES256'] });
      assert.equal(payload.sub, CI.user);
      assert.deepEqual(payload.access, pullAccess(WARM));
      assert.equal(payload.exp! - payload.iat!, 120);
      // Documented (docs/auth.md): a token for another service is refused.
      const other = await tokenGet(registry(), { service: 'another-registry', scope: `repository:${WARM}:pull` }, basic(CI));
      assertRefused(other, 'a token request for another service', 403, 'DENIED');
    });

    test('push is reduced to pull; docker login\'s request (no scope, account, client_id, offline_token) gets a token that opens /v2/', async () => {
      const pushToo = JSON.parse((await tokenGet(registry(), { service: 'nixyard', scope: `repository:${WARM}:pull,push` }, basic(CI))).body.toString()) as TokenAnswer;
      rememberToken(pushToo.token!, 'a token issued to ci-bot');
      assert.deepEqual(decodeJwt(pushToo.token!).access, pullAccess(WARM));
      const login = await tokenGet(registry(), { account: CI.user, client_id: 'docker', offline_token: 'true', service: 'nixyard' }, basic(CI));
      assert.equal(login.status, 200, login.body.toString());
      const token = rememberToken((JSON.parse(login.body.toString()) as TokenAnswer).token!, 'a token issued to ci-bot');
      assert.deepEqual(decodeJwt(token).access ?? [], [], 'no repository without a scope');
      assert.equal((await http(`http://${registry()}/v2/`, bearer(token))).status, 200);
    });

    test('POST /auth/token with a password grant (as containerd): access_token, expires_in, issued_at, scope', async () => {
      const answer = await tokenPost(registry(), {
        grant_type: 'password',
        username: CI.user,
        password: CI.password,
        service: 'nixyard',
        scope: `repository:${WARM}:pull,push`,
        client_id: 'containerd-client',
      });
      assert.equal(answer.status, 200, answer.body.toString());
      const body = JSON.parse(answer.body.toString()) as TokenAnswer;
      rememberToken(body.access_token!, 'a token issued to ci-bot');
      assert.equal(body.expires_in, 120);
      assert.match(body.issued_at ?? '', RFC3339);
      assert.equal(body.scope, `repository:${WARM}:pull`);
      const { payload } = await jwtVerify(body.access_token!, keys.ec.publicKey, { issuer: 'nixyard', audience: 'nixyard' });
      assert.equal(payload.sub, CI.user);
      assert.deepEqual(payload.access, pullAccess(WARM));
      assert.equal((await manifest(registry(), WARM, bearer(body.access_token!))).status, 200);
    });

    test('anonymous clients pull what is built: without a token, or with an anonymous one; skopeo and ctr', async () => {
      assert.equal((await manifest(registry(), WARM)).status, 200, 'no token at all');
      const anonymous = await issuedToken(registry(), 'nixyard', WARM);
      const m = await manifest(registry(), WARM, bearer(anonymous));
      assert.equal(m.status, 200, 'an anonymous token');
      const layer = (JSON.parse(m.body.toString()) as { layers: Array<{ digest: string }> }).layers[0]!.digest;
      assert.equal((await http(`http://${registry()}/v2/${WARM}/blobs/${layer}`)).status, 200, 'a blob without a token');
      assert.equal((await http(`http://${registry()}/v2/${WARM}/tags/list`)).status, 200, 'tags/list without a token');
      await skopeoPulls(registry(), WARM);
      if (containerd) await ctrPulls(registry(), WARM, undefined);
    });

    test('an anonymous pull of an unbuilt image gets 401 with the challenge and starts no build (no token, anonymous token, skopeo)', async () => {
      assert.equal(await stored(COLD_TOKEN), false);
      await startsNoBuild(COLD_TOKEN, async () => {
        assertRefused(await manifest(registry(), COLD_TOKEN), 'cold GET without a token', 401, 'UNAUTHORIZED', { ...onRepo(COLD_TOKEN), error: 'any' });
        const anonymous = await issuedToken(registry(), 'nixyard', COLD_TOKEN);
        assertRefused(await manifest(registry(), COLD_TOKEN, bearer(anonymous)), 'cold GET with an anonymous token', 401, 'UNAUTHORIZED', { ...onRepo(COLD_TOKEN), error: 'any' });
        const head = await http(manifestUrl(registry(), COLD_TOKEN), { Accept: OCI_IMAGE_MANIFEST, ...bearer(anonymous) }, { method: 'HEAD' });
        assert.equal(head.status, 401, 'cold HEAD with an anonymous token');
        await skopeoRefused(registry(), COLD_TOKEN);
      });
    });

    test('the same pull with credentials (skopeo --src-creds) builds the image and succeeds', { timeout: BUILD_TIMEOUT_MS }, async () => {
      const builds = await buildsStarted();
      await skopeoPulls(registry(), COLD_TOKEN, CI, BUILD_TIMEOUT_MS);
      assert.equal((await buildsStarted()) - builds, 1, 'one build');
      assert.equal(await stored(COLD_TOKEN), true);
      assert.equal((await manifest(registry(), COLD_TOKEN)).status, 200, 'built now: anonymous clients may pull it');
    });

    realClients('builds, token service', registry);

    // Failures last, as above. This API trusts no proxy, so these all count against 127.0.0.1.
    test('a wrong password gets 401 UNAUTHORIZED from /auth/token (GET and POST), a malformed token 401 invalid_token on /v2/', async () => {
      assertRefused(await http(`http://${registry()}/v2/`, bearer('not-a-token')), 'a malformed token', 401, 'UNAUTHORIZED', { ...onBase(), error: 'invalid_token' });
      const wrong = { user: CI.user, password: WRONG_PASSWORD };
      assertRefused(await tokenGet(registry(), { service: 'nixyard', scope: `repository:${WARM}:pull` }, { ...basic(wrong) }), 'GET, wrong password', 401, 'UNAUTHORIZED');
      assertRefused(await tokenGet(registry(), { service: 'nixyard' }, { ...basic({ user: 'nobody', password: WRONG_PASSWORD }) }), 'GET, unknown user', 401, 'UNAUTHORIZED');
      assertRefused(
        await tokenPost(registry(), { grant_type: 'password', username: CI.user, password: WRONG_PASSWORD, service: 'nixyard', scope: `repository:${WARM}:pull` }),
        'POST, wrong password',
        401,
        'UNAUTHORIZED',
      );
    });
  });

  describe('NIXYARD_PULL_AUTH=all, Basic (htpasswd)', () => {
    const registry = () => apis.basicAll.registry;
    const challenge = BASIC_CHALLENGE;

    test('every /v2/ request needs a user: /v2/, manifests, blobs and tags/list answer 401 with the challenge to anonymous clients', async () => {
      const m = await manifest(registry(), WARM, basic(CI));
      assert.equal(m.status, 200);
      const layer = (JSON.parse(m.body.toString()) as { layers: Array<{ digest: string }> }).layers[0]!.digest;
      for (const path of ['/v2/', `/v2/${WARM}/manifests/latest`, `/v2/${WARM}/blobs/${layer}`, `/v2/${WARM}/tags/list`]) {
        assertRefused(await http(`http://${registry()}${path}`), `anonymous ${path}`, 401, 'UNAUTHORIZED', challenge);
        assertRefused(await http(`http://${registry()}${path}`, EMPTY_BASIC), `empty credentials ${path}`, 401, 'UNAUTHORIZED', challenge);
        assert.equal((await http(`http://${registry()}${path}`, basic(ALICE))).status, 200, `a user: ${path}`);
      }
      await skopeoRefused(registry(), WARM);
    });

    realClients('all, Basic', registry);

    test('the htpasswd file is read again when it changes: a user added logs in, a user removed is refused, without a restart', { timeout: 60_000 }, async () => {
      const late: User = { user: 'late', password: newPassword('password of late') };
      secret(Buffer.from(`${late.user}:${late.password}`).toString('base64'), 'Basic credentials of late');
      await succeeds('htpasswd', ['-B', '-b', htpasswdFile, late.user, late.password]);
      const entry = readFileSync(htpasswdFile, 'utf8').split('\n').find((l) => l.startsWith('late:'))!;
      secret(entry.slice('late:'.length), 'the bcrypt hash of late');
      const answers = async (status: number) => {
        for (const deadline = Date.now() + 20_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 500))) {
          if ((await http(`http://${registry()}/v2/`, { ...basic(late), ...fromElsewhere() })).status === status) return true;
        }
        return false;
      };
      assert.ok(await answers(200), 'the added user logs in within 20 s');
      await succeeds('htpasswd', ['-D', htpasswdFile, late.user]);
      assert.ok(await answers(401), 'the removed user is refused within 20 s');
    });

    test('a wrong password or an unknown user: 401 with the challenge; podman login refuses it', async () => {
      assertRefused(await http(`http://${registry()}/v2/`, { ...basic({ user: CI.user, password: WRONG_PASSWORD }), ...fromElsewhere() }), 'a wrong password', 401, 'UNAUTHORIZED', challenge);
      assertRefused(await manifest(registry(), WARM, { ...basic({ user: 'nobody', password: WRONG_PASSWORD }), ...fromElsewhere() }), 'an unknown user', 401, 'UNAUTHORIZED', challenge);
      if (!podmanMissing) {
        const authfile = join(work.path, 'podman-auth-wrong.json');
        writeFileSync(authfile, '{"auths":{}}');
        await fails('podman', podman('login', '--authfile', authfile, '--tls-verify=false', '--username', CI.user, '--password-stdin', registry()), { input: WRONG_PASSWORD });
      }
    });

    test('failed logins count in nixyard_auth_failures_total{reason}; repeated failures from one address get slower answers, other addresses do not', async () => {
      const failures = async () => {
        const text = await (await fetch(apis.basicAll.metricsUrl)).text();
        return family(parseExposition(text, 'API /metrics'), 'nixyard_auth_failures_total', 'counter', ['reason']).samples.reduce((sum, s) => sum + s.value, 0);
      };
      const before = await failures();
      const attacker = { 'X-Forwarded-For': '198.51.100.7' };
      const wrong = basic({ user: CI.user, password: WRONG_PASSWORD });
      const times: number[] = [];
      for (let i = 0; i < 8; i++) {
        const answer = await http(`http://${registry()}/v2/`, { ...wrong, ...attacker });
        assert.equal(answer.status, 401, `failure ${i + 1}`);
        times.push(answer.ms);
      }
      assert.ok((await failures()) - before >= 8, 'eight failures counted');
      const [first, last] = [times[0]!, times.at(-1)!];
      assert.ok(last >= first + 200, `the 8th failure is answered more slowly than the first: ${times.map((t) => t.toFixed(0)).join(', ')} ms`);
      const other = await http(`http://${registry()}/v2/`, { ...basic(CI), 'X-Forwarded-For': '198.51.100.8' });
      assert.equal(other.status, 200);
      assert.ok(other.ms < last, `a user from another address is not slowed: ${other.ms.toFixed(0)} ms vs ${last.toFixed(0)} ms`);
    });
  });

  describe('NIXYARD_PULL_AUTH=all, token service (RSA)', () => {
    const registry = () => apis.tokenAll.registry;
    const realm = () => `http://${registry()}/auth/token`;
    const onRepo = (name: string, error?: string) => ({ scheme: 'Bearer', params: { realm: realm(), service: 'registry.test', scope: `repository:${name}:pull` }, ...(error ? { error } : {}) });
    let header: Record<string, unknown>;
    const valid = (over: Record<string, unknown> = {}) => claims('nixyard-test', 'registry.test', WARM, over);

    before(async () => {
      // Forged tokens carry the header of a real one (alg, kid, typ), so only what a test changes differs.
      const real = await issuedToken(registry(), 'registry.test', WARM, CI);
      header = { ...decodeProtectedHeader(real) };
    });

    test('every /v2/ request needs a user: anonymous clients get 401 (the challenge names the service), /auth/token gives them none', async () => {
      assertRefused(await http(`http://${registry()}/v2/`), '/v2/ without a token', 401, 'UNAUTHORIZED', { scheme: 'Bearer', params: { realm: realm(), service: 'registry.test' } });
      assertRefused(await manifest(registry(), WARM), 'a warm manifest without a token', 401, 'UNAUTHORIZED', { ...onRepo(WARM), error: 'any' });
      assertRefused(await tokenGet(registry(), { service: 'registry.test', scope: `repository:${WARM}:pull` }), 'an anonymous token request', 401, 'UNAUTHORIZED');
      assertRefused(await tokenPost(registry(), { grant_type: 'password', username: '', password: '', service: 'registry.test', scope: `repository:${WARM}:pull` }), 'an anonymous POST', 401, 'UNAUTHORIZED');
      await skopeoRefused(registry(), WARM);
      if (containerd) {
        const ran = await ctrPull(registry(), WARM, undefined);
        assert.notEqual(ran.code, 0, 'ctr image pull without --user is refused');
      }
    });

    test('tokens are RS256 with NIXYARD_AUTH_ISSUER as iss, NIXYARD_AUTH_SERVICE as aud, and a 300 s default lifetime', async () => {
      const answer = await tokenGet(registry(), { service: 'registry.test', scope: `repository:${WARM}:pull` }, basic(ALICE));
      const body = JSON.parse(answer.body.toString()) as TokenAnswer;
      rememberToken(body.token!, 'a token issued to alice');
      assert.equal(body.expires_in, 300);
      assert.equal(decodeProtectedHeader(body.token!).alg, 'RS256');
      const { payload } = await jwtVerify(body.token!, keys.rsa.publicKey, { issuer: 'nixyard-test', audience: 'registry.test', algorithms: ['RS256'] });
      assert.equal(payload.sub, ALICE.user);
      assert.equal(payload.exp! - payload.iat!, 300);
    });

    test('a trusted proxy\'s X-Forwarded-Proto: https makes the realm https', async () => {
      const answer = await rawRequest(registry(), 'GET', '/v2/', { Host: 'registry.example', 'X-Forwarded-Proto': 'https', 'X-Forwarded-For': '203.0.113.9' });
      assert.equal(challengeOf(answer.headers)?.params.realm, 'https://registry.example/auth/token');
    });

    realClients('all, token service', registry);

    test('a token signed by the API\'s key with valid claims is accepted (so the refusals below are about what they change)', async () => {
      assert.equal((await manifest(registry(), WARM, bearer(await forge(valid(), keys.rsa.privateKey, header, 'a forged valid token')))).status, 200);
    });

    test('refused with 401 UNAUTHORIZED and error="invalid_token": expired, not yet valid, signed by another key, alg none, HS256 with the public key, wrong issuer, wrong audience, garbage', async () => {
      const t = now();
      const cases: Array<[string, string]> = [
        ['expired', await forge(valid({ iat: t - 900, nbf: t - 900, exp: t - 600 }), keys.rsa.privateKey, header, 'an expired token')],
        ['not yet valid', await forge(valid({ nbf: t + 600, exp: t + 900 }), keys.rsa.privateKey, header, 'a token not yet valid')],
        ['signed by another key', await forge(valid(), keys.strangerRsa.privateKey, header, 'a token signed by another key')],
        ['alg: none', rememberToken(new UnsecuredJWT(valid()).encode(), 'an alg none token')],
        ['HS256 keyed with the public key', await forge(valid(), new TextEncoder().encode(keys.rsa.publicPem), { ...header, alg: 'HS256' }, 'an HS256 token')],
        ['wrong issuer', await forge(valid({ iss: 'someone-else' }), keys.rsa.privateKey, header, 'a token of another issuer')],
        ['wrong audience', await forge(valid({ aud: 'another-registry' }), keys.rsa.privateKey, header, 'a token for another audience')],
        ['not a JWT', 'not-a-jwt'],
      ];
      const m = await manifest(registry(), WARM, bearer(await issuedToken(registry(), 'registry.test', WARM, CI)));
      const layer = (JSON.parse(m.body.toString()) as { layers: Array<{ digest: string }> }).layers[0]!.digest;
      await eachCase([
        ...cases.map(([what, token]): [string, () => Promise<void>] => [
          what,
          async () => assertRefused(await manifest(registry(), WARM, { ...bearer(token), ...fromElsewhere() }), what, 401, 'UNAUTHORIZED', onRepo(WARM, 'invalid_token')),
        ]),
        [
          'expired, on a blob',
          async () =>
            assertRefused(await http(`http://${registry()}/v2/${WARM}/blobs/${layer}`, { ...bearer(cases[0]![1]), ...fromElsewhere() }), 'expired, on a blob', 401, 'UNAUTHORIZED', onRepo(WARM, 'invalid_token')),
        ],
      ]);
    });

    test('a token for another repository: 401 with error="insufficient_scope"', async () => {
      const forJq = await issuedToken(registry(), 'registry.test', 'jq', CI);
      assertRefused(await manifest(registry(), WARM, { ...bearer(forJq), ...fromElsewhere() }), 'a token for jq', 401, 'UNAUTHORIZED', onRepo(WARM, 'insufficient_scope'));
      const forged = await forge(valid({ access: pullAccess('shell/jq') }), keys.rsa.privateKey, header, 'a token for another repository');
      assertRefused(await manifest(registry(), WARM, { ...bearer(forged), ...fromElsewhere() }), 'a forged token for shell/jq', 401, 'UNAUTHORIZED', onRepo(WARM, 'insufficient_scope'));
    });

    test('a valid token that names the repository but grants no pull: 403 DENIED', async () => {
      for (const actions of [['push'], []]) {
        const token = await forge(valid({ access: pullAccess(WARM, actions) }), keys.rsa.privateKey, header, 'a token without pull');
        assertRefused(await manifest(registry(), WARM, { ...bearer(token), ...fromElsewhere() }), `actions ${JSON.stringify(actions)}`, 403, 'DENIED');
      }
    });

    test('an anonymous token (no sub), valid for builds mode, does not open an all-mode registry', async () => {
      const token = await forge(valid({ sub: undefined }), keys.rsa.privateKey, header, 'a forged anonymous token');
      assertRefused(await manifest(registry(), WARM, { ...bearer(token), ...fromElsewhere() }), 'an anonymous token', 401, 'UNAUTHORIZED', { ...onRepo(WARM), error: 'any' });
    });

    test('the admin API is separate: neither a user\'s Basic credentials nor a pull token open it; the admin token still does', async () => {
      const admin = `http://${registry()}/api/v1/prebuilds`;
      const withBasic = await http(admin, basic(CI));
      assert.equal(withBasic.status, 401, 'Basic credentials are no bearer token');
      assert.equal((JSON.parse(withBasic.body.toString()) as RegistryErrorBody).errors[0]!.code, 'UNAUTHORIZED');
      const withToken = await http(admin, bearer(await issuedToken(registry(), 'registry.test', WARM, CI)));
      assert.equal(withToken.status, 403, 'a pull token is not the admin token');
      assert.equal((JSON.parse(withToken.body.toString()) as RegistryErrorBody).errors[0]!.code, 'DENIED');
      assert.equal((await http(admin, bearer(ADMIN_TOKEN))).status, 200);
    });
  });

  describe('an external token service (NIXYARD_AUTH_JWKS, NIXYARD_AUTH_ISSUER, NIXYARD_AUTH_REALM)', () => {
    const challenge = (name?: string, error?: string) => ({
      scheme: 'Bearer',
      params: { realm: tokens.realm, service: EXTERNAL_SERVICE, ...(name ? { scope: `repository:${name}:pull` } : {}) },
      ...(error ? { error } : {}),
    });
    const externalToken = (over: Record<string, unknown> = {}, key = keys.external.privateKey, what = 'a token forged for the external service') =>
      forge(claims(EXTERNAL_ISSUER, EXTERNAL_SERVICE, WARM, { sub: EXTERNAL.user, ...over }), key, { alg: 'ES256', kid: 'external-1', typ: 'JWT' }, what);

    test('JWKS file, all: the challenge names the configured realm and service; /auth/token answers 404; the service\'s tokens open it', async () => {
      const registry = apis.externalFile.registry;
      assertRefused(await http(`http://${registry}/v2/`), '/v2/ without a token', 401, 'UNAUTHORIZED', challenge());
      assertRefused(await manifest(registry, WARM), 'a manifest without a token', 401, 'UNAUTHORIZED', { ...challenge(WARM), error: 'any' });
      assert.equal((await tokenGet(registry, { service: EXTERNAL_SERVICE }, basic(CI))).status, 404, 'no token service here');
      assert.equal((await tokenPost(registry, { grant_type: 'password', username: CI.user, password: CI.password, service: EXTERNAL_SERVICE })).status, 404);
      assert.equal((await manifest(registry, WARM, bearer(await externalToken()))).status, 200);
    });

    test('JWKS file: refused with 401 invalid_token: signed by another key, wrong issuer, wrong audience, expired, alg none; an anonymous token does not open all', async () => {
      const registry = apis.externalFile.registry;
      const t = now();
      const cases: Array<[string, string]> = [
        ['signed by another key', await externalToken({}, keys.stranger.privateKey, 'a token signed by another key')],
        ['wrong issuer', await externalToken({ iss: 'nixyard' })],
        ['wrong audience', await externalToken({ aud: 'nixyard' })],
        ['expired', await externalToken({ iat: t - 900, nbf: t - 900, exp: t - 600 })],
        ['alg: none', rememberToken(new UnsecuredJWT(claims(EXTERNAL_ISSUER, EXTERNAL_SERVICE, WARM, { sub: EXTERNAL.user })).encode(), 'an alg none token')],
      ];
      await eachCase(
        cases.map(([what, token]): [string, () => Promise<void>] => [
          what,
          async () => assertRefused(await manifest(registry, WARM, { ...bearer(token), ...fromElsewhere() }), what, 401, 'UNAUTHORIZED', challenge(WARM, 'invalid_token')),
        ]),
      );
      assertRefused(await manifest(registry, WARM, { ...bearer(await externalToken({ access: pullAccess('jq') })), ...fromElsewhere() }), 'a token for jq', 401, 'UNAUTHORIZED', challenge(WARM, 'insufficient_scope'));
      assertRefused(await manifest(registry, WARM, { ...bearer(await externalToken({ sub: undefined })), ...fromElsewhere() }), 'an anonymous token', 401, 'UNAUTHORIZED', { ...challenge(WARM), error: 'any' });
    });

    test('JWKS file: skopeo --src-creds, ctr image pull --user (password grant) and curl get their tokens from the external realm', { timeout: STEP_TIMEOUT_MS * 4 }, async () => {
      const registry = apis.externalFile.registry;
      await skopeoPulls(registry, WARM, EXTERNAL);
      await skopeoRefused(registry, WARM, { user: EXTERNAL.user, password: WRONG_PASSWORD });
      if (containerd) await ctrPulls(registry, WARM, EXTERNAL);
      await curlFlow(registry, WARM, EXTERNAL);
    });

    test('JWKS URL, builds: keys are fetched from the URL; anonymous tokens pull what is built; podman login and pull; another key is refused', { timeout: STEP_TIMEOUT_MS * 3 }, async () => {
      const registry = apis.externalUrl.registry;
      assert.equal((await manifest(registry, WARM, bearer(await externalToken()))).status, 200);
      assert.ok(tokens.jwksFetches > 0, 'the API fetched the JWKS URL');
      assertRefused(await manifest(registry, WARM, { ...bearer(await externalToken({}, keys.stranger.privateKey, 'a token signed by another key')), ...fromElsewhere() }), 'another key', 401, 'UNAUTHORIZED', challenge(WARM, 'invalid_token'));
      await skopeoPulls(registry, WARM);
      if (!podmanMissing) await podmanPulls(registry, WARM, EXTERNAL);
    });

    test('PEM public key, all: the service\'s tokens open it (curl); another key, and HS256 keyed with the public key, are refused', async () => {
      const registry = apis.externalPem.registry;
      await curlFlow(registry, WARM, EXTERNAL);
      assertRefused(await manifest(registry, WARM, { ...bearer(await externalToken({}, keys.stranger.privateKey, 'a token signed by another key')), ...fromElsewhere() }), 'another key', 401, 'UNAUTHORIZED', challenge(WARM, 'invalid_token'));
      const hs256 = await forge(
        claims(EXTERNAL_ISSUER, EXTERNAL_SERVICE, WARM, { sub: EXTERNAL.user }),
        new TextEncoder().encode(keys.external.publicPem),
        { alg: 'HS256', typ: 'JWT' },
        'an HS256 token',
      );
      assertRefused(await manifest(registry, WARM, { ...bearer(hs256), ...fromElsewhere() }), 'HS256 keyed with the public key', 401, 'UNAUTHORIZED', challenge(WARM, 'invalid_token'));
    });
  });

  describe('start-up checks', () => {
    /** Starts an API that must refuse to start; returns what it printed. */
    async function refusesToStart(env: Record<string, string>): Promise<string> {
      const api = startRole('api', { env: { ...stack.env, PORT: String(await freePort()), ...env }, stdio: 'pipe' });
      let output = '';
      api.child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
      api.child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
      const code = await Promise.race([
        new Promise<number | null>((exited) => api.child.once('exit', (c) => exited(c))),
        new Promise<'running'>((r) => setTimeout(() => r('running'), 30_000)),
      ]);
      await api.stop();
      startupOutputs.push(output);
      assert.notEqual(code, 'running', `the API should refuse to start: ${output.slice(-500)}`);
      assert.notEqual(code, 0, 'exit status');
      return output;
    }

    test('an htpasswd file with a non-bcrypt entry (MD5, SHA-1, crypt, plain text) stops the API, naming the variable and no hash', async () => {
      for (const flag of ['-m', '-s', '-d', '-p']) {
        const file = join(work.path, `htpasswd${flag}`);
        writeFileSync(file, readFileSync(htpasswdFile));
        const password = newPassword(`a password of an htpasswd ${flag} entry`);
        await succeeds('htpasswd', ['-b', flag, file, 'legacy', password]);
        const entry = readFileSync(file, 'utf8').split('\n').find((l) => l.startsWith('legacy:'))!;
        const hash = secret(entry.slice('legacy:'.length), `an htpasswd ${flag} hash`);
        assert.doesNotMatch(hash, /^\$2[aby]\$/, `htpasswd ${flag} writes no bcrypt`);
        const output = await refusesToStart({ NIXYARD_PULL_AUTH: 'builds', NIXYARD_HTPASSWD: file });
        assert.match(output, /NIXYARD_HTPASSWD/, `htpasswd ${flag}: the message names the variable`);
        assert.ok(!output.includes(hash), `htpasswd ${flag}: the message does not show the hash`);
      }
    });

    test('an unknown NIXYARD_PULL_AUTH stops the API, naming the variable', async () => {
      assert.match(await refusesToStart({ NIXYARD_PULL_AUTH: 'sometimes', NIXYARD_HTPASSWD: htpasswdFile }), /NIXYARD_PULL_AUTH/);
    });
  });

  describe('no secret reaches the logs, /metrics or the status page', () => {
    function leaks(text: string): string[] {
      return [...secrets].filter(([value]) => text.includes(value)).map(([, what]) => what);
    }

    test('/metrics and / of every API hold no password, token or hash', async () => {
      assert.ok(secrets.size > 30, `the suite used secrets (${secrets.size})`);
      for (const registry of [none, ...Object.values(apis).map((a) => a.registry)]) {
        for (const path of ['/metrics', '/']) {
          const answer = await http(`http://${registry}${path}`);
          assert.deepEqual(leaks(answer.body.toString()), [], `${registry}${path}`);
        }
      }
    });

    test('the debug logs of every API and the worker, and the refusals at start-up, hold no password, token or hash', async () => {
      await stack.stop(); // flushes every process's log
      stackStopped = true;
      const files = readdirSync(logDir);
      assert.ok(files.filter((f) => f.startsWith('api-')).length >= 2 * 9, `every API's output was captured: ${files.join(', ')}`);
      let apiLog = '';
      for (const file of files) {
        const text = readFileSync(join(logDir, file), 'utf8');
        if (file.startsWith('api-') && file.endsWith('.stdout.log')) apiLog += text;
        assert.deepEqual(leaks(text), [], `${file} leaks`);
      }
      // The logs were at debug and saw the credentials: the grep above had something to look at.
      assert.match(apiLog, /"requestHeaders"/, 'access log lines carry the request headers at debug');
      assert.match(apiLog, /"authorization":"\[redacted\]"/, 'requests with credentials were logged');
      assert.match(apiLog, /"status":401/, 'refusals were logged');
      for (const output of startupOutputs) assert.deepEqual(leaks(output), [], 'start-up refusal output');
    });
  });

  /** The four clients against one API: skopeo --src-creds, podman login then pull, ctr --user, curl. */
  function realClients(label: string, registry: () => string): void {
    test(`${label}: skopeo copy --src-creds`, async () => {
      await skopeoPulls(registry(), WARM, CI);
    });
    test(`${label}: podman login, then podman pull`, { skip: podmanMissing, timeout: STEP_TIMEOUT_MS * 2 }, async () => {
      await podmanPulls(registry(), WARM, ALICE);
    });
    test(`${label}: ctr image pull --user`, { skip: containerdMissing }, async () => {
      await ctrPulls(registry(), WARM, CI);
    });
    test(`${label}: the raw flow with curl`, async () => {
      await curlFlow(registry(), WARM, CI);
    });
  }
});

