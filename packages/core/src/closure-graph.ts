// The runtime closure of an image's packages as Nix reports it: every store path with its
// direct references and its NAR size. Layering (which paths share a layer) is a pure function of
// this graph, so it is the hand-off point between the Nix side of the worker and the rest.

export interface StorePathInfo {
  /** Absolute store path, e.g. /nix/store/<hash>-jq-1.6. */
  path: string;
  /** Size of the path's NAR serialisation in bytes: what it adds to a layer, roughly. */
  narSize: number;
  /** Store paths this one refers to directly, sorted; may include the path itself. */
  references: string[];
}

export interface ClosureGraph {
  /** The store paths that were asked for (the packages' outputs), sorted. */
  roots: string[];
  /** Every path of the closure, sorted by path. */
  paths: StorePathInfo[];
}
