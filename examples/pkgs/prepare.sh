#!/usr/bin/env bash
# Fills the git-ignored examples/pkgs/.prepared/ with what default.nix copies into the store:
#   debs/<package>_<version>_<arch>.deb   the Debian packages listed in debian.json
#   root/<package>/                       each of them unpacked with dpkg-deb -x
#   versions.json                         { "<package>": "<Debian version>" }
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
  [[ -f $dir/stamp && -f $dir/large.bin && -f $dir/versions.json ]] || return 1
  mapfile -t stamp <"$dir/stamp"
  [[ ${stamp[0]-} == "$want" ]] || return 1
  for p in "${stamp[@]:1}"; do
    [[ -d $dir/root/$p ]] || return 1
  done
}
die() { echo "prepare.sh: $*" >&2; exit 1; }

if up_to_date; then
  echo "examples/pkgs/.prepared is up to date"
  exit 0
fi

mkdir -p "$dir/debs" "$dir/root"
exec 9>"$dir/lock"
flock 9
if up_to_date; then # another run finished while we waited for the lock
  echo "examples/pkgs/.prepared is up to date"
  exit 0
fi

mapfile -t packages < <(node -p 'require(process.argv[1]).join("\n")' "$here/debian.json")
[[ ${#packages[@]} -gt 0 ]] || die "debian.json lists no packages"

deb_of() { compgen -G "$dir/debs/${1}_*.deb" || true; }

# Drop what is no longer listed, so .prepared/ always matches debian.json.
for path in "$dir"/debs/*.deb "$dir"/root/*; do
  [[ -e $path ]] || continue
  name=${path##*/}
  name=${name%%_*}
  [[ " ${packages[*]} " == *" $name "* ]] || rm -rf "$path"
done

missing=()
for p in "${packages[@]}"; do
  [[ -n $(deb_of "$p") ]] || missing+=("$p:amd64")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "prepare.sh: downloading ${#missing[@]} Debian packages"
  tmp=$(mktemp -d "$dir/download.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # The sandbox option silences apt's warning about root downloading into a private directory.
  download() { (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "${missing[@]}"); }
  if ! download; then
    # Empty or outdated package lists are the usual cause (a fresh machine, a point release).
    [[ $EUID -eq 0 ]] || die "apt-get download failed; run 'apt-get update' as root, then retry"
    echo "prepare.sh: apt-get download failed; running apt-get update once and retrying"
    apt-get update -qq
    download || die "apt-get download failed even after apt-get update"
  fi
  mv "$tmp"/*.deb "$dir/debs/"
fi

for p in "${packages[@]}"; do
  [[ -d $dir/root/$p ]] && continue
  rm -rf "$dir/root/.$p.tmp"
  dpkg-deb -x "$(deb_of "$p")" "$dir/root/.$p.tmp"
  mv "$dir/root/.$p.tmp" "$dir/root/$p"
done

{
  sep=
  printf '{'
  for p in "${packages[@]}"; do
    # Debian package names and versions never need JSON escaping.
    printf '%s\n  "%s": "%s"' "$sep" "$p" "$(dpkg-deb -f "$(deb_of "$p")" Version)"
    sep=,
  done
  printf '\n}\n'
} >"$dir/versions.json.tmp"
mv "$dir/versions.json.tmp" "$dir/versions.json"

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
echo "examples/pkgs/.prepared is ready (${#packages[@]} Debian packages, large.bin)"
