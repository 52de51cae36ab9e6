// Turns an image tag into the source revision that keys the image (docs/design.md §2), per source kind:
//
// | source  | `latest`                 | 40-hex tag        | other tag                    |
// | path    | the path (moving)        | -                 | -                            |
// | channel | the configured channel   | that nixpkgs commit (pinned) | that channel (moving) |
// | git     | default branch head      | that commit (pinned)         | that branch or tag head |
//
// A pinned revision names immutable content, so its manifest is kept forever. A moving one is
// looked at again at most every NIXERY_MANIFEST_TTL seconds: git refs are re-resolved to commits
// (the images themselves are keyed by commit, so they never go stale), while a path or a channel
// name has no commit to key by, so its manifest is rebuilt once older than the TTL.

import { PATH_REVISION, RegistryError, type PackageSource } from '@nixyard/core';
import { GitRemote } from './git-remote.js';

export interface ResolvedTag {
  revision: string;
  /** True when the revision's images never change: their records are served forever. */
  immutable: boolean;
}

const COMMIT = /^[0-9a-f]{40}$/;

/** What a git source's refs are looked up with: GitRemote (`git ls-remote`), or a stand-in. */
export type RefLookup = Pick<GitRemote, 'defaultBranchHead' | 'commitOf' | 'names'>;

export interface SourceResolverOptions {
  /** The clock the TTL runs on, in milliseconds (default Date.now); tests move it instead of sleeping. */
  now?: () => number;
  /** How a git source's refs are looked up (default: `git ls-remote` of its URL). */
  refs?: RefLookup;
}

export class SourceResolver {
  private readonly git: RefLookup | undefined;
  private readonly now: () => number;
  private readonly cache = new Map<string, { value: Promise<ResolvedTag>; expires: number }>();

  constructor(
    readonly source: PackageSource,
    private readonly ttlSeconds: number,
    options: SourceResolverOptions = {},
  ) {
    this.git = source.kind === 'git' ? (options.refs ?? new GitRemote(source.url)) : undefined;
    this.now = options.now ?? Date.now;
  }

  async resolve(tag: string): Promise<ResolvedTag> {
    const source = this.source;
    switch (source.kind) {
      case 'path':
        if (tag !== 'latest') throw unknownTag(tag, 'a package path has only the tag "latest"');
        return { revision: PATH_REVISION, immutable: false };
      case 'channel': {
        const revision = tag === 'latest' ? source.channel : tag;
        return { revision, immutable: COMMIT.test(revision) };
      }
      case 'git':
        if (COMMIT.test(tag)) return { revision: tag, immutable: true };
        return this.cached(tag, async () => {
          const commit = tag === 'latest' ? await this.git!.defaultBranchHead() : await this.git!.commitOf(tag);
          if (!commit) throw unknownTag(tag, `the repository has no branch or tag "${tag}"`);
          return { revision: commit, immutable: true };
        });
    }
  }

  /** Tags a client can list for any image name. */
  async knownTags(): Promise<string[]> {
    const source = this.source;
    switch (source.kind) {
      case 'path':
        return ['latest'];
      case 'channel':
        return [...new Set(['latest', source.channel])];
      case 'git':
        return ['latest', ...(await this.git!.names()).filter((n) => n !== 'latest')];
    }
  }

  /** A moving ref's resolution is reused for the TTL; a failed one is not cached. */
  private cached(tag: string, resolve: () => Promise<ResolvedTag>): Promise<ResolvedTag> {
    const now = this.now();
    const hit = this.cache.get(tag);
    if (hit && hit.expires > now) return hit.value;
    const value = resolve();
    this.cache.set(tag, { value, expires: now + this.ttlSeconds * 1000 });
    value.catch(() => this.cache.delete(tag));
    if (this.cache.size > 1000) this.cache.delete(this.cache.keys().next().value!);
    return value;
  }
}

function unknownTag(tag: string, why: string): RegistryError {
  return new RegistryError('MANIFEST_UNKNOWN', `unknown tag "${tag}": ${why}`, { tag });
}
