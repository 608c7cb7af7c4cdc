package conformance

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/internal/testenv"
)

// Artifact types cosign v2 gives its signatures in OCI 1.1 mode.
const (
	cosignSigArtifactType    = "application/vnd.dev.cosign.artifact.sig.v1+json"
	cosignBundleArtifactType = "application/vnd.dev.sigstore.bundle.v0.3+json"
)

// TestCosign signs images with a key pair, no transparency log, in the three ways cosign
// stores signatures: the legacy tag scheme (sha256-<hex>.sig), OCI 1.1 referrers
// (--registry-referrers-mode=oci-1-1) and the Sigstore bundle as a referrer (the v3 default,
// --new-bundle-format). Each verifies with the right key and fails with another key, and the
// registry shows the signature where the scheme puts it.
func TestCosign(t *testing.T) {
	t.Parallel()
	cosignBin := testenv.RequireTool(t, "cosign")
	craneBin := testenv.RequireTool(t, "crane")
	eachBackend(t, func(t *testing.T, srv *testenv.Server) {
		dir := t.TempDir()
		// TUF_ROOT keeps any sigstore cache out of $HOME. Signing with a key and no tlog is
		// offline; verifying is too when given a trusted root (see below).
		cosign := tool{Path: cosignBin, Dir: dir, Env: []string{"COSIGN_PASSWORD=xloud-test", "TUF_ROOT=" + t.TempDir()}}
		experimental := cosign
		experimental.Env = append(slices.Clone(cosign.Env), "COSIGN_EXPERIMENTAL=1")
		crane := tool{Path: craneBin, Dir: dir}
		cosign.must(t, "generate-key-pair")
		cosign.must(t, "generate-key-pair", "--output-key-prefix", "other")
		// A trusted root with no authorities. A key-based verify needs none, but without the
		// file cosign fetches the public Sigstore root over the network (and the bundle
		// format refuses to go on).
		writeFile(t, filepath.Join(dir, "trusted_root.json"),
			[]byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`))
		registryFlags := []string{"--allow-insecure-registry", "--allow-http-registry"}

		// push builds a one-layer image with crane and returns its digest reference.
		push := func(repo string) (string, digest.Digest) {
			t.Helper()
			name := strings.ReplaceAll(repo, "/", "-") + ".tar"
			writeFile(t, filepath.Join(dir, name), buildTar(t, []tarEntry{
				{Name: "payload.bin", Mode: 0o644, Data: randomBytes(64 << 10)}}))
			ref := srv.RegistryAddr + "/" + repo
			crane.must(t, "append", "--insecure", "--oci-empty-base", "-f", name, "-t", ref+":v1")
			d := digest.Digest(strings.TrimSpace(crane.must(t, "digest", "--insecure", ref+":v1")))
			return ref + "@" + d.String(), d
		}
		sign := func(c tool, ref string, extra ...string) {
			t.Helper()
			args := append([]string{"sign", "--key", "cosign.key", "--tlog-upload=false", "-y"}, registryFlags...)
			c.must(t, append(append(args, extra...), ref)...)
		}
		verify := func(key, ref string, extra ...string) []string {
			args := append([]string{"verify", "--key", key, "--insecure-ignore-tlog=true", "--trusted-root", "trusted_root.json"}, registryFlags...)
			return append(append(args, extra...), ref)
		}

		t.Run("tag-scheme", func(t *testing.T) {
			ref, d := push("signed/legacy")
			sign(cosign, ref)
			sigTag := strings.Replace(d.String(), ":", "-", 1) + ".sig"
			if tags := tagList(t, srv.URL(), "signed/legacy"); !slices.Contains(tags, sigTag) {
				t.Fatalf("tags after cosign sign: %q, want %s", tags, sigTag)
			}
			status, body, _ := getManifest(t, srv.URL(), "signed/legacy", sigTag)
			if status != 200 || !strings.Contains(string(body), "application/vnd.dev.cosign.simplesigning.v1+json") {
				t.Fatalf("signature manifest %s: %d %s", sigTag, status, body)
			}
			out := cosign.must(t, verify("cosign.pub", ref)...)
			if !strings.Contains(out, d.String()) {
				t.Errorf("cosign verify printed no claim for %s:\n%s", d, out)
			}
			requireRejected(t, cosign.mustFail(t, verify("other.pub", ref)...))
		})

		t.Run("oci-1-1", func(t *testing.T) {
			ref, d := push("signed/referrers")
			sign(experimental, ref, "--registry-referrers-mode=oci-1-1")
			sigs := referrers(t, srv.URL(), "signed/referrers", d, "")
			if len(sigs) != 1 || sigs[0].ArtifactType != cosignSigArtifactType {
				t.Fatalf("referrers after cosign sign (oci-1-1): %s\nwant one %s", describe(sigs), cosignSigArtifactType)
			}
			if tags := tagList(t, srv.URL(), "signed/referrers"); !slices.Equal(tags, []string{"v1"}) {
				t.Errorf("tags after a referrers-mode signature: %q, want [v1] (no fallback tag)", tags)
			}
			out := experimental.must(t, verify("cosign.pub", ref, "--experimental-oci11")...)
			if !strings.Contains(out, d.String()) {
				t.Errorf("cosign verify printed no claim for %s:\n%s", d, out)
			}
			// cosign v2 tries the referrer, rejects it, then falls back to the .sig tag (404) and
			// reports that last miss: "no signatures found". The verify above shows the referrer
			// is served; here it only has to fail.
			experimental.mustFail(t, verify("other.pub", ref, "--experimental-oci11")...)
			// The tag scheme finds nothing: the signature is only a referrer.
			if out := cosign.mustFail(t, verify("cosign.pub", ref)...); !strings.Contains(out, "no signatures found") {
				t.Errorf("cosign verify in tag mode of a referrers-only signature: want \"no signatures found\", got:\n%s", tail(out, 10))
			}
		})

		t.Run("bundle", func(t *testing.T) {
			ref, d := push("signed/bundle")
			sign(cosign, ref, "--new-bundle-format")
			sigs := referrers(t, srv.URL(), "signed/bundle", d, cosignBundleArtifactType)
			if len(sigs) != 1 || sigs[0].Annotations["dev.sigstore.bundle.content"] != "dsse-envelope" {
				t.Fatalf("referrers after cosign sign --new-bundle-format: %s\nwant one %s with its annotations", describe(sigs), cosignBundleArtifactType)
			}
			bundleFlags := []string{"--new-bundle-format"}
			out := cosign.must(t, verify("cosign.pub", ref, bundleFlags...)...)
			if !strings.Contains(out, d.String()) {
				t.Errorf("cosign verify printed no claim for %s:\n%s", d, out)
			}
			requireRejected(t, cosign.mustFail(t, verify("other.pub", ref, bundleFlags...)...))
		})
	})
}

// requireRejected checks that a failed cosign verify failed on the signature itself (it was
// found and did not match the key), not on the way to it.
func requireRejected(t *testing.T, out string) {
	t.Helper()
	if !strings.Contains(out, "no matching signatures") && !strings.Contains(out, "no matching attestations") {
		t.Errorf("cosign verify with another key failed for another reason than the signature:\n%s", tail(out, 10))
	}
}
