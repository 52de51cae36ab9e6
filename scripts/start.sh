#!/usr/bin/env bash
# `npm start`: installs what a fresh Debian/Ubuntu machine is missing, then starts Nixyard with
# embedded defaults (scripts/start.ts, which compiles the roles first when dist/ is missing or stale).
# Everything it installs is idempotent and skipped when present.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-system-packages.sh
# npm dependencies: install when missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
bash examples/pkgs/prepare.sh
exec node --import tsx scripts/start.ts
