// The symlink layer (docs/design.md §1, phase 4): the image's top-level tree, so that `/bin/bash` or
// `/etc/ssl/certs/ca-bundle.crt` exist without anyone knowing store paths. It is what nixpkgs'
// symlinkJoin/buildEnv make: every file or symlink of every package output is linked at its path
// relative to the output, directories become real directories merged across outputs, and when two
// outputs provide the same path the first output (in the order given) wins, so the result only
// depends on the outputs and their order. Plus what containers expect: a writable /tmp, and
// /usr/bin/env for `#!/usr/bin/env` scripts.
//
// The tree is computed as data first, so the image config can look at it (is there a /bin/bash to
// use as the default command? a CA bundle to point SSL_CERT_FILE at?) before it is packed.

import { lstat, readdir } from 'node:fs/promises';
import type { Storage } from '@nixyard/core';
import type { TarEntry } from './layer-tar.js';
import { packLayer, type PackedLayer, type PackOptions } from './pack-layer.js';

export type SymlinkTreeNode = { type: 'directory'; mode: number } | { type: 'symlink'; target: string };

export interface SymlinkTree {
  /** Every path in the tree, absolute (`/bin`, `/bin/bash`), to its node. The root is implied. */
  nodes: ReadonlyMap<string, SymlinkTreeNode>;
}

const DIRECTORY: SymlinkTreeNode = { type: 'directory', mode: 0o755 };

/** Links the package outputs (absolute store paths, in priority order) into one tree. */
export async function buildSymlinkTree(outputs: readonly string[]): Promise<SymlinkTree> {
  const nodes = new Map<string, SymlinkTreeNode>();

  // These come first, so an output can add to them but never replace them.
  nodes.set('/tmp', { type: 'directory', mode: 0o1777 });
  const env = await firstExisting(outputs.map((output) => `${output}/bin/env`));
  if (env !== undefined) {
    nodes.set('/usr', DIRECTORY);
    nodes.set('/usr/bin', DIRECTORY);
    nodes.set('/usr/bin/env', { type: 'symlink', target: env });
  }

  async function link(output: string, relative: string): Promise<void> {
    for (const name of (await readdir(output + relative)).sort()) {
      const path = `${relative}/${name}`;
      if (path === '/nix-support') continue; // build metadata (setup hooks, propagated inputs)
      const existing = nodes.get(path);
      if (existing?.type === 'symlink') continue; // first wins
      const isDirectory = (await lstat(output + path)).isDirectory();
      if (isDirectory) {
        if (existing === undefined) nodes.set(path, DIRECTORY);
        await link(output, path);
      } else if (existing === undefined) {
        nodes.set(path, { type: 'symlink', target: output + path });
      }
      // else: an earlier output made a directory here and this output has a file: first wins.
    }
  }

  for (const output of outputs) {
    // An output that is a single file has no paths below it to link.
    if ((await lstat(output)).isDirectory()) await link(output, '');
  }
  return { nodes };
}

/** The tree as tar entries: parents before children, siblings in code-unit order. */
export function symlinkTreeEntries(tree: SymlinkTree): TarEntry[] {
  // Comparing with `/` replaced by NUL (lower than any name character) sorts component by
  // component, so `bin/x` stays right after `bin` and before `bin-extra`, as in a directory walk.
  const key = (path: string) => path.replaceAll('/', '\0');
  const sorted = [...tree.nodes].sort(([a], [b]) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  return sorted.map(([path, node]): TarEntry => {
    const name = path.slice(1);
    return node.type === 'directory'
      ? { type: 'directory', name, mode: node.mode }
      : { type: 'symlink', name, mode: 0o777, target: node.target };
  });
}

/** Packs the tree like any other layer. Its key (which outputs, in which order) is the caller's. */
export function packSymlinkLayer(storage: Storage, tree: SymlinkTree, options: PackOptions): Promise<PackedLayer> {
  return packLayer(storage, symlinkTreeEntries(tree), options);
}

async function firstExisting(paths: string[]): Promise<string | undefined> {
  for (const path of paths) {
    const found = await lstat(path).then(
      (stat) => !stat.isDirectory(),
      () => false,
    );
    if (found) return path;
  }
  return undefined;
}
