// Package sources: where the package set that names resolve against comes from (Nixery's
// NIXERY_CHANNEL, NIXERY_PKGS_REPO, NIXERY_PKGS_PATH). The source is job data, so it has a schema;
// and it is part of the image key, so it has a stable identity string.
import { posix } from 'node:path';
import { z } from 'zod';

// A leading "-" would be read as an option by git or nix; whitespace and control characters have
// no place in a URL or a channel name.
const noOptionLike = (s: string): boolean => !s.startsWith('-');
const printable = (s: string): boolean => /^[\x21-\x7e]+$/.test(s);

export const PathSourceSchema = z.object({
  kind: z.literal('path'),
  path: z
    .string()
    .min(1)
    .refine((p) => posix.isAbsolute(p), 'expected an absolute path')
    .refine((p) => !/[\x00-\x1f\x7f]/.test(p), 'path contains a control character'),
});

export const GitSourceSchema = z.object({
  kind: z.literal('git'),
  url: z
    .string()
    .min(1)
    .refine(printable, 'expected a git URL without whitespace or control characters')
    .refine(noOptionLike, 'a git URL cannot start with "-"'),
  ref: z
    .string()
    .min(1)
    .refine(printable, 'expected a git ref without whitespace or control characters')
    .refine(noOptionLike, 'a git ref cannot start with "-"')
    .optional(),
});

export const CHANNEL_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;

export const ChannelSourceSchema = z.object({
  kind: z.literal('channel'),
  channel: z.string().regex(CHANNEL_PATTERN, 'expected a channel name like nixos-unstable or nixos-24.05'),
});

export const PackageSourceSchema = z.discriminatedUnion('kind', [
  PathSourceSchema,
  GitSourceSchema,
  ChannelSourceSchema,
]);

export type PathSource = z.infer<typeof PathSourceSchema>;
export type GitSource = z.infer<typeof GitSourceSchema>;
export type ChannelSource = z.infer<typeof ChannelSourceSchema>;
export type PackageSource = z.infer<typeof PackageSourceSchema>;

/**
 * A stable string naming the source (not its revision) for the image key: `path:<abs path>`,
 * `git:<url>`, `channel:<name>`. A git `ref` is not part of it: the ref only chooses a revision,
 * and the resolved revision is keyed separately. Part of the key contract: do not change.
 */
export function sourceIdentity(source: PackageSource): string {
  switch (source.kind) {
    case 'path':
      return `path:${source.path}`;
    case 'git':
      return `git:${source.url}`;
    case 'channel':
      return `channel:${source.channel}`;
  }
}

/**
 * The revision a path source is keyed with. A directory has no commit to name its content, so
 * its images are keyed by this word and treated as a moving target: rebuilt once their record is
 * older than NIXERY_MANIFEST_TTL (the job's `freshAfter`).
 */
export const PATH_REVISION = 'unversioned';
