// Pull tokens: the JWTs of the Docker token flow, signed by Nixyard's own token service or by an
// operator's (docs/auth.md). This module holds the one contract both sides share: the claims (iss,
// aud, sub, exp, and `access`, the repositories and actions granted), how a token is signed
// (NIXYARD_AUTH_TOKEN_KEY) and how one is believed (signature, issuer, audience, expiry). All
// cryptography is jose's; a token whose header says `alg: none`, or any algorithm the key is not
// for, never verifies.

import { createPrivateKey, createPublicKey, randomUUID, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  SignJWT,
  calculateJwkThumbprint,
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  exportJWK,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { LRUCache } from 'lru-cache';

/** What a token grants: repository name → actions (only `pull` means anything to Nixyard). */
export type Access = ReadonlyMap<string, ReadonlySet<string>>;

export interface TokenClaims {
  /** The user; undefined for an anonymous token. */
  user: string | undefined;
  access: Access;
}

/** Why a token was not believed, as the failure metric counts it. */
export type TokenProblem = 'expired_token' | 'invalid_token';

export class TokenRejected extends Error {
  override readonly name = 'TokenRejected';
  constructor(readonly problem: TokenProblem, message: string) {
    super(message);
  }
}

/** The algorithm a key signs with: the one its type and curve allow, so none is ever negotiated. */
function algorithmOf(key: KeyObject): string {
  const type = key.asymmetricKeyType;
  if (type === 'rsa') return 'RS256';
  if (type === 'ed25519') return 'EdDSA';
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return 'ES256';
    if (curve === 'secp384r1') return 'ES384';
    if (curve === 'secp521r1') return 'ES512';
  }
  throw new Error(`unsupported key type ${type ?? 'unknown'} (use EC P-256, RSA or Ed25519)`);
}

/** The `access` claim as the token flow writes it: `[{type: "repository", name, actions}]`. */
export function accessClaim(access: Access): Array<{ type: 'repository'; name: string; actions: string[] }> {
  return [...access].map(([name, actions]) => ({ type: 'repository', name, actions: [...actions] }));
}

function accessOf(payload: JWTPayload): Access {
  const granted = new Map<string, Set<string>>();
  const claim = payload.access;
  if (claim === undefined) return granted;
  if (!Array.isArray(claim)) throw new TokenRejected('invalid_token', 'the token\'s access claim is not a list');
  for (const entry of claim as unknown[]) {
    if (typeof entry !== 'object' || entry === null) continue;
    const { type, name, actions } = entry as Record<string, unknown>;
    if (type !== 'repository' || typeof name !== 'string' || !Array.isArray(actions)) continue;
    const set = granted.get(name) ?? new Set<string>();
    for (const action of actions) if (typeof action === 'string') set.add(action);
    granted.set(name, set);
  }
  return granted;
}

export interface TokenSettings {
  issuer: string;
  /** The service: the tokens' audience. */
  audience: string;
}

/** Signs tokens with NIXYARD_AUTH_TOKEN_KEY, for /auth/token. */
export class TokenSigner {
  readonly algorithm: string;
  readonly publicKey: KeyObject;
  private constructor(
    private readonly key: KeyObject,
    private readonly keyId: string,
    private readonly settings: TokenSettings & { ttlSeconds: number },
  ) {
    this.algorithm = algorithmOf(key);
    this.publicKey = createPublicKey(key);
  }

