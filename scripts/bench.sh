#!/usr/bin/env bash
# Benchmarks xloud-image against CNCF Distribution v3.1.2 side by side (make bench): builds
# the server and the harness, then runs bench/cmd/regbench, which starts both registries on
# loopback, measures blob PUT/GET, manifest GETs (wrk) and peak RSS, and xloud-image's Image
# API upload/download against its own Registry API blob PUT/GET, prints a Markdown table and
# writes bench/results.md. Arguments go to regbench, e.g.:
#   scripts/bench.sh -quick                 # small sizes: checks the harness (~20 s); its ratios
#                                           # are not the targets' (per-request costs weigh on 64 MiB)
#   scripts/bench.sh -size 1GiB -rss-size 4GiB -wrk-duration 10s   # the defaults (~1.5-3 min)
#   scripts/bench.sh -profile /tmp/prof     # also perf-profile xloud-image (PUT, GET, Image API
#                                           # upload and download, manifest GETs)
# Needs: Go, wrk, dd, Distribution's registry binary (scripts/install-deps.sh installs them);
# root, to drop the page cache between PUTs and to reset a process's peak RSS.
# On a shared machine it waits before each phase (up to 2 min in all; -wait-idle overrides)
# for other processes to leave the CPUs alone, and the results say how much CPU others took
# during each phase.
set -euo pipefail
cd "$(dirname "$0")/.."

GOBIN_DIR="$(go env GOPATH)/bin"
DIST="${DISTRIBUTION:-$GOBIN_DIR/registry}"
for need in wrk dd "$DIST"; do
  if ! command -v "$need" >/dev/null 2>&1; then
    echo "bench: $need not found; run scripts/install-deps.sh" >&2
    exit 1
  fi
done
if [ "$(id -u)" != 0 ]; then
  echo "bench: not root: the page cache cannot be dropped and peak RSS cannot be reset; numbers will say so" >&2
fi

mkdir -p bin
go build -o bin/xloud-image ./cmd/xloud-image
go build -o bin/regbench ./bench/cmd/regbench
exec bin/regbench -xloud bin/xloud-image -distribution "$DIST" -wait-idle 2m "$@"
