#!/usr/bin/env bash
# Fills the git-ignored examples/pkgs/.prepared/ with what default.nix copies into the store:
#   debs/<package>_<version>_<arch>.deb   the amd64 builds of the Debian packages in debian.json
#   root/<package>/                       each of them unpacked with dpkg-deb -x
#   versions.json                         { "<package>": "<Debian version>" }
#   arm64/debs/, arm64/root/, arm64/versions.json
#                                         the same for arm64, which aarch64-linux builds from
#   arm64/apt/                            apt's arm64 package lists, apart from the host's
#   large.bin                             64 MiB of incompressible, deterministic bytes
# Idempotent and safe to run concurrently. To pick up newer Debian versions, delete .prepared/.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=$here/.prepared
# A complete run writes a stamp: the hash of its inputs, then the packages it unpacked. A later
# run with the same inputs and nothing deleted since is a no-op.
want=$(cat "$here/debian.json" "$here/prepare.sh" | sha256sum)
want=${want%% *}

up_to_date() {
  local stamp p
  [[ -f $dir/stamp && -f $dir/large.bin ]] || return 1
  [[ -f $dir/versions.json && -f $dir/arm64/versions.json ]] || return 1
  mapfile -t stamp <"$dir/stamp"
  [[ ${stamp[0]-} == "$want" ]] || return 1
  for p in "${stamp[@]:1}"; do
    [[ -d $dir/root/$p && -d $dir/arm64/root/$p ]] || return 1
  done
}
die() { echo "prepare.sh: $*" >&2; exit 1; }

if up_to_date; then
  echo "examples/pkgs/.prepared is up to date"
  exit 0
fi

mkdir -p "$dir"
exec 9>"$dir/lock"
flock 9
if up_to_date; then # another run finished while we waited for the lock
  echo "examples/pkgs/.prepared is up to date"
  exit 0
fi

