// Regenerates the layering benchmark's dataset (docs/layering.md, "Measured"): a closure graph of
// nixpkgs' shape built from Debian's package index, so `npm run bench:layering` measures layering at
// the scale of real closures (hundreds to thousands of store paths) without Nix and without the
// network. Every run of the bench reads the committed file; this script only exists so it can be
// rebuilt (or built from another release) and checked.
//
//   node --import tsx scripts/layering-dataset.ts                 apt's bookworm main amd64 index
//   node --import tsx scripts/layering-dataset.ts --packages FILE --release-file FILE --out FILE
//
// Rules (the same input gives the same bytes):
//  - One architecture: the binary-amd64 index, which lists amd64 and all packages. One version per
//    package name (the highest in the file's order, when a name appears twice).
//  - A package is a store path; `Installed-Size` (KiB) is its NAR size; `Depends` and `Pre-Depends`
//    are its references. Versions and architecture qualifiers in relations are ignored.
//  - An alternative `a | b | c` resolves to its first installable choice: a real package, or a
//    virtual package (`Provides`) with a provider. A virtual package resolves to a real package of
//    that name if there is one, else to its provider of highest Priority (required, important,
//    standard, optional, extra), ties by name.
//  - Dependencies on Debian's packaging machinery have no counterpart in a Nix closure (nothing at
//    run time refers to the package manager) and are dropped: see DROPPED.
//  - Cycles are kept. Nix closures have cycles only between the outputs of one derivation; Debian
//    has more (libc6 <-> libgcc-s1, nodejs -> libnode108 -> node-undici -> nodejs, ruby ->
//    ruby3.1 -> ruby-rubygems -> ruby). Breaking them by any rule cuts some package off what it
//    installs (a package's closure would no longer be what apt installs with it), while keeping
//    them reads as a few multi-output derivations, and layering copes with cycles (its contract).
//    The script prints how many paths sit on cycles and the largest cycle.
//
// Reading the index needs `lz4` (apt stores its lists lz4-compressed on Debian images) or a plain
// Packages file. Output: gzip of one JSON document, described in bench/layering/dataset.ts.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { parseArgs } from 'node:util';
import type { DatasetSource, DatasetV1 } from '../bench/layering/dataset.js';

const LISTS = '/var/lib/apt/lists';
const DEFAULT_PACKAGES = `${LISTS}/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4`;
const DEFAULT_RELEASE = `${LISTS}/deb.debian.org_debian_dists_bookworm_InRelease`;
const DEFAULT_OUT = 'bench/layering/debian-bookworm-amd64.v1.json.gz';

/** Debian's maintainer-script machinery: dpkg, debconf, ucf ... (see the header). */
const DROPPED: readonly string[] = Object.freeze([
  'adduser',
  'cdebconf',
  'debconf',
  'debconf-2.0',
  'dpkg',
  'init-system-helpers',
  'install-info',
  'ucf',
]);

const PRIORITY_RANK: Record<string, number> = { required: 0, important: 1, standard: 2, optional: 3, extra: 4 };

interface Stanza {
  name: string;
  version: string;
  installedKiB: number;
  priority: number;
  depends: string;
  provides: string[];
}

function main(): void {
  const { values } = parseArgs({
    options: {
      packages: { type: 'string', default: DEFAULT_PACKAGES },
      'release-file': { type: 'string', default: DEFAULT_RELEASE },
      out: { type: 'string', default: DEFAULT_OUT },
    },
  });
  const packagesFile = values.packages as string;
  const raw = packagesFile.endsWith('.lz4') ? execFileSync('lz4', ['-dc', packagesFile], { maxBuffer: 1 << 30 }) : readFileSync(packagesFile);
  const release = parseRelease(readFileSync(values['release-file'] as string, 'utf8'));
  const stanzas = parseIndex(raw.toString('utf8'));
  const dataset = buildDataset(stanzas, {
    origin: release.Origin ?? 'Debian',
    release: `${release.Version ?? '?'} (${release.Codename ?? '?'})`,
    date: release.Date ?? '?',
    component: 'main',
    architectures: ['amd64', 'all'],
    index: packagesFile.replace(/^.*\//, ''),
    indexSha256: createHash('sha256').update(raw).digest('hex'),
  });
  const json = JSON.stringify(dataset);
  const gz = gzipSync(json, { level: 9 });
  writeFileSync(values.out as string, gz);
  const edges = dataset.references.reduce((n, refs) => n + refs.length, 0);
  const component = stronglyConnected(dataset.references);
  const sizes = new Map<number, number>();
  for (const c of component) sizes.set(c, (sizes.get(c) ?? 0) + 1);
  const cyclic = [...sizes.values()].filter((n) => n > 1);
  console.log(`cycles: ${cyclic.length} strongly connected components of 2+ paths, ${cyclic.reduce((a, b) => a + b, 0)} paths, the largest ${Math.max(0, ...cyclic)}`);
  console.log(`${values.out}: ${dataset.names.length} store paths, ${edges} references, ${(gz.length / 1e6).toFixed(2)} MB gzipped (${(json.length / 1e6).toFixed(1)} MB JSON)`);
}

function parseRelease(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (line === '') break; // the header ends at the first blank line after the PGP armour
    const m = /^([A-Za-z-]+): (.*)$/.exec(line);
    if (m) fields[m[1] as string] = m[2] as string;
  }
  // InRelease starts with "-----BEGIN PGP SIGNED MESSAGE-----", "Hash: ...", a blank line.
  if (fields.Origin === undefined) {
    const body = text.split('\n\n')[1] ?? '';
    for (const line of body.split('\n')) {
      const m = /^([A-Za-z-]+): (.*)$/.exec(line);
      if (m) fields[m[1] as string] = m[2] as string;
    }
  }
  return fields;
}

