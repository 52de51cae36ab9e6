// Systems: the Nix platforms Nixyard builds images for. The system is part of an image's identity
// (it changes the key), picks the build queue a job goes to, and becomes the OCI platform of the
// image config. Keeping the three mappings together means adding a platform is a one-file change.
import { z } from 'zod';

export const SYSTEMS = ['x86_64-linux', 'aarch64-linux'] as const;

export type System = (typeof SYSTEMS)[number];

export const DEFAULT_SYSTEM: System = 'x86_64-linux';

export const SystemSchema = z.enum(SYSTEMS);

export function isSystem(value: unknown): value is System {
  return typeof value === 'string' && (SYSTEMS as readonly string[]).includes(value);
}

/** The OCI image-spec platform (`architecture`, `os`) of a Nix system. */
export interface OciPlatform {
  readonly architecture: 'amd64' | 'arm64';
  readonly os: 'linux';
}

const PLATFORMS: Readonly<Record<System, OciPlatform>> = Object.freeze({
  'x86_64-linux': Object.freeze({ architecture: 'amd64', os: 'linux' }),
  'aarch64-linux': Object.freeze({ architecture: 'arm64', os: 'linux' }),
});

export function ociPlatformFor(system: System): OciPlatform {
  return PLATFORMS[system];
}
