// The admin API's bearer token (NIXYARD_ADMIN_TOKEN). Without a configured token the admin API
// is off; the registry's pull API never needs one.

import { timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { AdminError } from '@nixyard/core';

export function bearerAuth(token: string | undefined): RequestHandler {
  const expected = token ? Buffer.from(token) : undefined;
  return (req, res, next) => {
    if (!expected) throw new AdminError('DENIED', 'the admin API is disabled: set NIXYARD_ADMIN_TOKEN to enable it');
    const match = /^Bearer (.+)$/.exec(req.header('authorization') ?? '');
    if (!match) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="nixyard-admin"');
      throw new AdminError('UNAUTHORIZED', 'a bearer token is required (Authorization: Bearer <NIXYARD_ADMIN_TOKEN>)');
    }
    const given = Buffer.from(match[1]!);
    // Compare in constant time, so response timing does not leak the token.
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new AdminError('DENIED', 'the bearer token is not valid');
    }
    next();
  };
}
