// Registry errors: the OCI distribution spec's error codes, as values. Domain code throws a
// RegistryError; the HTTP layer only reads `status` and `toBody()`. This keeps the mapping from
// "what went wrong" to "what the client sees" in one place, with no HTTP library in core.

/**
 * The distribution-spec error codes Nixyard uses, with the HTTP status each is served with.
 *
 * The spec's endpoint table (spec.md, "API" › "Endpoints") lists the failure statuses of each
 * endpoint, and for the pull endpoints (end-2 blobs, end-3 manifests, end-8a/b tags/list) that
 * is 404 alone. So the 400s below are core's validation codes (image-name.ts, digest.ts,
 * prebuild.ts), which the pull API answers as the 404 of what they fail to name
 * (apps/api path-params.ts). Beside the table, the spec allows on every endpoint:
 * - 401 UNAUTHORIZED, 403 DENIED and 429 TOOMANYREQUESTS: "Error Codes" lists them without
 *   tying them to an endpoint, "Determining Support" leaves authentication and authorization
 *   out of its purview, and the detail it builds on (detail.md, its appendix apdx-1) lists 401,
 *   403 and 429 among the failures of every endpoint;
 * - 5xx: the table's failures are the client's; a server error is HTTP's own (RFC 9110 §15.6),
 *   and the spec constrains only the body of a 4XX ("Error Codes").
 */
export const REGISTRY_ERROR_STATUS = Object.freeze({
  NAME_INVALID: 400,
  TAG_INVALID: 400,
  DIGEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  BLOB_UNKNOWN: 404,
  NAME_UNKNOWN: 404,
  /** An upload session that does not exist (none ever does here: the registry takes no pushes). */
  BLOB_UPLOAD_UNKNOWN: 404,
  UNSUPPORTED: 405,
  UNAUTHORIZED: 401,
  DENIED: 403,
  TOOMANYREQUESTS: 429,
  UNKNOWN: 500,
  /** As distribution's own registry answers when a backend it needs is down. */
  UNAVAILABLE: 503,
} as const);

export type RegistryErrorCode = keyof typeof REGISTRY_ERROR_STATUS;

/** A JSON-able value, for the `detail` field of an error body. */
export type JsonValue =
  | string
  | number
  | boolean
  | null
  | readonly JsonValue[]
  | { readonly [key: string]: JsonValue };

export interface RegistryErrorBody {
  errors: Array<{ code: RegistryErrorCode; message: string; detail: JsonValue }>;
}

export interface RegistryErrorOptions {
  cause?: unknown;
  /**
   * When a retry may succeed, in whole seconds: sent as `Retry-After` (RFC 9110) with 429 and 503,
   * which clients such as containerd and skopeo honour instead of failing the pull at once.
   */
  retryAfterSeconds?: number;
  /** With 401: the `WWW-Authenticate` challenge that tells the client how to log in (docs/auth.md). */
  challenge?: string;
}

export class RegistryError extends Error {
  override readonly name = 'RegistryError';
  readonly code: RegistryErrorCode;
  readonly status: number;
  readonly detail: JsonValue;
  readonly retryAfterSeconds: number | undefined;
  readonly challenge: string | undefined;

  constructor(code: RegistryErrorCode, message: string, detail: JsonValue = null, options: RegistryErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = REGISTRY_ERROR_STATUS[code];
    this.detail = detail;
    this.retryAfterSeconds = options.retryAfterSeconds === undefined ? undefined : Math.max(1, Math.ceil(options.retryAfterSeconds));
    this.challenge = options.challenge;
  }

  /** The response body the distribution spec prescribes: `{"errors":[{code,message,detail}]}`. */
  toBody(): RegistryErrorBody {
    return { errors: [{ code: this.code, message: this.message, detail: this.detail }] };
  }
}

export function isRegistryError(value: unknown): value is RegistryError {
  return value instanceof RegistryError;
}
