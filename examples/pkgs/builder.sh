# Shared builder of examples/pkgs (run by the host's /bin/sh; see default.nix).
#
# Copies files of unpacked Debian packages into $out, then points every ELF file at the store:
# programs get $interpreter as their loader, and programs and libraries get a RUNPATH of
# $out/lib plus $libPath. Inputs, set by default.nix (unset ones are empty):
#   debs         unpacked Debian packages (directories under .prepared/root or .prepared/arm64/root)
#   programs     names of the programs to install; empty means every ELF program
#   data         "dest=src" pairs: copy file or directory src to $out/dest
#   interpreter  the dynamic loader in the glibc package
#   libPath      colon-separated lib directories of the dependencies
#   triplet      Debian's multiarch directory name; empty on a system nothing is prepared for
#   loader       file name of the dynamic loader
#   check        how installed ELF files are checked: loader or static (see below)
# shellcheck shell=sh disable=SC2154 # the inputs are the derivation's environment
set -eu
: "${programs=}" "${interpreter=}" "${libPath=}"
# Impure on purpose: the tools are the host's.
PATH=/usr/bin:/bin

die() {
  printf 'builder: %s\n' "$*" >&2
  exit 1
}

if [ -z "$triplet" ]; then
  die "examples/pkgs has Debian binaries for x86_64-linux and aarch64-linux only, not for $system"
fi

elf_magic=$(printf '\177ELF')
is_elf() { [ -f "$1" ] && [ ! -L "$1" ] && [ "$(head -c 4 "$1")" = "$elf_magic" ]; }

links=
for root in $debs; do
  # Only the top level of the multiarch directories: Debian's binaries look for plugins (gconv,
  # OpenSSL engines, ...) at their compiled-in /usr paths, which an image does not have.
  for f in "$root/lib/$triplet"/*.so* "$root/usr/lib/$triplet"/*.so*; do
    if [ -e "$f" ] || [ -L "$f" ]; then
      mkdir -p "$out/lib"
      cp -P "$f" "$out/lib/"
    fi
  done
  # Scripts are skipped: their interpreters (perl, ...) are not in the set.
  for dir in bin usr/bin sbin usr/sbin; do
    for f in "$root/$dir"/*; do
      if [ -n "$programs" ]; then
        case " $programs " in *" ${f##*/} "*) ;; *) continue ;; esac
      fi
      if is_elf "$f"; then
        mkdir -p "$out/bin"
        cp "$f" "$out/bin/"
      elif [ -L "$f" ]; then
        links="$links $f"
      fi
    done
  done
done

# Keep the symlinks that point at an installed program (rbash -> bash).
for f in $links; do
  target=$(readlink "$f")
  if [ -f "$out/bin/${target##*/}" ]; then
    ln -s "${target##*/}" "$out/bin/${f##*/}"
  fi
done

for name in $programs; do
  [ -e "$out/bin/$name" ] || die "no ELF program '$name' in: $debs"
done

for pair in $data; do
  dest=${pair%%=*}
  mkdir -p "$out/$(dirname "$dest")"
  cp -R "${pair#*=}" "$out/$dest"
done

rpath=$libPath
if [ -d "$out/lib" ]; then
  rpath=$out/lib${libPath:+:$libPath}
fi

# Fail on any library the loader would not find in the store: a Debian update that adds a
# dependency must break this build, not the programs in an image. `check` says how:
# - loader: ask the dynamic loader which libraries each file loads (the build machine can run
#   the programs, as for x86_64-linux on x86_64);
# - static: without running anything (aarch64-linux built on x86_64 with extra-platforms): the
#   file must be for the loader's machine, a program's interpreter must be the loader, every
#   RUNPATH directory must be in the store, and every DT_NEEDED library must be in one of them
#   (the loader looks for a file's DT_NEEDED in its own RUNPATH only, and each library in the
#   store was checked the same way when it was built, so this covers the whole closure).
check_with_loader() {
  listing=$("$interpreter" --list "$1" 2>&1) || die "${1#"$out"/}: $listing"
  outside=$(printf '%s\n' "$listing" |
    grep -v -e "=> $NIX_STORE/" -e "^[[:space:]]*$NIX_STORE/" -e '^[[:space:]]*linux-vdso\.so' ||
    true)
  [ -z "$outside" ] || die "${1#"$out"/} loads libraries from outside $NIX_STORE:
$outside"
}

elf_machine() { od -An -tu2 -j18 -N2 "$1" | tr -d ' '; }
machine=
check_statically() {
  name=${1#"$out"/}
  if [ -z "$machine" ]; then
    [ -f "$interpreter" ] || die "$name: the loader $interpreter is missing"
    machine=$(elf_machine "$interpreter")
  fi
  [ "$(elf_machine "$1")" = "$machine" ] ||
    die "$name is for ELF machine $(elf_machine "$1"), its loader for $machine"
  case $1 in
    "$out"/bin/*)
      [ "$(patchelf --print-interpreter "$1")" = "$interpreter" ] ||
        die "$name: its interpreter is not $interpreter"
      ;;
  esac
  runpath=$(patchelf --print-rpath "$1")
  dirs=$(printf '%s\n' "$runpath" | tr : ' ')
  for dir in $dirs; do
    case $dir in
      "$NIX_STORE"/*) ;;
      *) die "$name has a RUNPATH directory outside $NIX_STORE: $dir" ;;
    esac
  done
  for lib in $(patchelf --print-needed "$1"); do
    found=
    for dir in $dirs; do
      if [ -f "$dir/$lib" ]; then
        found=$dir/$lib
        break
      fi
    done
    [ -n "$found" ] || die "$name needs $lib, which is in none of its RUNPATH directories: $runpath"
  done
}

check() {
  case $check in
    loader) check_with_loader "$1" ;;
    static) check_statically "$1" ;;
    *) die "unknown check '$check'" ;;
  esac
}

for f in "$out"/lib/*; do
  if is_elf "$f" && [ "${f##*/}" != "$loader" ]; then
    patchelf --set-rpath "$rpath" "$f"
  fi
done
for f in "$out"/bin/*; do
  if is_elf "$f"; then
    patchelf --set-interpreter "$interpreter" --set-rpath "$rpath" "$f"
  fi
done
# Only now: a library's dependencies may sit next to it in $out/lib.
for f in "$out"/lib/* "$out"/bin/*; do
  if is_elf "$f" && [ "${f##*/}" != "$loader" ]; then
    check "$f"
  fi
done

# End on a builtin: Nix 2.8 can kill a builder whose last command is an external program.
exit 0
