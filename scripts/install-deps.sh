#!/usr/bin/env bash
# Installs everything the test suite and benchmarks need on a fresh Debian machine:
# Debian packages (Redis, skopeo, containerd, qemu-utils, wrk, hyperfine, the OpenStack CLIs)
# and the Go-built clients at pinned versions into $(go env GOPATH)/bin.
# Idempotent: a second run only checks.
set -euo pipefail

PKGS=(redis-server skopeo containerd qemu-utils qemu-block-extra wrk hyperfine python3-openstackclient python3-glanceclient python3-barbicanclient keystone postgresql python3-psycopg2 tempest chromium fonts-dejavu-core)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

GOBIN_DIR="$(go env GOPATH)/bin"
declare -A TOOLS=(
  [oras]=oras.land/oras/cmd/oras@v1.3.6
  [crane]=github.com/google/go-containerregistry/cmd/crane@v0.22.1
  [cosign]=github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5
  [registry]=github.com/distribution/distribution/v3/cmd/registry@v3.1.2
  [staticcheck]=honnef.co/go/tools/cmd/staticcheck@v0.8.2
  [versitygw]=github.com/versity/versitygw/cmd/versitygw@v1.8.0
)
pids=()
for bin in "${!TOOLS[@]}"; do
  if [ ! -x "$GOBIN_DIR/$bin" ]; then
    (go install "${TOOLS[$bin]}" && echo "installed $bin") &
    pids+=($!)
  fi
done
for p in "${pids[@]}"; do wait "$p"; done

# The OCI conformance suite (pinned): built from its module with go build.
CONF_MOD=github.com/opencontainers/distribution-spec/conformance
CONF_VER=v0.0.0-20260831232431-97274622c111
if [ ! -x "$GOBIN_DIR/oci-conformance" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && go mod init conformancebuild >/dev/null 2>&1 &&
    go get "$CONF_MOD@$CONF_VER" >/dev/null 2>&1 &&
    go build -o "$GOBIN_DIR/oci-conformance" "$CONF_MOD")
  rm -rf "$tmp"
  echo "installed oci-conformance"
fi
echo "dependencies ready"
