// Errors of the admin API (/api/v1), as values with their HTTP status, like registry-errors.ts
// is for the pull API. The body has the registry's shape (`{"errors":[{code,message,detail}]}`)
// so one client-side parser reads both, but the codes are the admin API's own. The API throws
// these and the CLI reads them back, so both sides name a code through this one table.

import type { JsonValue } from './registry-errors.js';

/** The admin API's error codes, with the HTTP status each is served with. */
export const ADMIN_ERROR_STATUS = Object.freeze({
  /** The batch or its JSON is malformed, or names invalid images; nothing was enqueued. */
  BATCH_INVALID: 400,
  /** No bearer token was sent. */
  UNAUTHORIZED: 401,
  /** The token is wrong, or the admin API is disabled (no NIXYARD_ADMIN_TOKEN). */
  DENIED: 403,
  /** No such admin endpoint. */
  NOT_FOUND: 404,
  /** No batch with that id (never submitted, or expired). */
  BATCH_UNKNOWN: 404,
  /** Over the batch size or body size limit; nothing was enqueued. */
  BATCH_TOO_LARGE: 413,
  UNKNOWN: 500,
  /** Try again shortly (another submission holds the lock, or Redis did not answer in time). */
  UNAVAILABLE: 503,
} as const);

export type AdminErrorCode = keyof typeof ADMIN_ERROR_STATUS;

export interface AdminErrorOptions {
  cause?: unknown;
  /** Sent as Retry-After (whole seconds, at least 1): when trying again may succeed. */
  retryAfterSeconds?: number;
}

export class AdminError extends Error {
  override readonly name = 'AdminError';
  readonly status: number;
  readonly retryAfterSeconds: number | undefined;

  constructor(
    readonly code: AdminErrorCode,
    message: string,
    readonly detail: JsonValue = null,
    options: AdminErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = ADMIN_ERROR_STATUS[code];
    this.retryAfterSeconds = options.retryAfterSeconds === undefined ? undefined : Math.max(1, Math.ceil(options.retryAfterSeconds));
  }

  toBody(): { errors: Array<{ code: AdminErrorCode; message: string; detail: JsonValue }> } {
    return { errors: [{ code: this.code, message: this.message, detail: this.detail }] };
  }
}

/** Whether an error code read back from the API is `code` (the CLI's side of the table). */
export function isAdminErrorCode<C extends AdminErrorCode>(value: string, code: C): value is C {
  return value === code;
}
