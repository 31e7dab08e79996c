#!/usr/bin/env bash
# Regenerate test/golden/<case>/{0000000000000064.fsm,expected/} from
# test/golden/fixtures.ts using a locally built elastickv-snapshot-decode
# (elastickv's own decoder; build it yourself from github.com/bootjp/elastickv).
# Usage: scripts/golden-regen.sh /path/to/elastickv-snapshot-decode [case-name-regex]
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 /path/to/elastickv-snapshot-decode [case-regex]" >&2; exit 2; }
EKV_DECODE="$(realpath "$1")" EKV_GOLDEN_ONLY="${2:-}" npx vitest run --config vitest.regen.config.ts
