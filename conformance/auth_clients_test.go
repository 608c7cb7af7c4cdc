package conformance

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/xloud/xloud-image/internal/testenv"
)

// The tests below log the real clients in as the accounts of an authWorld, each client with
// its own credential store, and check what each role may do: a member of a project pushes and
// pulls its repositories, a reader only pulls, a member of another project does neither, and
// nobody does anything without credentials.

// TestOrasAuth: `oras login` (--password-stdin, --registry-config), push and pull as the
// member, pull but no push as the reader, nothing as the outsider, and nothing after
// `oras logout`.
func TestOrasAuth(t *testing.T) {
	t.Parallel()
	bin := testenv.RequireTool(t, "oras")
	eachAuthBackend(t, func(t *testing.T, w authWorld) {
		dir := t.TempDir()
		reg := w.srv.RegistryAddr
		ref := reg + "/team/oras:v1"
		size := int64(2<<20 + 11)
		d := writeRandomFile(t, filepath.Join(dir, "payload.bin"), size) // not a disk name: a raw .img would become an image (with an id tag)

		// orasAs is oras with its own credential store (--registry-config); login fills it.
		type orasAs struct {
			tool
			cfg string
		}
		login := func(a account) orasAs {
			t.Helper()
			o := orasAs{tool{Path: bin, Dir: dir, Env: credentialEnv(t), Stdin: a.Password}, filepath.Join(t.TempDir(), "auth.json")}
			o.must(t, "login", "--plain-http", "--registry-config", o.cfg, "-u", a.User, "--password-stdin", reg)
			return o
		}
		args := func(o orasAs, cmd string, rest ...string) []string {
			return slices.Concat([]string{cmd, "--plain-http", "--registry-config", o.cfg}, rest)
		}

		member := login(w.member)
		if cfg := readFile(t, member.cfg); !bytes.Contains(cfg, []byte(`"`+reg+`"`)) {
			t.Errorf("oras login stored no credentials for %s in --registry-config:\n%s", reg, cfg)
		}
		member.must(t, args(member, "push", "--no-tty", ref, "payload.bin")...)
		member.must(t, args(member, "pull", "--no-tty", "-o", "member-out", ref)...)
		requireSameFile(t, filepath.Join(dir, "member-out", "payload.bin"), d, size)

		reader := login(w.reader)
		reader.must(t, args(reader, "pull", "--no-tty", "-o", "reader-out", ref)...)
		requireSameFile(t, filepath.Join(dir, "reader-out", "payload.bin"), d, size)
		requireUnauthorized(t, reader.mustFail(t, args(reader, "push", "--no-tty", reg+"/team/oras:by-reader", "payload.bin")...))
		requireUnauthorized(t, reader.mustFail(t, args(reader, "tag", ref, "by-reader")...))

		outsider := login(w.outsider)
		requireUnauthorized(t, outsider.mustFail(t, args(outsider, "pull", "--no-tty", "-o", "outsider-out", ref)...))
		requireUnauthorized(t, outsider.mustFail(t, args(outsider, "push", "--no-tty", reg+"/team/oras:by-outsider", "payload.bin")...))
		outsider.must(t, args(outsider, "push", "--no-tty", reg+"/other/oras:v1", "payload.bin")...)
		if tags := tagList(t, w.base(w.member), "team/oras"); !slices.Equal(tags, []string{"v1"}) {
			t.Errorf("tags of team/oras after refused pushes: %q, want [v1]", tags)
		}

		wrong := orasAs{tool{Path: bin, Dir: dir, Env: credentialEnv(t), Stdin: "wrong"}, filepath.Join(t.TempDir(), "auth.json")}
		requireUnauthorized(t, wrong.mustFail(t, "login", "--plain-http", "--registry-config", wrong.cfg, "-u", w.member.User, "--password-stdin", reg))

		member.must(t, "logout", "--registry-config", member.cfg, reg)
		requireUnauthorized(t, member.mustFail(t, args(member, "pull", "--no-tty", "-o", "after-logout", ref)...))
	})
}

