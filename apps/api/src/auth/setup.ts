// Pull authentication from the configuration: which users (htpasswd), which tokens (Nixyard's own
// key, or an external service's public keys), which challenge. main.ts loads this module only when
// NIXYARD_PULL_AUTH is not `none`, so a registry without auth starts and serves without jose or
// bcrypt in memory. Files are read here, at start-up: a missing or unusable one stops the API with
// one line naming it, never later at the first login.

import type { IncomingMessage } from 'node:http';
import type { Config } from '@nixyard/core';
import { Htpasswd } from './htpasswd.js';
import { LoginThrottle } from './login-throttle.js';
import type { AuthFailureReason } from './failure-reasons.js';
import { PullAuth } from './pull-auth.js';
import { tokenEndpoint } from './token-endpoint.js';
import { TokenSigner, TokenVerifier, verificationKeysFrom } from './tokens.js';

export interface AuthSetup {
  pullAuth: PullAuth;
  /** /auth/token, when Nixyard issues tokens itself. */
  tokenEndpoint: ReturnType<typeof tokenEndpoint> | undefined;
  /** For the start-up log line: no secret in it. */
  summary: Record<string, string | number>;
}

export async function setUpAuth(
  config: Config['auth'],
  options: { fromTrustedProxy(req: IncomingMessage): boolean; onFailure(reason: AuthFailureReason): void },
): Promise<AuthSetup> {
  if (config.pull === 'none') throw new Error('setUpAuth: NIXYARD_PULL_AUTH is none');
  const htpasswd = config.htpasswdPath === undefined ? undefined : await naming('NIXYARD_HTPASSWD', async () => new Htpasswd(config.htpasswdPath!));
  const settings = { issuer: config.issuer, audience: config.service };
  const signer =
    config.tokenKeyPath === undefined
      ? undefined
      : await naming('NIXYARD_AUTH_TOKEN_KEY', () => TokenSigner.fromPemFile(config.tokenKeyPath!, { ...settings, ttlSeconds: config.tokenTtlSeconds }));
  const keys = signer ? signer.publicKey : config.jwks === undefined ? undefined : await naming('NIXYARD_AUTH_JWKS', async () => verificationKeysFrom(config.jwks!));
  const pullAuth = new PullAuth({
    mode: config.pull,
    challenge: { scheme: keys ? 'bearer' : 'basic', service: config.service, realm: config.realm, fromTrustedProxy: options.fromTrustedProxy },
    htpasswd,
    tokens: keys ? new TokenVerifier(keys, settings) : undefined,
    throttle: new LoginThrottle(),
    onFailure: options.onFailure,
  });
  return {
    pullAuth,
    tokenEndpoint: signer ? tokenEndpoint({ auth: pullAuth, signer, service: config.service }) : undefined,
    summary: {
      pull: config.pull,
      challenge: keys ? 'bearer' : 'basic',
      users: htpasswd?.size ?? 0,
      tokens: signer ? `issued here (${signer.algorithm}, ${config.tokenTtlSeconds} s)` : keys ? `verified for ${config.issuer}` : 'none',
    },
  };
}

/** Runs a start-up step; its error names the variable whose file it could not use. */
async function naming<T>(variable: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    throw new Error(`${variable}: ${(err as Error).message}`, { cause: err });
  }
}
