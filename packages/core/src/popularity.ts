// Popularity: how widely a package is used, the second input of layering (docs/design.md §4) besides the
// closure graph. It is keyed by store-path name without the hash ("glibc-2.36" for
// /nix/store/<hash>-glibc-2.36), so rebuilds of the same package version share a count. It comes
// either from NIX_POPULARITY_URL or from reference counts over the closure graphs the workers have
// seen; this module has the pure parts of the latter. Everything here is deterministic.
import type { ClosureGraph, StorePathInfo } from './closure-graph.js';

/**
 * Where layering looks popularity up: a map or a function from store-path name (see
 * `storePathName`) to a count. Missing names, and values that are not finite numbers >= 0, count
 * as 0 (unknown).
 */
export type PopularitySource = ReadonlyMap<string, number> | ((name: string) => number | undefined);

// Nix's base-32 alphabet (no e, o, t, u); store hashes are 32 of these characters.
const HASH_PREFIX = /^[0-9a-df-np-sv-z]{32}-/;

/**
 * The name of a store path: its last component without the hash and its dash, e.g.
 * "/nix/store/<32 chars>-glibc-2.36" -> "glibc-2.36". A last component that does not start with a
 * store hash is returned whole.
 */
export function storePathName(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  return HASH_PREFIX.test(base) ? base.slice(33) : base;
}

/**
 * The package name (pname) of a store-path name, split off its version the way Nix's
 * `builtins.parseDrvName` does: everything before the first dash that is followed by something
 * other than a letter. "glibc-2.36-bin" -> "glibc", "nss-cacert-3.98" -> "nss-cacert",
 * "iana-etc-20231227" -> "iana-etc", "python3.11-requests-2.31.0" -> "python3.11-requests".
 */
export function pnameOf(name: string): string {
  for (let i = 0; i + 1 < name.length; i++) {
    if (name[i] === '-' && !/[A-Za-z]/.test(name[i + 1] as string)) return name.slice(0, i);
  }
  return name;
}

/** `pnameOf(storePathName(path))`: "/nix/store/<hash>-nss-cacert-3.98" -> "nss-cacert". */
export function storePathPname(path: string): string {
  return pnameOf(storePathName(path));
}

/** Popularity of `name` from `source`: 0 when unknown or not a finite number >= 0. */
export function lookUpPopularity(source: PopularitySource | undefined, name: string): number {
  if (source === undefined) return 0;
  const value = typeof source === 'function' ? source(name) : source.get(name);
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : 0;
}

/** The names (sorted, unique) of the paths `info` refers to, without its reference to itself. */
export function referencedNames(info: StorePathInfo): string[] {
  const names = new Set<string>();
  for (const ref of info.references) if (ref !== info.path) names.add(storePathName(ref));
  return [...names].sort(byCode);
}

/**
 * Reference counts of one closure graph: for each store-path name, how many distinct paths of the
 * graph refer to a path of that name (self-references excluded; a path referring to two paths of
 * the same name counts once). `counted`, when given, limits the referrers to the paths it accepts:
 * to keep counts of *distinct* referrers across builds, the worker counts only the paths it has
 * not seen before (e.g. those a Redis SADD to a seen-set reports as new) and adds the result.
 * Keys are in sorted order.
 */
export function referenceCounts(graph: ClosureGraph, counted?: (referrer: string) => boolean): Map<string, number> {
  return countReferrers([graph], counted);
}

/**
 * Popularity from closure graphs: for each store-path name, how many distinct paths, over all the
 * graphs, refer to a path of that name (a path in several graphs counts once; self-references are
 * excluded). Keys are in sorted order. `popularityFromGraphs(gs)` equals summing
 * `referenceCounts(g, isNew)` over the graphs, where isNew accepts each path the first time only.
 */
export function popularityFromGraphs(graphs: Iterable<ClosureGraph>): Map<string, number> {
  return countReferrers(graphs, undefined);
}

function countReferrers(graphs: Iterable<ClosureGraph>, counted: ((referrer: string) => boolean) | undefined): Map<string, number> {
  // Referrer path -> the names it refers to. Store paths are immutable, so every graph lists the
  // same references for a path; taking the union anyway keeps the result independent of order.
  const namesOf = new Map<string, Set<string>>();
  for (const graph of graphs) {
    for (const info of graph.paths) {
      let names = namesOf.get(info.path);
      if (names === undefined) {
        if (counted !== undefined && !counted(info.path)) continue;
        names = new Set();
        namesOf.set(info.path, names);
      }
      for (const name of referencedNames(info)) names.add(name);
    }
  }
  const counts = new Map<string, number>();
  for (const names of namesOf.values()) for (const name of names) counts.set(name, (counts.get(name) ?? 0) + 1);
  return new Map([...counts].sort(([a], [b]) => byCode(a, b)));
}

function byCode(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
