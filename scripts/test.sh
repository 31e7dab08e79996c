#!/usr/bin/env bash
# Set-up plus the whole test suite (real FUSE mounts, real gRPC on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec npx vitest run "$@"
