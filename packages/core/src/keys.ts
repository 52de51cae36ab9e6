// Keys: the names under which images and layers are cached, de-duplicated and stored. Every API
// replica and every worker, of this version and the next, must compute the same key for the same
// thing, or caches silently miss and identical builds run twice. So the formats below are a
// compatibility contract: test/keys.test.ts pins known values. Changing how images are built or
// layered means bumping LAYERING_VERSION, never editing these functions.
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import { z } from 'zod';
import type { System } from './systems.js';

/**
 * Version of everything that shapes an image beyond its inputs (layering algorithm, tar format,
 * symlink layer, config). Part of the image key: bump it to make every cached manifest stale.
 * Not the compression of layers (gzip level, block size): any gzip of a layer's tar is a valid
 * blob for its key, the layer record says which one, and a bump would only rebuild manifests over
 * the same cached layers (docs/layering.md, "Compression").
 * 2: popularity and dominator-tree layering (`planLayers`); 3: image labels; 4: stable layering
 * (`planStableLayers`, docs/layering.md "Stable layering"). Layer keys name store paths only, so
 * a v4 layer with the same paths as a v3 one (every popular path alone) is the same cached blob.
 */
export const LAYERING_VERSION = 4;

export interface ImageKeyInput {
  /** The package source: its identity (see sourceIdentity) and its resolved revision. */
  source: { identity: string; revision: string };
  system: System;
  packages: readonly string[];
  layeringVersion: number;
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/**
 * The image key: lowercase hex sha256 of the RFC 8785 (JCS) canonical JSON of exactly
 *   {"layeringVersion":<n>,"packages":[<sorted, unique>],
 *    "source":{"identity":<string>,"revision":<string>},"system":<string>}
 * (keys in JCS order, no whitespace, UTF-8). Any other fields of the input are ignored.
 */
export function imageKey(input: ImageKeyInput): string {
  const document = {
    source: { identity: input.source.identity, revision: input.source.revision },
    system: input.system,
    packages: [...new Set(input.packages)].sort(),
    layeringVersion: input.layeringVersion,
  };
  const json = canonicalize(document);
  if (json === undefined) throw new TypeError('imageKey: input cannot be canonicalized');
  return sha256Hex(json);
}

/**
 * The layer key: lowercase hex sha256 of the layer's store paths, sorted (code-unit order),
 * de-duplicated and joined with "\n" (no trailing newline), UTF-8.
 */
export function layerKey(storePaths: readonly string[]): string {
  return sha256Hex([...new Set(storePaths)].sort().join('\n'));
}

/**
 * The symlink layer's key: lowercase hex sha256 of "symlink-layer\n" followed by the package
 * outputs in priority order, joined with "\n". Order matters (the first output wins a path), and
 * store paths never change content, so this names the layer's content exactly; the prefix keeps
 * it apart from any store-path layer's key.
 */
export function symlinkLayerKey(outputs: readonly string[]): string {
  return sha256Hex(['symlink-layer', ...outputs].join('\n'));
}

/**
 * The one spelling of a key (and of a sha256 digest's hex part): 64 lowercase hex digits. Job
 * data, records and storage paths all check it through here.
 */
export const KEY_PATTERN = /^[a-f0-9]{64}$/;

/** Whether `value` looks like a key from imageKey/layerKey (64 lowercase hex). */
export function isKey(value: unknown): value is string {
  return typeof value === 'string' && KEY_PATTERN.test(value);
}

/** A key in job data and records. */
export const KeySchema = z.string().regex(KEY_PATTERN, 'expected 64 lowercase hex digits');
