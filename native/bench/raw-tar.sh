#!/usr/bin/env bash
# Median-of-N `tar -cf - d | wc -c` over a fresh mount of each trivial filesystem (20k x 12-byte files).
# usage: native/bench/raw-tar.sh <fuse-native rawfuse.cjs> [runs]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
fn_script="$1"; runs="${2:-5}"
declare -A times
one() { # name script
  local name="$1" script="$2"
    local mnt; mnt="$(mktemp -d /tmp/rawbench-XXXX)"
    node "$script" "$mnt" > /dev/null 2>&1 & local pid=$!
    for _ in $(seq 100); do [ -d "$mnt/d" ] && break; sleep 0.05; done
    local t0 t1; t0=$(date +%s.%N); tar -C "$mnt" -cf - d | wc -c > /dev/null; t1=$(date +%s.%N)
    times[$name]="${times[$name]:-} $(echo "$t1 - $t0" | bc)"
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    if mountpoint -q "$mnt"; then fusermount -u "$mnt"; fi
    rmdir "$mnt"
}
for i in $(seq "$runs"); do # interleaved, so load from elsewhere hits both alike
  one native "$here/rawfuse.cjs"
  one fuse-native "$fn_script"
done
for name in native fuse-native; do
  # shellcheck disable=SC2086
  printf '%s: median %s s (runs:%s)\n' "$name" "$(printf '%s\n' ${times[$name]} | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')" "${times[$name]}"
done
