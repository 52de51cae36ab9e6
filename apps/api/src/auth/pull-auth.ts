// Who may pull, and who may make a pull build (NIXYARD_PULL_AUTH, docs/auth.md):
//   none    anonymous pulls build and serve (this module is not even loaded);
//   builds  anyone pulls what is already built; starting a build needs a logged-in user;
//   all     every /v2/ request needs a logged-in user.
// A request proves who it is with htpasswd credentials (Basic) or a token (Bearer) whose `access`
// claim must name the repository with `pull`. Every refusal is a registry error with the challenge
// that tells the client how to log in; failed logins are counted by reason and slowed down per
// address (login-throttle.ts). Nothing here logs or keeps a credential.

import type { IncomingMessage } from 'node:http';
import { RegistryError, type PullAuthMode, type RegistryPath } from '@nixyard/core';
import type { AuthFailureReason } from './failure-reasons.js';
import { challengeFor, type ChallengeError, type ChallengeSettings } from './challenge.js';
import type { Htpasswd } from './htpasswd.js';
import type { LoginThrottle } from './login-throttle.js';
import { TokenRejected, type Access, type TokenVerifier } from './tokens.js';


export interface Principal {
  /** The logged-in user; undefined for an anonymous client (no credentials, or an anonymous token). */
  user: string | undefined;
  /** Whether the client sent credentials that checked out (a password, or any valid token). */
  proved: boolean;
  /** A token's grants; undefined for a password user, who may pull every repository. */
  access: Access | undefined;
}

const ANONYMOUS: Principal = Object.freeze({ user: undefined, proved: false, access: undefined });

/** Basic credentials: `user:password`, base64. Undefined when the header is not well formed. */
export function parseBasic(value: string): { user: string; password: string } | undefined {
  const encoded = value.slice('basic '.length).trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) return undefined;
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

export interface PullAuthDeps {
  mode: Exclude<PullAuthMode, 'none'>;
  challenge: ChallengeSettings;
  /** Users for Basic credentials and for the token service; undefined with an external token service. */
  htpasswd: Pick<Htpasswd, 'check'> | undefined;
  /** Checks Bearer tokens; undefined with Basic alone. */
  tokens: Pick<TokenVerifier, 'verify'> | undefined;
  throttle: Pick<LoginThrottle, 'wait' | 'failed'>;
  onFailure(reason: AuthFailureReason): void;
}

export class PullAuth {
  constructor(private readonly deps: PullAuthDeps) {}

  get mode(): PullAuthDeps['mode'] {
    return this.deps.mode;
  }

  /** A user's password, checked (slowly, after recent failures from `client`). */
  async checkPassword(user: string, password: string, client: string): Promise<'ok' | AuthFailureReason> {
    const { htpasswd, throttle } = this.deps;
    if (!htpasswd) return 'unsupported_scheme';
    await throttle.wait(client);
    return htpasswd.check(user, password);
  }

  /** Counts a failed login from `client`, and makes its next attempts wait. */
  async failed(reason: AuthFailureReason, client: string): Promise<void> {
    this.deps.onFailure(reason);
    this.deps.throttle.failed(client);
    await this.deps.throttle.wait(client);
  }

  /**
   * Who sent `req`, by its Authorization header; a 401 for credentials that do not check out.
   * `name` is the repository the request is about, for the challenge's scope.
   */
  async authenticate(req: IncomingMessage, client: string, name: string | undefined): Promise<Principal> {
    const header = req.headers.authorization;
    if (header === undefined || header === '') return ANONYMOUS;
    const scheme = header.slice(0, header.indexOf(' ') + 1).toLowerCase();
    if (scheme === 'basic ') {
      const credentials = parseBasic(header);
      if (!credentials) return this.refuse(req, client, name, 'malformed');
      // docker and containers/image send an empty pair when they have no credentials.
      if (credentials.user === '' && credentials.password === '') return ANONYMOUS;
      const checked = await this.checkPassword(credentials.user, credentials.password, client);
      if (checked !== 'ok') return this.refuse(req, client, name, checked);
      return { user: credentials.user, proved: true, access: undefined };
    }
    if (scheme === 'bearer ' && this.deps.tokens) {
      try {
        const claims = await this.deps.tokens.verify(header.slice(scheme.length).trim());
        return { user: claims.user, proved: true, access: claims.access };
      } catch (err) {
        if (!(err instanceof TokenRejected)) throw err;
        return this.refuse(req, client, name, err.problem, 'invalid_token');
      }
    }
    return this.refuse(req, client, name, scheme === 'bearer ' ? 'unsupported_scheme' : 'malformed');
  }

  /** Whether `principal` may read what `route` names; throws the registry's 401 or 403 if not. */
  authorize(req: IncomingMessage, principal: Principal, route: RegistryPath): void {
    if (route.kind === 'base') {
      // How clients find out that this registry wants credentials, and whether theirs work.
      if (!principal.proved) throw this.unauthorized(req, undefined, 'authentication required');
      return;
    }
    const { name } = route;
    if (principal.access) {
      const actions = principal.access.get(name);
      if (!actions) throw this.unauthorized(req, name, `the token does not grant access to ${name}`, 'insufficient_scope');
      if (!actions.has('pull') && !actions.has('*')) {
        throw new RegistryError('DENIED', `the token service did not grant pull on ${name}`, { name });
      }
    }
    if (this.deps.mode === 'all' && principal.user === undefined) {
      throw this.unauthorized(req, name, 'authentication required: this registry serves logged-in users only');
    }
  }

  /** Throws a 401 unless `principal` may start a build of `name` (a logged-in user). */
  authorizeBuild(req: IncomingMessage, principal: Principal, name: string): void {
    if (principal.user !== undefined) return;
    throw this.unauthorized(req, name, `${name} is not built yet, and building it needs a logged-in user; anonymous clients pull only images already built`);
  }

  private unauthorized(req: IncomingMessage, name: string | undefined, message: string, error?: ChallengeError): RegistryError {
    return new RegistryError('UNAUTHORIZED', message, name === undefined ? null : { name }, {
      challenge: challengeFor(this.deps.challenge, req, name, error),
    });
  }

  private async refuse(req: IncomingMessage, client: string, name: string | undefined, reason: AuthFailureReason, error?: ChallengeError): Promise<never> {
    await this.failed(reason, client);
    // One message for an unknown user and a wrong password: which one it was is not the client's business.
    const message =
      reason === 'expired_token' ? 'the token has expired' : reason === 'invalid_token' ? 'the token is not valid' : 'the credentials are not valid';
    throw this.unauthorized(req, name, message, error);
  }
}