// TestCraneAuth: `crane auth login` (DOCKER_CONFIG per account), then append, copy, ls,
// catalog and delete as the member; ls but no copy or delete as the reader; the catalog
// lists only what the caller may pull.
func TestCraneAuth(t *testing.T) {
	t.Parallel()
	bin := testenv.RequireTool(t, "crane")
	eachAuthBackend(t, func(t *testing.T, w authWorld) {
		reg := w.srv.RegistryAddr
		login := func(a account) tool {
			t.Helper()
			c := tool{Path: bin, Dir: t.TempDir(), Env: credentialEnv(t)}
			c.must(t, "auth", "login", reg, "-u", a.User, "-p", a.Password)
			return c
		}
		member, reader, outsider := login(w.member), login(w.reader), login(w.outsider)

		src, d := craneImage(t, member, reg+"/team/crane", w.member, "--insecure")
		member.must(t, "copy", "--insecure", src, reg+"/team/crane-copy:v1")
		if got := strings.TrimSpace(member.must(t, "digest", "--insecure", reg+"/team/crane-copy:v1")); got != d.String() {
			t.Errorf("crane copy as the member: digest %s, want %s", got, d)
		}
		requireUnauthorized(t, outsider.mustFail(t, "copy", "--insecure", src, reg+"/other/crane:v1"))
		craneImage(t, outsider, reg+"/other/crane", w.outsider, "--insecure")
		if got := strings.Fields(reader.must(t, "ls", "--insecure", reg+"/team/crane-copy")); !slices.Equal(got, []string{"v1"}) {
			t.Errorf("crane ls as the reader: %q, want [v1]", got)
		}
		requireUnauthorized(t, reader.mustFail(t, "copy", "--insecure", src, reg+"/team/crane-reader:v1"))
		requireUnauthorized(t, reader.mustFail(t, "delete", "--insecure", reg+"/team/crane-copy@"+d.String()))

		catalog := strings.Fields(member.must(t, "catalog", "--insecure", reg))
		if !slices.Equal(catalog, []string{"team/crane", "team/crane-copy"}) {
			t.Errorf("crane catalog as the member: %q, want [team/crane team/crane-copy]", catalog)
		}

		member.must(t, "delete", "--insecure", reg+"/team/crane-copy@"+d.String())
		requireManifestGone(t, w.base(w.member), "team/crane-copy", "v1")
		member.must(t, "auth", "logout", reg)
		requireUnauthorized(t, member.mustFail(t, "ls", "--insecure", reg+"/team/crane"))
	})
}

