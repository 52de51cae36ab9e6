// What passes between the API's serving thread and the farm's thread (farm-thread.ts), in one
// place: which of the farm's methods may be called across, the messages, and how an error keeps
// its class on the way back. postMessage's structured clone keeps plain data and Dates, but an
// error arrives as a bare Error without its fields, and the API answers by class: a RegistryError
// with its own status and Retry-After, an AdminError likewise, a DeadlineError as 503.

import { AdminError, RegistryError, type AdminErrorCode, type Config, type JsonValue, type RegistryErrorCode, type System } from '@nixyard/core';
import type { RefusalReason } from './admission.js';
import { DeadlineError } from './deadline.js';
import type { Farm } from './farm.js';

/** The farm's parts and the methods of each that the serving thread calls. */
export const FARM_CALLS = {
  coldBuilds: ['build'],
  liveWorkers: ['count'],
  status: ['queueDepth', 'liveWorkers', 'prebuildBatches', 'recentFailures'],
  prebuilds: ['submit', 'list', 'get', 'cancel'],
  health: ['ping'],
} as const satisfies { [P in keyof Farm]?: ReadonlyArray<keyof Farm[P]> };

export type FarmPart = keyof typeof FARM_CALLS;
/** What the serving thread sees of one part: the same methods, answered by the farm's thread. */
export type FarmPartCalls<P extends FarmPart> = Pick<Farm[P], Extract<(typeof FARM_CALLS)[P][number], keyof Farm[P]>>;

export function isFarmCall(part: string, method: string): part is FarmPart {
  return Object.hasOwn(FARM_CALLS, part) && (FARM_CALLS[part as FarmPart] as readonly string[]).includes(method);
}

/** The farm thread's workerData. */
export interface FarmThreadData {
  config: Config;
  /** Every system the API serves (main.ts). */
  systems: readonly System[];
}

/** Serving thread to farm thread. `close` closes the farm's connections; the thread then exits. */
export type ToFarmThread = { type: 'call'; id: number; part: FarmPart; method: string; args: unknown[] } | { type: 'close' };

/** Farm thread to serving thread. `refused` is an admission refusal, for the API's metrics. */
export type FromFarmThread =
  | { type: 'ready' }
  | { type: 'result'; id: number; value: unknown }
  | { type: 'error'; id: number; error: WireError }
  | { type: 'refused'; reason: RefusalReason };

/** An error as it crosses: its class and the fields the API answers with. */
export type WireError =
  | { kind: 'registry'; code: RegistryErrorCode; message: string; detail: JsonValue; retryAfterSeconds?: number; challenge?: string }
  | { kind: 'admin'; code: AdminErrorCode; message: string; detail: JsonValue; retryAfterSeconds?: number }
  | { kind: 'deadline'; what: string; ms: number }
  | { kind: 'other'; name: string; message: string; stack?: string };

export function encodeError(err: unknown): WireError {
  if (err instanceof RegistryError) {
    return {
      kind: 'registry',
      code: err.code,
      message: err.message,
      detail: err.detail,
      ...(err.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: err.retryAfterSeconds }),
      ...(err.challenge === undefined ? {} : { challenge: err.challenge }),
    };
  }
  if (err instanceof AdminError) {
    return {
      kind: 'admin',
      code: err.code,
      message: err.message,
      detail: err.detail,
      ...(err.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: err.retryAfterSeconds }),
    };
  }
  if (err instanceof DeadlineError) return { kind: 'deadline', what: err.what, ms: err.ms };
  if (err instanceof Error) return { kind: 'other', name: err.name, message: err.message, ...(err.stack === undefined ? {} : { stack: err.stack }) };
  return { kind: 'other', name: 'Error', message: String(err) };
}

export function decodeError(wire: WireError): Error {
  switch (wire.kind) {
    case 'registry':
      return new RegistryError(wire.code, wire.message, wire.detail, {
        ...(wire.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: wire.retryAfterSeconds }),
        ...(wire.challenge === undefined ? {} : { challenge: wire.challenge }),
      });
    case 'admin':
      return new AdminError(wire.code, wire.message, wire.detail, wire.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: wire.retryAfterSeconds });
    case 'deadline':
      return new DeadlineError(wire.what, wire.ms);
    case 'other': {
      // The thread's stack, so that the serving thread's log of it says where it happened.
      const err = new Error(wire.message);
      err.name = wire.name;
      if (wire.stack !== undefined) err.stack = wire.stack;
      return err;
    }
  }
}
