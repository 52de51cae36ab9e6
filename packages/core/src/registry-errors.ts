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

export class RegistryError extends Error {
  override readonly name = 'RegistryError';
  readonly code: RegistryErrorCode;
  readonly status: number;
  readonly detail: JsonValue;

  constructor(code: RegistryErrorCode, message: string, detail: JsonValue = null, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.status = REGISTRY_ERROR_STATUS[code];
    this.detail = detail;
  }

  /** The response body the distribution spec prescribes: `{"errors":[{code,message,detail}]}`. */
  toBody(): RegistryErrorBody {
    return { errors: [{ code: this.code, message: this.message, detail: this.detail }] };
  }
}

export function isRegistryError(value: unknown): value is RegistryError {
  return value instanceof RegistryError;
}
