# Builder of cacert (run by the host's /bin/sh; see default.nix): nixpkgs' layout, one PEM
# bundle of the Mozilla root certificates that Debian's ca-certificates ships one file each.
# shellcheck shell=sh disable=SC2154 # the inputs are the derivation's environment
set -eu
PATH=/usr/bin:/bin

mkdir -p "$out/etc/ssl/certs"
for cert in "$debs"/usr/share/ca-certificates/mozilla/*.crt; do
  cat "$cert"
done >"$out/etc/ssl/certs/ca-bundle.crt"
grep -q 'BEGIN CERTIFICATE' "$out/etc/ssl/certs/ca-bundle.crt"

# End on a builtin: Nix 2.8 can kill a builder whose last command is an external program.
exit 0
