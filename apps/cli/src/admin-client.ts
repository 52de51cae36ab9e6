// The HTTP client of Nixyard's admin API (/api/v1, see docs/admin-api.md). Every answer is
// validated with the zod schemas the API itself is written against (@nixyard/core's prebuild.ts),
// so a CLI and a server of different versions fail with a clear message instead of printing
// nonsense. Failures are values: ApiError for an answer in the `{"errors":[...]}` shape (or any
// other non-2xx), ConnectionError when no answer came at all.

import { PrebuildBatchSchema, PrebuildSummarySchema, type PrebuildBatch, type PrebuildRequest, type PrebuildSummary } from '@nixyard/core';
import { z } from 'zod';

export const DEFAULT_URL = 'http://localhost:8080';

/** A non-2xx answer of the API; `code` is one of core's AdminErrorCode values (or HTTP for an answer without an error body). */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly detail: unknown,
    readonly url: string,
  ) {
    super(message);
  }
}

/** The request never got an answer (refused, DNS, timeout) or the answer was not what the API sends. */
export class ConnectionError extends Error {
  override readonly name = 'ConnectionError';
  constructor(
    message: string,
    readonly url: string,
  ) {
    super(message);
  }
}

const ErrorBodySchema = z.object({
  errors: z.array(z.object({ code: z.string(), message: z.string(), detail: z.unknown().optional() })).min(1),
});

const BatchListSchema = z.object({ batches: z.array(PrebuildSummarySchema) });
const CancelSchema = z.object({ id: z.string(), cancelled: z.number().int().nonnegative() });

export interface AdminClientOptions {
  /** The registry's base URL, e.g. `http://localhost:8080`; `/api/v1` is appended. */
  url: string;
  token?: string | undefined;
  /** Per-request time limit for reads. */
  timeoutMs?: number;
  /** For submissions, which resolve every image before answering. */
  submitTimeoutMs?: number;
}

/** `localhost:8080` → `http://localhost:8080/`, so relative paths resolve under any path prefix. */
export function normalizeBaseUrl(url: string): URL {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `http://${url}`;
  let base: URL;
  try {
    base = new URL(withScheme);
  } catch {
    throw new ConnectionError(`not a valid URL: ${url}`, url);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new ConnectionError(`not an http(s) URL: ${url}`, url);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  return base;
}

export class AdminClient {
  private readonly base: URL;

  constructor(private readonly options: AdminClientOptions) {
    this.base = normalizeBaseUrl(options.url);
  }

  submit(request: PrebuildRequest): Promise<PrebuildBatch> {
    return this.call('POST', 'prebuilds', PrebuildBatchSchema, request, this.options.submitTimeoutMs ?? 300_000);
  }

  get(id: string): Promise<PrebuildBatch> {
    return this.call('GET', `prebuilds/${encodeURIComponent(id)}`, PrebuildBatchSchema);
  }

  async list(): Promise<PrebuildSummary[]> {
    return (await this.call('GET', 'prebuilds', BatchListSchema)).batches;
  }

  async cancel(id: string): Promise<number> {
    return (await this.call('DELETE', `prebuilds/${encodeURIComponent(id)}`, CancelSchema)).cancelled;
  }

  private async call<T>(method: string, path: string, schema: z.ZodType<T>, body?: unknown, timeoutMs = this.options.timeoutMs ?? 30_000): Promise<T> {
    const url = new URL(`api/v1/${path}`, this.base).toString();
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(timeoutMs),
      });
      text = await res.text();
    } catch (err) {
      throw new ConnectionError(`cannot reach ${url}: ${describeFetchError(err, timeoutMs)}`, url);
    }
    const json = parseJson(text);
    if (!res.ok) {
      const parsed = ErrorBodySchema.safeParse(json);
      if (parsed.success) {
        const first = parsed.data.errors[0]!;
        throw new ApiError(res.status, first.code, first.message, first.detail ?? null, url);
      }
      const snippet = text.trim().replace(/\s+/g, ' ').slice(0, 200);
      throw new ApiError(res.status, 'HTTP', `${res.statusText || 'error'} from ${url}${snippet ? `: ${snippet}` : ''}`, null, url);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'not JSON';
      throw new ConnectionError(`unexpected answer from ${url} (is this a Nixyard of the same version?): ${where}`, url);
    }
    return parsed.data;
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** fetch's `TypeError: fetch failed` hides the reason in `cause` (ECONNREFUSED, ENOTFOUND, ...). */
function describeFetchError(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return `no answer within ${timeoutMs / 1000} s`;
  const cause = err instanceof Error ? (err.cause as { code?: string; message?: string } | undefined) : undefined;
  if (cause?.message) return cause.message;
  if (cause?.code) return cause.code;
  return err instanceof Error ? err.message : String(err);
}
