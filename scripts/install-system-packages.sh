#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages Nixyard's quick start and tests need, when missing.
# Used by `npm start` and by CI, so the list lives in one place.
#   nix-bin            Nix itself (single-user as root)
#   patchelf           the bundled package set rewrites Debian's ELF files to store paths
#   redis-server       the queue, started privately by the quick start and the tests
#   skopeo, umoci      real OCI clients for the end-to-end tests
#   git, ca-certificates, xz-utils   package sources fetched by Nix
# With --test (CI), also what only the tests need:
#   chromium           renders the status page headless in its end-to-end test
#   nginx              runs ops/nginx/nginx.conf in front of the API in the proxy test
#   podman, containerd two more real clients: pull and unpack images (test/e2e/container-engines)
#   apache2-utils      `htpasswd -B`, which writes the bcrypt users file of the pull auth tests (test/e2e/auth)
# With --bench, what the benches compare Nixyard with and load it with (they install nothing themselves):
#   docker-registry    distribution 2.8.2, bench:serve's performance peer
#   wrk                the HTTP load generator (bench:serve, bench:storm's warm pulls)
#   curl               bench:storm's storm of cold pulls
#   nginx              bench:serve's proxy figures, with ops/nginx/nginx.conf
# With --farm, what `npm run farm` (scripts/farm.ts, the whole topology in network namespaces) runs:
#   iproute2           `ip`: the namespaces, the bridge and the veth pairs
#   procps             `sysctl`: the proxy host's TCP timeouts (docker-compose.yml's `sysctls`)
#   nginx              the proxy, with ops/nginx/nginx.conf
#   prometheus         scrapes every API and worker, with ops/prometheus/prometheus.yml
# The flags combine: `--test --bench --farm`.
set -euo pipefail

packages=(nix-bin patchelf redis-server skopeo umoci git ca-certificates xz-utils)
test_packages=(chromium nginx podman containerd apache2-utils)
bench_packages=(docker-registry wrk curl nginx)
farm_packages=(iproute2 procps nginx prometheus)

for arg in "$@"; do
  case "$arg" in
    --test) packages+=("${test_packages[@]}") ;;
    --bench) packages+=("${bench_packages[@]}") ;;
    --farm) packages+=("${farm_packages[@]}") ;;
    *) echo "usage: $0 [--test] [--bench] [--farm]" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "nixyard: please install these packages first: ${missing[*]}" >&2
  exit 1
fi
echo "nixyard: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
