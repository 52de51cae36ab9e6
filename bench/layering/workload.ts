// The layering benchmark's workload: a seeded sequence of image pulls, each 1-5 packages drawn
// with a Zipf distribution from the packages CI images and servers actually use, most used first.
// The same seed gives the same sequence on every machine (the tests' mulberry32, no Math.random).

import { prng } from '../../test/helpers/random.js';

/** Rank order: index 0 is the most requested. Debian package names, plus `shell`. */
export const WORKLOAD_PACKAGES: readonly string[] = Object.freeze([
  'shell', 'git', 'curl', 'python3', 'nodejs', 'openssh-client', 'gcc', 'make', 'jq', 'wget',
  'ca-certificates', 'gnupg', 'postgresql-client', 'golang-go', 'openjdk-17-jdk-headless', 'python3-pip', 'rsync', 'unzip', 'zip', 'g++',
  'cmake', 'rustc', 'cargo', 'ruby', 'default-mysql-client', 'redis-tools', 'sqlite3', 'docker.io', 'pkg-config', 'build-essential',
  'autoconf', 'automake', 'libtool', 'ninja-build', 'clang', 'perl', 'php-cli', 'maven', 'gradle', 'awscli',
  'ansible', 'shellcheck', 'vim', 'less', 'htop', 'strace', 'gdb', 'nginx', 'xz-utils', 'zstd',
  'bzip2', 'patch', 'file', 'gettext', 'ripgrep', 'tmux', 'netcat-openbsd', 'bind9-dnsutils', 'iproute2', 'mercurial',
  'subversion', 'lua5.4', 'erlang-base', 'elixir', 'ghc', 'chromium', 'imagemagick', 'ffmpeg', 'graphviz', 'pandoc',
  'python3-pandas', 'python3-scipy', 'python3-matplotlib', 'jupyter-notebook', 'git-lfs', 'openssl', 'nasm', 'qemu-utils', 'texlive-latex-base', 'php-fpm',
]);

/**
 * Nixery's `shell` meta-package is bashInteractive, coreutils, moreutils and nano; these are
 * their Debian counterparts.
 */
export const META_PACKAGES: Readonly<Record<string, readonly string[]>> = Object.freeze({
  shell: Object.freeze(['bash', 'coreutils', 'moreutils', 'nano']),
});

export interface WorkloadOptions {
  seed: number;
  pulls: number;
  /** Zipf exponent s: P(rank k) ∝ 1 / k^s. */
  exponent: number;
  minPackages: number;
  maxPackages: number;
}

export const DEFAULT_WORKLOAD: Readonly<WorkloadOptions> = Object.freeze({ seed: 16, pulls: 500, exponent: 1, minPackages: 1, maxPackages: 5 });

export interface Pull {
  /** The packages as requested (draw order), e.g. ["shell", "git"]. */
  packages: string[];
  /** The image's identity: the packages sorted and unique (the image key's part). */
  key: string;
}

/** The pull sequence: each pull has a uniform 1-5 packages, distinct, each drawn by Zipf rank. */
export function pullSequence(options: WorkloadOptions = DEFAULT_WORKLOAD, packages: readonly string[] = WORKLOAD_PACKAGES): Pull[] {
  const random = prng(options.seed);
  const weights = packages.map((_, k) => 1 / Math.pow(k + 1, options.exponent));
  const cumulative: number[] = [];
  let total = 0;
  for (const w of weights) cumulative.push((total += w));
  const draw = (): string => {
    const x = random() * total;
    let lo = 0;
    let hi = cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((cumulative[mid] as number) > x) hi = mid;
      else lo = mid + 1;
    }
    return packages[lo] as string;
  };
  const pulls: Pull[] = [];
  for (let i = 0; i < options.pulls; i++) {
    const count = options.minPackages + Math.floor(random() * (options.maxPackages - options.minPackages + 1));
    const chosen: string[] = [];
    while (chosen.length < Math.min(count, packages.length)) {
      const name = draw();
      if (!chosen.includes(name)) chosen.push(name);
    }
    pulls.push({ packages: chosen, key: [...chosen].sort().join(',') });
  }
  return pulls;
}

/** The Debian packages an image's requested packages stand for (`shell` expanded), in order. */
export function expandPackages(packages: readonly string[]): string[] {
  const out: string[] = [];
  for (const name of packages) for (const real of META_PACKAGES[name] ?? [name]) if (!out.includes(real)) out.push(real);
  return out;
}
