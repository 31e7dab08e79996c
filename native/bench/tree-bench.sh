#!/usr/bin/env bash
# ekv-mount over a .fsm with each FUSE backend, a fresh mount per run (cold kernel and content caches):
#   redis: tar -C mnt -cf - redis | wc -c      whole: tar -C mnt -cf - . | wc -c
#   seq:   dd of the largest file, bs=1M (MB/s)
# usage: native/bench/tree-bench.sh <file.fsm> [runs] [tests...]   (tests: redis whole seq; default all)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
fsm="$1"; runs="${2:-3}"; shift 2 || true
tests=("$@"); [ "${#tests[@]}" -gt 0 ] || tests=(redis whole seq)
declare -A res

mount_fresh() { # backend -> sets mnt, pid
  mnt="$(mktemp -d /tmp/ekv-tb-XXXX)"
  node "$root/bin/ekv-mount.js" "$mnt" --snapshot "$fsm" --fuse-backend "$1" --log-level warn --progress-interval 0 > "$mnt.log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do grep -q 'mounted at' "$mnt.log" 2>/dev/null && return 0; sleep 0.1; done
  echo "mount failed: $(cat "$mnt.log")" >&2; return 1
}
unmount_fresh() {
  fusermount -u "$mnt" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rmdir "$mnt"; rm -f "$mnt.log"
}
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for r in $(seq "$runs"); do
  for backend in native fuse-native; do # interleaved, so load from elsewhere hits both alike
    for t in "${tests[@]}"; do
      mount_fresh "$backend"
      case "$t" in
        redis) t0=$(now); bytes=$(tar -C "$mnt" -cf - redis | wc -c); v=$(echo "$(now) - $t0" | bc) ;;
        whole) t0=$(now); bytes=$(tar -C "$mnt" -cf - . | wc -c); v=$(echo "$(now) - $t0" | bc) ;;
        seq)
          f=$(find "$mnt" -type f -size +16M -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2-)
          t0=$(now); bytes=$(dd if="$f" bs=1M status=none | wc -c); el=$(echo "$(now) - $t0" | bc)
          v=$(echo "scale=1; $bytes / 1048576 / $el" | bc) ;;
      esac
      res[$backend.$t]="${res[$backend.$t]:-} $v"
      echo "run $r $backend $t: $v ($bytes bytes)" >&2
      unmount_fresh
    done
  done
done
for t in "${tests[@]}"; do
  unit=s; [ "$t" = seq ] && unit=MiB/s
  for backend in native fuse-native; do
    # shellcheck disable=SC2086
    printf '%-6s %-12s median %s %s (runs:%s)\n' "$t" "$backend" "$(printf '%s\n' ${res[$backend.$t]} | median)" "$unit" "${res[$backend.$t]}"
  done
done
