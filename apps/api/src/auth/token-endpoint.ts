// /auth/token: Nixyard's own token service, the `realm` of its Bearer challenges (with
// NIXYARD_AUTH_TOKEN_KEY). It speaks both forms clients use:
//   GET  ?service=…&scope=repository:<name>:pull   Basic credentials, or none (docker, podman, skopeo)
//   POST grant_type=password&username=…&password=…&service=…&scope=…   (containerd)
// and answers a short-lived signed token whose `access` claim grants `pull`, and nothing else, on
// each repository asked for that is a valid image name. Without credentials the token is
// anonymous (no `sub`): enough to pull what is built under NIXYARD_PULL_AUTH=builds, refused
// outright under `all`. Refresh tokens are never issued, so the refresh grant is not offered.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { RegistryError } from '@nixyard/core';
import { parseRepositoryScope } from './challenge.js';
import { parseBasic, type PullAuth } from './pull-auth.js';
import type { TokenSigner } from './tokens.js';

/** A form body larger than this is no login. */
const MAX_FORM_BYTES = 8 * 1024;

export interface TokenEndpointDeps {
  auth: Pick<PullAuth, 'mode' | 'checkPassword' | 'failed'>;
  signer: Pick<TokenSigner, 'sign'>;
  service: string;
}

interface TokenRequest {
  /** undefined: anonymous. */
  credentials: { user: string; password: string } | undefined;
  service: string | null;
  scopes: string[];
  form: boolean;
}

class OAuthError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    message: string,
  ) {
    super(message);
  }
}

export function tokenEndpoint(deps: TokenEndpointDeps) {
  return async (req: IncomingMessage, res: ServerResponse, client: string): Promise<void> => {
    res.setHeader('Cache-Control', 'no-store');
    let request: TokenRequest;
    try {
      request = await readTokenRequest(req);
    } catch (err) {
      if (!(err instanceof OAuthError)) throw err;
      return sendJson(res, err.status, { error: err.error, error_description: err.message });
    }
    if (request.service !== null && request.service !== deps.service) {
      throw new RegistryError('DENIED', `this token service issues tokens for ${deps.service} only`, { service: deps.service });
    }

    let user: string | undefined;
    if (request.credentials) {
      const checked = await deps.auth.checkPassword(request.credentials.user, request.credentials.password, client);
      if (checked !== 'ok') {
        await deps.auth.failed(checked, client);
        throw loginRequired(deps.service, 'the credentials are not valid');
      }
      user = request.credentials.user;
    } else if (deps.auth.mode === 'all') {
      throw loginRequired(deps.service, 'this registry serves logged-in users only: log in to get a token');
    }

    const access = new Map<string, Set<string>>();
    for (const scope of request.scopes.flatMap((value) => value.split(' '))) {
      const parsed = parseRepositoryScope(scope);
      if (parsed && (parsed.actions.includes('pull') || parsed.actions.includes('*'))) access.set(parsed.name, new Set(['pull']));
    }
    const { token, issuedAt, expiresIn } = await deps.signer.sign({ user, access });
    const granted = [...access.keys()].map((name) => `repository:${name}:pull`).join(' ');
    if (request.form) {
      return sendJson(res, 200, { access_token: token, token_type: 'Bearer', expires_in: expiresIn, issued_at: issuedAt.toISOString(), scope: granted });
    }
    return sendJson(res, 200, { token, access_token: token, expires_in: expiresIn, issued_at: issuedAt.toISOString() });
  };
}

function loginRequired(service: string, message: string): RegistryError {
  return new RegistryError('UNAUTHORIZED', message, null, { challenge: `Basic realm="${service}",charset="UTF-8"` });
}

async function readTokenRequest(req: IncomingMessage): Promise<TokenRequest> {
  const query = new URL(req.url ?? '/', 'http://token').searchParams;
  const header = req.headers.authorization;
  const basic = header !== undefined && /^basic /i.test(header) ? parseBasic(header) : undefined;
  if (header !== undefined && header !== '' && !basic) throw new OAuthError(400, 'invalid_request', 'send credentials as Basic user:password');
  const credentials = basic && (basic.user !== '' || basic.password !== '') ? basic : undefined;

  if (req.method === 'GET' || req.method === 'HEAD') {
    return { credentials, service: query.get('service'), scopes: query.getAll('scope'), form: false };
  }
  if (req.method !== 'POST') throw new RegistryError('UNSUPPORTED', `${req.method} is not supported here: GET or POST a token request`);
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') throw new OAuthError(400, 'invalid_request', 'send an application/x-www-form-urlencoded form');
  const form = new URLSearchParams(await readBody(req));
  const grant = form.get('grant_type');
  if (grant !== 'password') throw new OAuthError(400, 'unsupported_grant_type', 'only the password grant is offered');
  const username = form.get('username') ?? '';
  const password = form.get('password') ?? '';
  return {
    credentials: username !== '' || password !== '' ? { user: username, password } : credentials,
    service: form.get('service'),
    scopes: form.getAll('scope'),
    form: true,
  };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) throw new OAuthError(413, 'invalid_request', `the form is larger than ${MAX_FORM_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}
