// What a 401 tells the client: the `WWW-Authenticate` challenge. With Basic, send the htpasswd
// credentials; with Bearer, fetch a token from `realm` for `service` and `scope`, as docker,
// podman, skopeo and containerd all do (the Docker token flow). Repository scopes are written and
// read here only, so the token endpoint grants exactly what a challenge asks for.
//
// Every value put into a quoted parameter is checked first: a repository name comes from the
// request path, and only a valid image name is ever echoed.

import type { IncomingMessage } from 'node:http';
import { parseImageName } from '@nixyard/core';

export type ChallengeError = 'invalid_token' | 'insufficient_scope';

/** `repository:<name>:pull` for the repository a request names. */
export function pullScope(name: string): string {
  return `repository:${name}:pull`;
}

/** A repository scope's name and actions; undefined for other scopes and names that are not images. */
export function parseRepositoryScope(scope: string): { name: string; actions: string[] } | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first || scope.slice(0, first) !== 'repository') return undefined;
  const name = scope.slice(first + 1, last);
  if (!isImageName(name)) return undefined;
  return { name, actions: scope.slice(last + 1).split(',').filter((action) => action !== '') };
}

function isImageName(name: string): boolean {
  try {
    parseImageName(name);
    return true;
  } catch {
    return false;
  }
}

export interface ChallengeSettings {
  /** 'basic' with htpasswd alone; 'bearer' with a token service (Nixyard's or an external one). */
  scheme: 'basic' | 'bearer';
  service: string;
  /** NIXYARD_AUTH_REALM; undefined means this API's own /auth/token, at the address the client used. */
  realm: string | undefined;
  /** Whether the request came from a trusted proxy, whose X-Forwarded-Proto is believed. */
  fromTrustedProxy(req: IncomingMessage): boolean;
}

const HOST = /^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$/;

/** The token URL at the address the client reached this API by. */
function ownRealm(settings: ChallengeSettings, req: IncomingMessage): string {
  const given = req.headers.host;
  const host = given !== undefined && HOST.test(given) ? given : `${req.socket.localAddress}:${req.socket.localPort}`;
  const proto = settings.fromTrustedProxy(req) && req.headers['x-forwarded-proto'] === 'https' ? 'https' : 'http';
  return `${proto}://${host}/auth/token`;
}

/** The WWW-Authenticate value for a 401 to `req`, about `name` (undefined for /v2/ itself). */
export function challengeFor(settings: ChallengeSettings, req: IncomingMessage, name: string | undefined, error?: ChallengeError): string {
  if (settings.scheme === 'basic') return `Basic realm="${settings.service}",charset="UTF-8"`;
  const parts = [`realm="${settings.realm ?? ownRealm(settings, req)}"`, `service="${settings.service}"`];
  if (name !== undefined && isImageName(name)) parts.push(`scope="${pullScope(name)}"`);
  if (error !== undefined) parts.push(`error="${error}"`);
  return `Bearer ${parts.join(',')}`;
}
