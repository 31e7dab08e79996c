#!/usr/bin/env bash
# Idempotent set-up: system packages the mount and the tests use, node modules, build.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for p in libfuse2 fuse3 libfuse3-dev pkg-config gcc rsync jq fio hyperfine tar coreutils diffutils procps openssl; do
  have_pkg "$p" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages ${need[*]}; run as root or: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ ! -e /dev/fuse ]; then
  echo "setup: /dev/fuse is missing (load the fuse kernel module); mounts will fail" >&2
fi

# fuse-native ships a prebuilt addon (node-gyp-build), so no install scripts are needed.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
# The libfuse3 Node-API addon (--fuse-backend native); rebuilt when native/ekvfuse.c is newer. Fails loudly.
native/build.sh
