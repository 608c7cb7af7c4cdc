#!/usr/bin/env bash
# Benchmarks the signing rule on the pull path (make bench): manifest GET by tag with wrk (32
# connections) of a cosign-signed VM disk, as a reader of its project, with the project's
# signing policy off and then enforce, alternating in the same run so both see the same
# machine; prints the rates and the ratio enforce/off (the goal is >= 0.9: a pull under
# enforce only reads the verdict made when the signature was pushed, it runs no crypto).
#   scripts/bench-signing.sh [seconds per run, default 5] [rounds, default 6]
# Needs: Go, wrk, curl, jq, qemu-img, oras, cosign (scripts/install-deps.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${1:-5}"
ROUNDS="${2:-6}"
GOBIN_DIR="$(go env GOPATH)/bin"
export PATH="$GOBIN_DIR:$PATH"
for need in wrk curl jq qemu-img oras cosign; do
  command -v "$need" >/dev/null 2>&1 || { echo "bench-signing: $need not found; run scripts/install-deps.sh" >&2; exit 1; }
done

mkdir -p bin
go build -o bin/xloud-image ./cmd/xloud-image

work="$(mktemp -d)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
reg="127.0.0.1:$(port)"
api="127.0.0.1:$(port)"
pw="bench-admin-pw"
bin/xloud-image serve --data-dir "$work/data" --registry-addr "$reg" --api-addr "$api" \
  --auth embedded --admin-password "$pw" >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -fs "http://$reg/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

# Identity: project demo, a member who pushes and signs, a reader who pulls.
login() { # user password project -> token
  curl -fsS -D - -o /dev/null -H 'Content-Type: application/json' "http://$api/identity/v3/auth/tokens" -d \
    "{\"auth\":{\"identity\":{\"methods\":[\"password\"],\"password\":{\"user\":{\"name\":\"$1\",\"password\":\"$2\",\"domain\":{\"id\":\"default\"}}}},\"scope\":{\"project\":{\"name\":\"$3\",\"domain\":{\"id\":\"default\"}}}}}" |
    tr -d '\r' | awk -F': ' 'tolower($1)=="x-subject-token"{print $2}'
}
idp() { curl -fsS -H "X-Auth-Token: $admin" -H 'Content-Type: application/json' "$@"; }
admin="$(login admin "$pw" admin)"
demo="$(idp "http://$api/identity/v3/projects" -d '{"project":{"name":"demo","domain_id":"default"}}' | jq -r .project.id)"
for u in member reader; do
  uid="$(idp "http://$api/identity/v3/users" -d "{\"user\":{\"name\":\"$u\",\"password\":\"$u-pw\",\"domain_id\":\"default\"}}" | jq -r .user.id)"
  idp -X PUT "http://$api/identity/v3/projects/$demo/users/$uid/roles/role-$u" >/dev/null
done
manager="$(login admin "$pw" admin)"

# A signed qcow2 disk, pushed with oras and signed with cosign (offline), as the member.
export DOCKER_CONFIG="$work/docker" COSIGN_PASSWORD=bench TUF_ROOT="$work/tuf" TUF_MIRROR=http://127.0.0.1:9
mkdir -p "$DOCKER_CONFIG"
printf '{"auths":{"%s":{"auth":"%s"}}}' "$reg" "$(printf member:member-pw | base64 -w0)" >"$DOCKER_CONFIG/config.json"
(cd "$work" && head -c 4M /dev/urandom >disk.raw && qemu-img convert -f raw -O qcow2 disk.raw disk.qcow2 &&
  oras push --plain-http --no-tty --registry-config "$DOCKER_CONFIG/config.json" "$reg/demo/signed:v1" \
    disk.qcow2:application/vnd.diskimage.qcow2 >/dev/null &&
  cosign generate-key-pair >/dev/null 2>&1 &&
  cosign sign --key cosign.key --tlog-upload=false -y --allow-http-registry --allow-insecure-registry "$reg/demo/signed:v1" >/dev/null 2>&1)

policy() { # mode
  jq -n --arg mode "$1" --rawfile key "$work/cosign.pub" '{mode:$mode, keys:[{name:"ci", public_key:$key}], authorities:[]}' |
    curl -fsS -X PUT -H "X-Auth-Token: $manager" -H 'Content-Type: application/json' \
      "http://$api/v2/xloud/projects/$demo/signing-policy" -d @- >/dev/null
}
policy enforce
status="$(curl -fsS -H "X-Auth-Token: $(login member member-pw demo)" "http://$api/v2/images?xloud_signature_status=verified" | jq -r '.images | length')"
[ "$status" = 1 ] || { echo "bench-signing: the signed image is not verified ($status images)" >&2; tail -20 "$work/server.log" >&2; exit 1; }

# The reader's registry token, as a client gets it, for every GET.
service="$(curl -sI "http://$reg/v2/" | tr -d '\r' | sed -n 's/.*service="\([^"]*\)".*/\1/p')"
token="$(curl -fsS -u reader:reader-pw "http://$reg/token?service=$service&scope=repository:demo/signed:pull" | jq -r .token)"
url="http://$reg/v2/demo/signed/manifests/v1"
code="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$url")"
[ "$code" = 200 ] || { echo "bench-signing: GET $url as reader under enforce: $code" >&2; exit 1; }

rate() { # mode -> requests/s
  policy "$1"
  sleep 0.5
  wrk -t2 -c32 -d"${DURATION}s" -H "Authorization: Bearer $token" \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$url" | awk '/Requests\/sec/{print $2}'
}
# Rounds alternate which mode goes first, so a load that comes and goes on a shared machine
# does not always fall on the same mode; each round gives one ratio, the median is reported.
ratios=()
offs=()
enfs=()
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then off="$(rate off)"; enf="$(rate enforce)"; else enf="$(rate enforce)"; off="$(rate off)"; fi
  echo "round $r: off ${off} req/s, enforce ${enf} req/s"
  offs+=("$off"); enfs+=("$enf")
  ratios+=("$(awk -v o="$off" -v e="$enf" 'BEGIN{printf "%.4f", e/o}')")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
if grep -q '"level":"ERROR"' "$work/server.log"; then grep '"level":"ERROR"' "$work/server.log" | tail -5 >&2; fi
printf 'manifest GET by tag, wrk 32 connections, %s rounds of %ss: median off %.0f req/s, median enforce+verified %.0f req/s, median ratio %.3fx (goal >= 0.9x)\n' \
  "$ROUNDS" "$DURATION" "$(median "${offs[@]}")" "$(median "${enfs[@]}")" "$(median "${ratios[@]}")"
