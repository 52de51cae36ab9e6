// The API's routes as data: which registry resource a /v2/ URL path names, and the label each
// request is counted under in the `route` label of the HTTP metrics (dashboards and alerts select
// on those values, so they are a contract like build-phases.ts's). Image names contain slashes
// (`shell/git/htop`), so the resource is found from the end of the path, as the distribution
// spec's grammar implies: the last `/manifests/<ref>`, `/blobs/<digest>` or `/tags/list`.
// Nothing here validates the name or the reference: image-name.ts and digest.ts do.

export type RegistryPath =
  | { kind: 'base' }
  | { kind: 'manifest'; name: string; reference: string }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'tags'; name: string };

export type RegistryRouteKind = RegistryPath['kind'];

/**
 * Every kind parseRegistryPath can answer, one per handler module (base.ts, manifests.ts,
 * blobs.ts, tags.ts). Tests iterate it, so a new route cannot go untested unnoticed.
 */
export const REGISTRY_ROUTE_KINDS = ['base', 'manifest', 'blob', 'tags'] as const satisfies readonly RegistryRouteKind[];
// The list names every kind: the compiler refuses this line when a kind is added to the union only.
const everyKindListed: [RegistryRouteKind] extends [(typeof REGISTRY_ROUTE_KINDS)[number]] ? true : never = true;
void everyKindListed;

const MANIFEST = /^\/v2\/(.+)\/manifests\/([^/]+)$/;
const BLOB = /^\/v2\/(.+)\/blobs\/([^/]+)$/;
const TAGS = /^\/v2\/(.+)\/tags\/list$/;

/** Every value of the HTTP metrics' `route` label: the registry's route kinds and the API's own routes. */
export const HTTP_ROUTE_LABELS = ['page', 'healthz', 'readyz', 'metrics', 'admin', 'token', ...REGISTRY_ROUTE_KINDS, 'other'] as const;
export type HttpRouteLabel = (typeof HTTP_ROUTE_LABELS)[number];

/** The `route` label of a request path (without its query): low-cardinality, whatever the path. */
export function httpRouteOf(path: string): HttpRouteLabel {
  if (path === '/') return 'page';
  if (path === '/healthz' || path === '/readyz' || path === '/metrics') return path.slice(1) as HttpRouteLabel;
  if (path.startsWith('/api/v1/')) return 'admin';
  return parseRegistryPath(path)?.kind ?? 'other';
}

/** The resource a raw (not percent-decoded) request path names, or undefined for no resource. */
export function parseRegistryPath(path: string): RegistryPath | undefined {
  if (path === '/v2/' || path === '/v2') return { kind: 'base' };
  let m = MANIFEST.exec(path);
  if (m) return { kind: 'manifest', name: m[1]!, reference: m[2]! };
  m = BLOB.exec(path);
  if (m) return { kind: 'blob', name: m[1]!, digest: m[2]! };
  m = TAGS.exec(path);
  if (m) return { kind: 'tags', name: m[1]! };
  return undefined;
}

/**
 * The distribution spec's endpoints that a read-only registry does not serve but must still
 * answer as the spec's endpoint table says (apps/api read-only.ts): the upload endpoints and the
 * referrers API. They are no route (their `route` label is `other`); the spec's ids are noted.
 */
export type UnservedPath =
  /** `/v2/<name>/blobs/uploads/`: POST starts an upload (end-4a, end-4b, end-11). */
  | { kind: 'uploads'; name: string }
  /** `/v2/<name>/blobs/uploads/<reference>`: an upload session (end-5, end-6, end-13, end-14). */
  | { kind: 'upload'; name: string; session: string }
  /** `/v2/<name>/referrers/<digest>` (end-12a, end-12b). */
  | { kind: 'referrers'; name: string; digest: string };

const UPLOADS = /^\/v2\/(.+)\/blobs\/uploads\/$/;
const UPLOAD = /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/;
const REFERRERS = /^\/v2\/(.+)\/referrers\/([^/]+)$/;

/** The unserved endpoint a raw request path names, if it names no route (parseRegistryPath) but one of those. */
export function parseUnservedPath(path: string): UnservedPath | undefined {
  if (parseRegistryPath(path)) return undefined;
  let m = UPLOADS.exec(path);
  if (m) return { kind: 'uploads', name: m[1]! };
  m = UPLOAD.exec(path);
  if (m) return { kind: 'upload', name: m[1]!, session: m[2]! };
  m = REFERRERS.exec(path);
  if (m) return { kind: 'referrers', name: m[1]!, digest: m[2]! };
  return undefined;
}
