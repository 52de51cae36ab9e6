// Registry errors: the OCI distribution spec's error codes, as values. Domain code throws a
// RegistryError; the HTTP layer only reads `status` and `toBody()`. This keeps the mapping from
// "what went wrong" to "what the client sees" in one place, with no HTTP library in core.

/** The distribution-spec error codes Nixyard uses, with the HTTP status each is served with. */
export const REGISTRY_ERROR_STATUS = Object.freeze({
  NAME_INVALID: 400,
  TAG_INVALID: 400,
  DIGEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  BLOB_UNKNOWN: 404,
  NAME_UNKNOWN: 404,
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
}

export class RegistryError extends Error {
  override readonly name = 'RegistryError';
  readonly code: RegistryErrorCode;
  readonly status: number;
  readonly detail: JsonValue;
  readonly retryAfterSeconds: number | undefined;

  constructor(code: RegistryErrorCode, message: string, detail: JsonValue = null, options: RegistryErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = REGISTRY_ERROR_STATUS[code];
    this.detail = detail;
    this.retryAfterSeconds = options.retryAfterSeconds === undefined ? undefined : Math.max(1, Math.ceil(options.retryAfterSeconds));
  }

  /** The response body the distribution spec prescribes: `{"errors":[{code,message,detail}]}`. */
  toBody(): RegistryErrorBody {
    return { errors: [{ code: this.code, message: this.message, detail: this.detail }] };
  }
}

export function isRegistryError(value: unknown): value is RegistryError {
  return value instanceof RegistryError;
}