mapfile -t packages < <(node -p 'require(process.argv[1]).join("\n")' "$here/debian.json")
[[ ${#packages[@]} -gt 0 ]] || die "debian.json lists no packages"

tmp=$(mktemp -d "$dir/download.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The .deb of package $2 in directory $1, if there is one.
deb_of() { compgen -G "$1/debs/${2}_*.deb" || true; }

# apt-get and apt-cache for arm64: the host's sources and settings (mirror, proxy, keys), but
# package lists and a cache of their own under arm64/apt, so that nothing of the host's apt or
# dpkg state is read or changed. Only the Packages indices are fetched, no translations, and
# they are kept compressed.
arm64_apt=(
  -o "Dir::State=$dir/arm64/apt/state" -o Dir::State::status=/dev/null
  -o "Dir::Cache=$dir/arm64/apt/cache" -o APT::Architecture=arm64 -o APT::Architectures=arm64
  -o Acquire::Languages=none -o Acquire::GzipIndexes=true
)
# The sandbox option silences apt's warning about root downloading into a private directory.
download() { # <apt-get option>... -- <package>...
  local opts=()
  while [[ $1 != -- ]]; do opts+=("$1"); shift; done
  shift
  (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "${opts[@]}" "$@")
}
update_arm64() {
  echo "prepare.sh: fetching Debian's arm64 package lists"
  mkdir -p "$dir/arm64/apt/state/lists/partial" "$dir/arm64/apt/cache/archives/partial"
  # A source that fails (an unreachable third-party repository, say) need not hold our packages:
  # let the download decide.
  apt-get update -qq -o APT::Sandbox::User=root "${arm64_apt[@]}" ||
    echo "prepare.sh: apt-get update (arm64) reported errors; trying to download anyway" >&2
}

# What arm64 asks apt for: "<package>=<version>" with the amd64 version where the arm64 lists
# have it, so that both systems get the same Debian versions; apt's choice otherwise (an
# architecture's own rebuild, "+b1", has a version of its own).
arm64_requests() { # <package>...
  local -A amd64=() listed=()
  local p v
  # The lines of versions.json, written above, are '  "<package>": "<version>",'.
  while IFS='"' read -r _ p _ v _; do
    [[ -z $p ]] || amd64[$p]=$v
  done <"$dir/versions.json"
  while read -r p _ v _; do
    listed[$p=$v]=1
  done < <(apt-cache "${arm64_apt[@]}" madison "$@" 2>/dev/null || true)
  for p in "$@"; do
    v=${amd64[$p]-}
    if [[ -n ${listed[$p=$v]-} ]]; then echo "$p=$v"; else echo "$p"; fi
  done
}

# Downloads into $2 (a .prepared/ directory) the packages of architecture $1 it lacks, unpacks
# them into root/ and writes versions.json; drops what debian.json no longer lists.
prepare() { # <amd64|arm64> <directory>
  local arch=$1 tree=$2 path name p deb
  local missing=() requests=()
  mkdir -p "$tree/debs" "$tree/root"

  # Drop what is no longer listed, so the directory always matches debian.json.
  for path in "$tree"/debs/*.deb "$tree"/root/*; do
    [[ -e $path ]] || continue
    name=${path##*/}
    name=${name%%_*}
    [[ " ${packages[*]} " == *" $name "* ]] || rm -rf "$path"
  done

  for p in "${packages[@]}"; do
    [[ -z $(deb_of "$tree" "$p") ]] || continue
    deb=$(deb_of "$dir" "$p")
    if [[ $arch != amd64 && $(dpkg-deb -f "$deb" Architecture) == all ]]; then
      # The very same file for every architecture: take amd64's rather than download it again.
      ln -f "$deb" "$tree/debs/" 2>/dev/null || cp "$deb" "$tree/debs/"
    else
      missing+=("$p")
    fi
  done

  if [[ ${#missing[@]} -gt 0 ]]; then
    echo "prepare.sh: downloading ${#missing[@]} Debian packages ($arch)"
    if [[ $arch == amd64 ]]; then
      requests=("${missing[@]/%/:amd64}")
      if ! download -- "${requests[@]}"; then
        # Empty or outdated package lists are the usual cause (a fresh machine, a point release).
        [[ $EUID -eq 0 ]] || die "apt-get download failed; run 'apt-get update' as root, then retry"
        echo "prepare.sh: apt-get download failed; running apt-get update once and retrying"
        apt-get update -qq
        download -- "${requests[@]}" || die "apt-get download failed even after apt-get update"
      fi
    else
      # The lists are missing on a fresh clone, and outdated after a point release.
      [[ -n $(compgen -G "$dir/arm64/apt/state/lists/*_Packages*") ]] || update_arm64
      mapfile -t requests < <(arm64_requests "${missing[@]}")
      if ! download "${arm64_apt[@]}" -- "${requests[@]}"; then
        update_arm64
        mapfile -t requests < <(arm64_requests "${missing[@]}")
        download "${arm64_apt[@]}" -- "${requests[@]}" ||
          die "apt-get download (arm64) failed even after apt-get update; do the host's apt" \
            "sources serve arm64?"
      fi
    fi
    mv "$tmp"/*.deb "$tree/debs/"
  fi

  for p in "${packages[@]}"; do
    [[ -d $tree/root/$p ]] && continue
    rm -rf "$tree/root/.$p.tmp"
    dpkg-deb -x "$(deb_of "$tree" "$p")" "$tree/root/.$p.tmp"
    mv "$tree/root/.$p.tmp" "$tree/root/$p"
  done

  {
    local sep=
    printf '{'
    for p in "${packages[@]}"; do
      # Debian package names and versions never need JSON escaping.
      printf '%s\n  "%s": "%s"' "$sep" "$p" "$(dpkg-deb -f "$(deb_of "$tree" "$p")" Version)"
      sep=,
    done
    printf '\n}\n'
  } >"$tree/versions.json.tmp"
  mv "$tree/versions.json.tmp" "$tree/versions.json"
}

# amd64 stays in .prepared/ itself, where default.nix's x86_64-linux has always found it.
prepare amd64 "$dir"
prepare arm64 "$dir/arm64"

# AES-128-CTR with an all-zero key and IV over zeros: pseudo-random, so no compressor or
# chunker can shrink it, yet byte-for-byte the same everywhere (checked against its hash).
if [[ ! -f $dir/large.bin ]]; then
  node -e '
    const crypto = require("crypto"), fs = require("fs");
    const [file, want] = process.argv.slice(1);
    const cipher = crypto.createCipheriv("aes-128-ctr", Buffer.alloc(16), Buffer.alloc(16));
    const hash = crypto.createHash("sha256"), zeros = Buffer.alloc(1 << 20);
    const fd = fs.openSync(file, "w");
    for (let i = 0; i < 64; i++) {
      const block = cipher.update(zeros);
      hash.update(block);
      fs.writeSync(fd, block);
    }
    fs.closeSync(fd);
    if (hash.digest("hex") !== want) throw new Error("large.bin: unexpected content");
  ' "$dir/large.bin.tmp" f30fb789a9f52beedf72cacba5240bcd34e513150a201daab9f24dde4051556d
  mv "$dir/large.bin.tmp" "$dir/large.bin"
fi

printf '%s\n' "$want" "${packages[@]}" >"$dir/stamp.tmp"
mv "$dir/stamp.tmp" "$dir/stamp"
echo "examples/pkgs/.prepared is ready" \
  "(${#packages[@]} Debian packages for amd64 and arm64, large.bin)"
