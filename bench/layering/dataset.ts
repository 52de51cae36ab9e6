// The layering benchmark's store: a nixpkgs-shaped closure graph of tens of thousands of store paths,
// read from the committed dataset (scripts/layering-dataset.ts made it from Debian's package index).
// Store paths are synthesised as Nix would name them, /nix/store/<32 base-32 chars>-<name>-<version>,
// so popularity (keyed by store-path name) and pnames work as they do on real closures.
//
// Dataset format, version 1 (gzip of one JSON document): { format: "nixyard-layering-dataset",
// version: 1, source: {origin, release, date, component, architectures, index, indexSha256},
// rules: [...], names: [package names, sorted], versions: [Debian versions], sizesKiB: [Installed-Size],
// references: [[ids, ascending], ...] } where a package's id is its index in `names`.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import type { ClosureGraph, StorePathInfo } from '@nixyard/core';

export const DATASET_FILE = new URL('./debian-bookworm-amd64.v1.json.gz', import.meta.url);

export interface DatasetSource {
  origin: string;
  release: string;
  date: string;
  component: string;
  architectures: string[];
  index: string;
  indexSha256: string;
}

/** The committed file, gzipped JSON; scripts/layering-dataset.ts writes it. */
export interface DatasetV1 {
  format: 'nixyard-layering-dataset';
  version: 1;
  source: DatasetSource;
  /** The rules the script followed, in words. */
  rules: string[];
  /** Package names, sorted; a package's id is its index here. */
  names: string[];
  /** Debian versions as they are (epochs and all); the store-path name is derived at load. */
  versions: string[];
  /** Installed-Size, KiB. */
  sizesKiB: number[];
  /** References as ids, ascending. */
  references: number[][];
}

export interface Store {
  source: DatasetSource;
  /** Debian package name -> id. */
  idOf: ReadonlyMap<string, number>;
  /** Store path per id; ids are in package-name order, not store-path order. */
  paths: readonly string[];
  /** NAR size per id (Installed-Size x 1024). */
  narSizes: Float64Array;
  /** References per id (ids, ascending), with the dataset's cycles. */
  references: readonly (readonly number[])[];
}

const NIX_BASE32 = '0123456789abcdfghijklmnpqrsvwxyz';

/** 32 characters of Nix's base-32 alphabet from the sha256 of `text` (its first 160 bits). */
export function storeHash(text: string): string {
  const digest = createHash('sha256').update(text, 'utf8').digest();
  let out = '';
  for (let i = 0; i < 32; i++) {
    let value = 0;
    for (let b = 0; b < 5; b++) {
      const bit = i * 5 + b;
      value = (value << 1) | (((digest[bit >>> 3] as number) >>> (7 - (bit & 7))) & 1);
    }
    out += NIX_BASE32[value];
  }
  return out;
}

/**
 * The store-path name of a Debian package: `<name>-<version>` with the epoch dropped and the
 * characters Nix does not allow in a store path name (`~`, `:`) as `_`.
 */
export function storeName(name: string, version: string): string {
  const bare = version.replace(/^\d+:/, '').replace(/[^A-Za-z0-9+\-._?=]/g, '_');
  return `${name}-${bare}`;
}

export function loadStore(file: URL | string = DATASET_FILE): Store {
  const doc = JSON.parse(gunzipSync(readFileSync(file)).toString('utf8')) as DatasetV1;
  if (doc.format !== 'nixyard-layering-dataset' || doc.version !== 1) throw new Error(`unknown dataset format ${String(doc.format)} v${String(doc.version)}`);
  const seen = new Set<string>();
  const paths = doc.names.map((name, i) => {
    const base = storeName(name, doc.versions[i] as string);
    if (seen.has(base)) throw new Error(`dataset: two packages named ${base}`);
    seen.add(base);
    return `/nix/store/${storeHash(base)}-${base}`;
  });
  return {
    source: doc.source,
    idOf: new Map(doc.names.map((n, i) => [n, i])),
    paths,
    narSizes: Float64Array.from(doc.sizesKiB, (kib) => kib * 1024),
    references: doc.references,
  };
}

/** Ids of everything `roots` reach, themselves included, ascending. */
export function closureIds(store: Store, roots: readonly number[]): number[] {
  const seen = new Set<number>(roots);
  const stack = [...roots];
  while (stack.length > 0) {
    for (const next of store.references[stack.pop() as number] as readonly number[]) {
      if (!seen.has(next)) {
        seen.add(next);
        stack.push(next);
      }
    }
  }
  return [...seen].sort((a, b) => a - b);
}

/** The closure graph of `roots`, as Nix reports it to the worker (sorted by path). */
export function closureGraph(store: Store, roots: readonly number[]): ClosureGraph {
  const ids = closureIds(store, roots);
  const paths: StorePathInfo[] = ids.map((id) => ({
    path: store.paths[id] as string,
    narSize: store.narSizes[id] as number,
    references: (store.references[id] as readonly number[]).map((r) => store.paths[r] as string).sort(),
  }));
  paths.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { roots: roots.map((r) => store.paths[r] as string).sort(), paths };
}

/**
 * Graph-wide popularity, as Nixery's published data: for each store-path name, how many store
 * paths of the whole dataset refer to it.
 */
export function graphPopularity(store: Store): Map<string, number> {
  const counts = new Float64Array(store.paths.length);
  for (const refs of store.references) for (const j of refs) counts[j] = (counts[j] as number) + 1;
  const map = new Map<string, number>();
  store.paths.forEach((path, id) => {
    if ((counts[id] as number) > 0) map.set(path.slice(path.lastIndexOf('/') + 34), counts[id] as number);
  });
  return map;
}
