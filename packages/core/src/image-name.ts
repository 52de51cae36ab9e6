// Image names: what a client asks for. In `/v2/<name>/manifests/<reference>` the name *is* the
// image: its path components are the packages (nixpkgs attribute paths) plus meta-packages.
// Parsing turns it into a canonical ImageSpec (sorted, de-duplicated, system chosen), so every
// spelling of the same image keys, builds and caches as one. Anything outside the grammar is a
// NAME_INVALID here, before it can reach Nix, Redis or a log line.
import { attributePathProblem, MAX_ATTRIBUTE_PATH_LENGTH } from './attribute-path.js';
import { parseDigest, type Digest } from './digest.js';
import { displayValue } from './display.js';
import { RegistryError } from './registry-errors.js';
import { DEFAULT_SYSTEM, type System } from './systems.js';

/** Most path components accepted in one image name (counted before meta-packages expand). */
export const MAX_NAME_COMPONENTS = 64;

/** Longest name that can be valid: 64 components of 100 characters and the slashes between them. */
export const MAX_NAME_LENGTH = MAX_NAME_COMPONENTS * (MAX_ATTRIBUTE_PATH_LENGTH + 1) - 1;

/** `shell` in a name stands for these packages. */
export const SHELL_PACKAGES = Object.freeze(['bashInteractive', 'coreutils', 'moreutils', 'nano'] as const);

/** `arm64` in a name selects ARM64_SYSTEM. */
export const ARM64_COMPONENT = 'arm64';
export const ARM64_SYSTEM: System = 'aarch64-linux';
export const SHELL_COMPONENT = 'shell';

/** A canonical image: packages sorted (code-unit order) and de-duplicated, never empty. */
export interface ImageSpec {
  packages: string[];
  system: System;
}

export type Reference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: Digest };

export type ImageRequest = ImageSpec & { reference: Reference };

function nameInvalid(message: string, detail: Record<string, string | number>): RegistryError {
  return new RegistryError('NAME_INVALID', message, detail);
}

/** Sorted, de-duplicated copy (plain code-unit order, independent of locale). */
export function sortedUnique(values: Iterable<string>): string[] {
  return [...new Set(values)].sort();
}

/**
 * Parses the `<name>` of a registry URL into an ImageSpec. Meta-packages may appear anywhere:
 * `shell` expands to SHELL_PACKAGES, `arm64` selects aarch64-linux (default x86_64-linux).
 * Throws RegistryError NAME_INVALID naming the offending component and the reason.
 */
export function parseImageName(name: string): ImageSpec {
  if (name.length === 0) throw nameInvalid('invalid image name: the name is empty', { reason: 'empty' });
  // Checked before splitting, so an enormous name costs one comparison.
  if (name.length > MAX_NAME_LENGTH) {
    throw nameInvalid(
      `invalid image name ${displayValue(name)}: longer than ${MAX_NAME_LENGTH} characters`,
      { name: displayValue(name), reason: 'too long' },
    );
  }
  const components = name.split('/');
  if (components.length > MAX_NAME_COMPONENTS) {
    const extra = components[MAX_NAME_COMPONENTS] as string;
    throw nameInvalid(
      `invalid image name: ${components.length} components, at most ${MAX_NAME_COMPONENTS} allowed (first extra component ${displayValue(extra)})`,
      { component: displayValue(extra), position: MAX_NAME_COMPONENTS, reason: 'too many components' },
    );
  }

  let system: System = DEFAULT_SYSTEM;
  const packages: string[] = [];
  components.forEach((component, position) => {
    if (component.length === 0) {
      throw nameInvalid(
        `invalid image name component ${position + 1}: empty (a leading, trailing or doubled "/")`,
        { component: '', position, reason: 'empty component' },
      );
    }
    const problem = attributePathProblem(component);
    if (problem !== undefined) {
      throw nameInvalid(`invalid image name component ${displayValue(component)}: ${problem}`, {
        component: displayValue(component),
        position,
        reason: problem,
      });
    }
    if (component === ARM64_COMPONENT) system = ARM64_SYSTEM;
    else if (component === SHELL_COMPONENT) packages.push(...SHELL_PACKAGES);
    else packages.push(component);
  });

  if (packages.length === 0) {
    throw nameInvalid(`invalid image name ${displayValue(name)}: it names no package`, {
      name: displayValue(name),
      reason: 'no packages',
    });
  }
  return { packages: sortedUnique(packages), system };
}

const TAG_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/**
 * Parses the `<reference>` of a manifest URL. Anything containing `:` is a digest and must be
 * `sha256:<64 lowercase hex>` (else DIGEST_INVALID); anything else must match the distribution
 * spec's tag grammar (else TAG_INVALID).
 */
export function parseReference(reference: string): Reference {
  if (reference.includes(':')) return { kind: 'digest', digest: parseDigest(reference) };
  if (reference.length <= 128 && TAG_PATTERN.test(reference)) return { kind: 'tag', tag: reference };
  throw new RegistryError(
    'TAG_INVALID',
    `invalid tag ${displayValue(reference)}: expected [A-Za-z0-9_][A-Za-z0-9._-]{0,127}`,
    { tag: displayValue(reference) },
  );
}

/** Parses both halves of `/v2/<name>/manifests/<reference>`; the name is checked first. */
export function parseImageRequest(name: string, reference: string): ImageRequest {
  const spec = parseImageName(name);
  return { ...spec, reference: parseReference(reference) };
}

/**
 * The one spelling of an image, for logs and tags: sorted packages joined by `/`, with `arm64/`
 * in front for aarch64-linux. Meta-packages appear expanded, so it parses back to the same spec
 * (as long as the expansion left at most 64 components).
 */
export function canonicalImageName(spec: ImageSpec): string {
  const body = sortedUnique(spec.packages).join('/');
  return spec.system === ARM64_SYSTEM ? `${ARM64_COMPONENT}/${body}` : body;
}
