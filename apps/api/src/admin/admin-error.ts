// Errors of the admin API, in the same JSON shape as the registry's (`{"errors":[{code,message,
// detail}]}`) so one client-side parser reads both, but with the admin API's own codes.

import type { JsonValue } from '@nixyard/core';

export class AdminError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly detail: JsonValue = null,
  ) {
    super(message);
  }

  toBody(): { errors: Array<{ code: string; message: string; detail: JsonValue }> } {
    return { errors: [{ code: this.code, message: this.message, detail: this.detail }] };
  }
}