// TestSkopeoAuth: skopeo copy with --dest-creds into the member's project, back out with
// --src-creds as the reader, registry to registry across projects with both, and refusals for
// the reader as a destination and for no credentials.
func TestSkopeoAuth(t *testing.T) {
	t.Parallel()
	bin := testenv.RequireTool(t, "skopeo")
	eachAuthBackend(t, func(t *testing.T, w authWorld) {
		dir := t.TempDir()
		skopeo := tool{Path: bin, Dir: dir, Env: append(credentialEnv(t), "TMPDIR="+t.TempDir())}
		copyArgs := func(args ...string) []string {
			return append([]string{"--insecure-policy", "copy", "--quiet", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false"}, args...)
		}
		reg := "docker://" + w.srv.RegistryAddr
		img, layer := smallImage(t, 300<<10)
		want := img.writeLayout(t, filepath.Join(dir, "src"), "v1")

		skopeo.must(t, copyArgs("--dest-creds", w.member.creds(), "oci:src:v1", reg+"/team/skopeo:v1")...)
		requireImage(t, w.base(w.member), "team/skopeo", "v1", img)
		var inspect struct{ Digest digest.Digest }
		if err := json.Unmarshal([]byte(skopeo.must(t, "inspect", "--tls-verify=false", "--creds", w.reader.creds(), reg+"/team/skopeo:v1")), &inspect); err != nil || inspect.Digest != want {
			t.Errorf("skopeo inspect as the reader: %s (%v), want %s", inspect.Digest, err, want)
		}
		skopeo.must(t, copyArgs("--src-creds", w.reader.creds(), reg+"/team/skopeo:v1", "oci:back:v1")...)
		if got := layoutManifest(t, filepath.Join(dir, "back"), "v1"); got != want {
			t.Fatalf("skopeo copy back as the reader: %s, want %s", got, want)
		}
		if got := readLayoutBlob(t, filepath.Join(dir, "back"), digest.FromBytes(layer)); !bytes.Equal(got, layer) {
			t.Fatalf("skopeo copy back as the reader: layer differs")
		}

		// Across projects: the outsider may not read team, so nothing is mounted from it; the
		// blobs are sent again and the copy is whole.
		skopeo.must(t, copyArgs("--src-creds", w.reader.creds(), "--dest-creds", w.outsider.creds(), reg+"/team/skopeo:v1", reg+"/other/skopeo:v1")...)
		requireImage(t, w.base(w.outsider), "other/skopeo", "v1", img)

		requireUnauthorized(t, skopeo.mustFail(t, copyArgs("--dest-creds", w.reader.creds(), "oci:src:v1", reg+"/team/skopeo:by-reader")...))
		requireUnauthorized(t, skopeo.mustFail(t, copyArgs("oci:src:v1", reg+"/team/skopeo:anonymous")...))
		requireUnauthorized(t, skopeo.mustFail(t, copyArgs("--src-creds", w.outsider.creds(), reg+"/team/skopeo:v1", "oci:stolen:v1")...))
		if tags := tagList(t, w.base(w.member), "team/skopeo"); !slices.Equal(tags, []string{"v1"}) {
			t.Errorf("tags of team/skopeo after refused copies: %q, want [v1]", tags)
		}
	})
}

// TestContainerdAuth: `ctr images pull --user` as the reader pulls what the member pushed;
// without credentials, with a wrong password or as the outsider the pull fails.
func TestContainerdAuth(t *testing.T) {
	t.Parallel()
	eachAuthBackend(t, func(t *testing.T, w authWorld) {
		img, _ := smallImage(t, 256<<10)
		d := img.push(t, w.base(w.member), "team/ctr", "v1")
		ref := w.srv.RegistryAddr + "/team/ctr:v1"
		ctd := startContainerd(t)
		pull := []string{"images", "pull", "--plain-http", "--snapshotter", "native"}
		requireUnauthorized(t, ctd.mustFail(t, append(pull, ref)...))
		requireUnauthorized(t, ctd.mustFail(t, append(pull, "--user", w.reader.User+":wrong", ref)...))
		requireUnauthorized(t, ctd.mustFail(t, append(pull, "--user", w.outsider.creds(), ref)...))
		ctd.must(t, append(pull, "--user", w.reader.creds(), ref)...)
		if listed := ctd.must(t, "images", "ls"); !hasImageLine(listed, ref, d) {
			t.Errorf("ctr images ls has no %s at %s:\n%s", ref, d, listed)
		}
	})
}

// TestCosignAuth: `cosign login` as the member, sign (tag scheme and Sigstore bundle
// referrer) and verify; the reader verifies but may not sign; without credentials verify
// fails.
func TestCosignAuth(t *testing.T) {
	t.Parallel()
	cosignBin := testenv.RequireTool(t, "cosign")
	craneBin := testenv.RequireTool(t, "crane")
	eachAuthBackend(t, func(t *testing.T, w authWorld) {
		dir := t.TempDir()
		reg := w.srv.RegistryAddr
		as := func(a *account) tool {
			t.Helper()
			c := tool{Path: cosignBin, Dir: dir, Env: append(credentialEnv(t), "COSIGN_PASSWORD=xloud-test", "TUF_ROOT="+t.TempDir())}
			if a != nil {
				c.must(t, "login", reg, "-u", a.User, "-p", a.Password)
			}
			return c
		}
		member, reader, anonymous := as(&w.member), as(&w.reader), as(nil)
		member.must(t, "generate-key-pair")
		writeTrustedRoot(t, dir)
		insecure := []string{"--allow-insecure-registry", "--allow-http-registry"}
		sign := func(key string, extra ...string) []string {
			return slices.Concat([]string{"sign", "--key", key, "--tlog-upload=false", "-y"}, insecure, extra)
		}
		verify := slices.Concat([]string{"verify", "--key", "cosign.pub", "--insecure-ignore-tlog=true", "--trusted-root", "trusted_root.json"}, insecure)

		tagRef, d := craneImage(t, tool{Path: craneBin, Env: member.Env}, reg+"/team/signed", w.member, "--insecure")
		ref := strings.TrimSuffix(tagRef, ":v1") + "@" + d.String()
		member.must(t, sign("cosign.key", ref)...)
		member.must(t, sign("cosign.key", "--new-bundle-format", ref)...)
		if sigs := referrers(t, w.base(w.member), "team/signed", d, cosignBundleArtifactType); len(sigs) != 1 {
			t.Errorf("bundle referrers after cosign sign: %s", describe(sigs))
		}
		for _, extra := range [][]string{nil, {"--new-bundle-format"}} {
			out := reader.must(t, slices.Concat(verify, extra, []string{ref})...)
			if !strings.Contains(out, d.String()) {
				t.Errorf("cosign verify %v as the reader printed no claim for %s:\n%s", extra, d, out)
			}
		}
		// A signature of the reader's own (cosign skips pushing one equal to a signature that
		// is already there) is refused.
		reader.must(t, "generate-key-pair", "--output-key-prefix", "reader")
		requireUnauthorized(t, reader.mustFail(t, sign("reader.key", ref)...))
		requireUnauthorized(t, anonymous.mustFail(t, append(verify, ref)...))
	})
}

// smallImage builds a one-layer image (an uncompressed tar holding size random bytes) and
// returns it and its layer.
func smallImage(t *testing.T, size int) (ociImage, []byte) {
	t.Helper()
	layer := buildTar(t, []tarEntry{{Name: "payload.bin", Mode: 0o644, Data: randomBytes(size)}})
	return newImage(t, []blob{{ocispec.MediaTypeImageLayer, layer}}, []digest.Digest{digest.FromBytes(layer)}), layer
}

// containerd is a private containerd whose ctr runs fail or pass the test like a tool's.
type containerd struct{ *testenv.Containerd }

// startContainerd starts a private containerd; its log is printed when the test fails.
func startContainerd(t *testing.T) containerd {
	t.Helper()
	c := testenv.StartContainerd(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("containerd log:\n%s", tail(c.Log(), 80))
		}
	})
	return containerd{c}
}

func (c containerd) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.Ctr(args...)
	t.Logf("$ ctr %s", strings.Join(args, " "))
	if err != nil {
		t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, tail(out, 40))
	}
	return out
}

func (c containerd) mustFail(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.Ctr(args...)
	t.Logf("$ ctr %s", strings.Join(args, " "))
	if err == nil {
		t.Fatalf("ctr %s succeeded, want failure\n%s", strings.Join(args, " "), tail(out, 40))
	}
	return out
}
