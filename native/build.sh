#!/usr/bin/env bash
# Build the libfuse3 Node-API addon: native/build/ekvfuse.node. Needs gcc, pkg-config, libfuse3-dev and
# Node's headers (/usr/include/node). Rebuilds only when the source is newer than the addon (or with -f).
set -euo pipefail
cd "$(dirname "$0")/.."
src=native/ekvfuse.c
out=native/build/ekvfuse.node
if [ "${1:-}" != "-f" ] && [ -f "$out" ] && [ "$out" -nt "$src" ] && [ "$out" -nt native/build.sh ]; then
  exit 0
fi
node_inc="${NODE_INCLUDE_DIR:-/usr/include/node}"
if [ ! -f "$node_inc/node_api.h" ]; then
  # Node's own install tree carries the headers too.
  alt="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")/include/node"
  [ -f "$alt/node_api.h" ] && node_inc="$alt"
fi
if [ ! -f "$node_inc/node_api.h" ]; then
  echo "native/build.sh: node_api.h not found (looked in /usr/include/node and next to node); set NODE_INCLUDE_DIR" >&2
  exit 1
fi
if ! pkg-config --exists fuse3; then
  echo "native/build.sh: pkg-config cannot find fuse3 (install libfuse3-dev pkg-config)" >&2
  exit 1
fi
mkdir -p native/build
tmp="$out.tmp.$$"
# shellcheck disable=SC2046
if ! gcc -O2 -Wall -Wextra -Wno-unused-parameter -shared -fPIC -pthread -I"$node_inc" $(pkg-config --cflags fuse3) \
  "$src" $(pkg-config --libs fuse3) -o "$tmp"; then
  rm -f "$tmp"
  echo "native/build.sh: building $out FAILED" >&2
  exit 1
fi
mv -f "$tmp" "$out"
echo "native/build.sh: built $out" >&2