  static async fromPemFile(path: string, settings: TokenSettings & { ttlSeconds: number }): Promise<TokenSigner> {
    let key: KeyObject;
    try {
      key = createPrivateKey(readFileSync(path));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'EACCES') throw err;
      throw new Error(`${path}: not a PEM private key (write one with \`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256\`)`);
    }
    algorithmOf(key);
    // The key id is the public key's RFC 7638 thumbprint: verifiers with several keys pick by it.
    const keyId = await calculateJwkThumbprint(await exportJWK(createPublicKey(key)));
    return new TokenSigner(key, keyId, settings);
  }

  get ttlSeconds(): number {
    return this.settings.ttlSeconds;
  }

  async sign(claims: TokenClaims, now = new Date()): Promise<{ token: string; issuedAt: Date; expiresIn: number }> {
    const issuedAt = Math.floor(now.getTime() / 1000);
    const jwt = new SignJWT({ access: accessClaim(claims.access) })
      .setProtectedHeader({ alg: this.algorithm, typ: 'JWT', kid: this.keyId })
      .setIssuer(this.settings.issuer)
      .setAudience(this.settings.audience)
      .setIssuedAt(issuedAt)
      .setNotBefore(issuedAt)
      .setExpirationTime(issuedAt + this.settings.ttlSeconds)
      .setJti(randomUUID());
    if (claims.user !== undefined) jwt.setSubject(claims.user);
    return { token: await jwt.sign(this.key), issuedAt: new Date(issuedAt * 1000), expiresIn: this.settings.ttlSeconds };
  }
}

/** Where a verifier's keys come from: one key, or a JWKS (a file or an external service's URL). */
export type VerificationKeys = KeyObject | JWTVerifyGetKey;

/** NIXYARD_AUTH_JWKS: an http(s) URL of a JWKS, or a file holding a JWKS or a PEM public key. */
export function verificationKeysFrom(location: string): VerificationKeys {
  if (/^https?:/.test(location)) return createRemoteJWKSet(new URL(location), { timeoutDuration: 5_000, cooldownDuration: 30_000 });
  const text = readFileSync(location, 'utf8');
  if (text.trimStart().startsWith('{')) return createLocalJWKSet(JSON.parse(text) as Parameters<typeof createLocalJWKSet>[0]);
  return createPublicKey(text);
}

/**
 * The algorithms a token may name: asymmetric ones only, so that a public key can never be taken
 * for an HMAC secret; with a single key, the one algorithm that key is for.
 */
const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

/** Verified tokens are remembered until they expire, at most this long (a key may be withdrawn). */
const VERIFIED_TTL_MS = 60_000;

export class TokenVerifier {
  private readonly verified = new LRUCache<string, TokenClaims>({ max: 10_000, ttl: VERIFIED_TTL_MS });
  private readonly algorithms: string[];
  constructor(
    private readonly keys: VerificationKeys,
    private readonly settings: TokenSettings,
  ) {
    this.algorithms =
      typeof keys === 'function' ? ASYMMETRIC_ALGORITHMS : keys.asymmetricKeyType === 'rsa' ? ASYMMETRIC_ALGORITHMS.filter((alg) => /^[RP]S/.test(alg)) : [algorithmOf(keys)];
  }

  /** The token's claims; TokenRejected when its signature, issuer, audience or times do not check out. */
  async verify(token: string): Promise<TokenClaims> {
    const known = this.verified.get(token);
    if (known) return known;
    let payload: JWTPayload;
    try {
      const options = { issuer: this.settings.issuer, audience: this.settings.audience, algorithms: this.algorithms, requiredClaims: ['exp'], clockTolerance: 30 };
      ({ payload } =
        typeof this.keys === 'function' ? await jwtVerify(token, this.keys, options) : await jwtVerify(token, this.keys, options));
    } catch (err) {
      if (err instanceof errors.JWTExpired) throw new TokenRejected('expired_token', 'the token has expired');
      if (err instanceof errors.JOSEError) throw new TokenRejected('invalid_token', `the token is not valid here (${err.code})`);
      // Whatever else a crafted token makes the verifier throw, it is still a token not believed.
      throw new TokenRejected('invalid_token', 'the token is not valid here');
    }
    const claims: TokenClaims = { user: typeof payload.sub === 'string' && payload.sub !== '' ? payload.sub : undefined, access: accessOf(payload) };
    const lifetimeMs = (payload.exp ?? 0) * 1000 - Date.now();
    this.verified.set(token, claims, { ttl: Math.max(1, Math.min(VERIFIED_TTL_MS, lifetimeMs)) });
    return claims;
  }
}
