#!/usr/bin/env bash
# Runs TestTempest (both credential modes) with an upstream tempest checkout in place of
# Debian's tempest 33: the by-hand check of the newest tempest. The checkout is fetched by
# whoever runs this and never committed.
#   scripts/tempest-upstream.sh /path/to/tempest   (a clone of opendev.org/openstack/tempest)
set -euo pipefail
src=$(cd "${1:?usage: $0 TEMPEST-CHECKOUT}" && pwd)
[ -f "$src/tempest/cmd/main.py" ] || { echo "$src is not a tempest checkout" >&2; exit 2; }
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
cat >"$bin/tempest" <<WRAP
#!/bin/sh
PYTHONPATH="$src" exec /usr/bin/python3 -c 'import sys; from tempest.cmd.main import main; sys.exit(main())' "\$@"
WRAP
chmod +x "$bin/tempest"
cd "$(dirname "$0")/.."
echo "tempest from $src ($(git -C "$src" log -1 --format='%h %cs' 2>/dev/null || echo 'not a git checkout'))"
PATH="$bin:$PATH" XLOUD_TEMPEST_UPSTREAM=1 go test -count=1 -v -timeout 60m -run 'TestTempest$' ./conformance/ | grep -E 'tempest \(|^(---|ok|FAIL)|tempest failures|^\s+tempest\.'
