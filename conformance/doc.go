// Package conformance holds no code, only tests: it runs the OCI distribution-spec conformance
// suite and the real clients (oras, crane, skopeo, containerd's ctr, cosign) against a live
// xloud-image server started by internal/testenv, once per metadata backend (embedded and
// Redis) where that is cheap.
//
// What the tests need: the xloud-image binary (built by the tests), redis-server, and the
// clients installed by scripts/install-deps.sh: oci-conformance, oras, crane, cosign in
// $(go env GOPATH)/bin, and skopeo, containerd, ctr and qemu-img on PATH. A missing tool fails
// the test; nothing is skipped. The containerd test starts a private containerd, which needs
// root (it mounts a snapshot with the native snapshotter).
//
//	go test ./conformance -run TestOCIConformance -v   # the OCI suite only (make conformance)
//	go test ./conformance -v                           # the suite and every client
//
// Every test asserts what a user would check: data that goes in comes out byte-identical,
// digests agree across clients, and what a client lists (tags, referrers, catalog) is what was
// pushed.
package conformance