function parseIndex(text: string): Stanza[] {
  const out: Stanza[] = [];
  for (const block of text.split(/\n\n+/)) {
    const fields = new Map<string, string>();
    let last = '';
    for (const line of block.split('\n')) {
      if (line.startsWith(' ') || line.startsWith('\t')) {
        if (last) fields.set(last, `${fields.get(last)} ${line.trim()}`);
        continue;
      }
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      last = line.slice(0, colon);
      fields.set(last, line.slice(colon + 1).trim());
    }
    const name = fields.get('Package');
    if (name === undefined) continue;
    const arch = fields.get('Architecture') ?? '';
    if (arch !== 'amd64' && arch !== 'all') continue;
    const depends = [fields.get('Pre-Depends'), fields.get('Depends')].filter((d) => d !== undefined && d !== '').join(', ');
    const provides = (fields.get('Provides') ?? '')
      .split(',')
      .map((p) => relationName(p))
      .filter((p) => p !== '');
    out.push({
      name,
      version: fields.get('Version') ?? '0',
      installedKiB: Number.parseInt(fields.get('Installed-Size') ?? '0', 10) || 0,
      priority: PRIORITY_RANK[fields.get('Priority') ?? 'optional'] ?? 3,
      depends,
      provides,
    });
  }
  return out;
}

/** "libfoo1:any (>= 1.2)" -> "libfoo1". */
function relationName(relation: string): string {
  return relation.trim().replace(/\s*\(.*$/, '').replace(/\s*\[.*$/, '').replace(/:.*$/, '').trim();
}

function buildDataset(stanzas: Stanza[], source: DatasetSource): DatasetV1 {
  // One stanza per name: keep the first (the archive lists one version per name in a suite).
  const byName = new Map<string, Stanza>();
  for (const s of stanzas) if (!byName.has(s.name)) byName.set(s.name, s);
  const names = [...byName.keys()].sort(byCode);
  const idOf = new Map(names.map((n, i) => [n, i]));

  const providers = new Map<string, string[]>();
  for (const s of byName.values()) {
    for (const virtual of s.provides) {
      const list = providers.get(virtual) ?? [];
      list.push(s.name);
      providers.set(virtual, list);
    }
  }
  const dropped = new Set(DROPPED);
  const resolve = (name: string): number | undefined => {
    if (dropped.has(name)) return undefined;
    const real = idOf.get(name);
    if (real !== undefined) return real;
    const list = providers.get(name);
    if (list === undefined) return undefined;
    const best = [...list].sort((a, b) => (byName.get(a)!.priority - byName.get(b)!.priority) || byCode(a, b))[0] as string;
    return dropped.has(best) ? undefined : idOf.get(best);
  };

  const refs: number[][] = names.map((name) => {
    const s = byName.get(name)!;
    const out = new Set<number>();
    for (const group of s.depends.split(',')) {
      if (group.trim() === '') continue;
      const alternatives = group.split('|').map(relationName);
      // The group is dropped when its first choice is packaging machinery (e.g. "debconf | debconf-2.0").
      if (alternatives[0] !== undefined && dropped.has(alternatives[0])) continue;
      for (const alt of alternatives) {
        const id = resolve(alt);
        if (id !== undefined) {
          if (id !== idOf.get(name)) out.add(id);
          break;
        }
      }
    }
    return [...out].sort((a, b) => a - b);
  });

  return {
    format: 'nixyard-layering-dataset',
    version: 1,
    source,
    rules: [
      'one store path per package name; Installed-Size (KiB) x 1024 is the NAR size',
      'Pre-Depends and Depends are the references; versions and :arch qualifiers ignored',
      'an alternative resolves to its first installable choice (real package, or virtual with a provider)',
      'a virtual package resolves to the real package of that name, else its provider of highest Priority, ties by name',
      `dropped (packaging machinery): ${DROPPED.join(', ')}`,
      'cycles are kept (read as multi-output derivations)',
    ],
    names,
    versions: names.map((n) => byName.get(n)!.version),
    sizesKiB: names.map((n) => byName.get(n)!.installedKiB),
    references: refs,
  };
}

/** Tarjan's algorithm, iterative: component id per node. */
function stronglyConnected(refs: readonly (readonly number[])[]): Int32Array {
  const count = refs.length;
  const component = new Int32Array(count).fill(-1);
  const index = new Int32Array(count).fill(-1);
  const low = new Int32Array(count);
  const onStack = new Uint8Array(count);
  const stack: number[] = [];
  let next = 0;
  let components = 0;
  for (let start = 0; start < count; start++) {
    if (index[start] !== -1) continue;
    const calls: [number, number][] = [[start, 0]];
    index[start] = low[start] = next++;
    stack.push(start);
    onStack[start] = 1;
    while (calls.length > 0) {
      const frame = calls[calls.length - 1] as [number, number];
      const [node, pos] = frame;
      const targets = refs[node] as readonly number[];
      if (pos < targets.length) {
        frame[1] = pos + 1;
        const t = targets[pos] as number;
        if (index[t] === -1) {
          index[t] = low[t] = next++;
          stack.push(t);
          onStack[t] = 1;
          calls.push([t, 0]);
        } else if (onStack[t] === 1) {
          low[node] = Math.min(low[node] as number, index[t] as number);
        }
        continue;
      }
      calls.pop();
      const parent = calls[calls.length - 1];
      if (parent !== undefined) low[parent[0]] = Math.min(low[parent[0]] as number, low[node] as number);
      if (low[node] === index[node]) {
        let member: number;
        do {
          member = stack.pop() as number;
          onStack[member] = 0;
          component[member] = components;
        } while (member !== node);
        components++;
      }
    }
  }
  return component;
}

function byCode(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

main();
