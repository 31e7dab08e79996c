#!/usr/bin/env bash
# Differential fuzzing against elastickv's own decoder (built locally by you from
# github.com/bootjp/elastickv; never vendored here).
# Usage: scripts/owner-fuzz.sh /path/to/elastickv-snapshot-decode
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 /path/to/elastickv-snapshot-decode" >&2; exit 2; }
EKV_DECODE="$(realpath "$1")" npx vitest run --config vitest.owner.config.ts
