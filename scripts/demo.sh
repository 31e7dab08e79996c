#!/usr/bin/env bash
# Mount the demo: an embedded elastickv dev cluster with data in all four adapters,
# mounted read-only through the live (pinned) path. Ctrl-C unmounts.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
MNT="${1:-${TMPDIR:-/tmp}/ekv-demo}"
mkdir -p "$MNT"
if grep -q " $MNT " /proc/self/mountinfo; then fusermount -u "$MNT" || true; fi
cat <<MSG
ekv-mount demo: mounting at $MNT (Ctrl-C to unmount)
  look around:   ls $MNT; cat $MNT/MANIFEST.json
                 jq . $MNT/dynamodb/*/_schema.json
                 cat $MNT/redis/db_0/strings/*.bin
                 jq -c . $MNT/sqs/*/messages.jsonl
                 (cd $MNT && sha256sum -c CHECKSUMS)
  copy it:       rsync -a $MNT/ /tmp/backup-copy/   or   tar -C $MNT -cf backup.tar .
MSG
exec node bin/ekv-mount.js "$MNT" --demo --log-level "${LOG_LEVEL:-warn}"
