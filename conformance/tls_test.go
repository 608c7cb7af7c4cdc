package conformance

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/xloud/xloud-image/internal/testenv"
)

// TestTLS serves both ports over HTTPS (--tls-cert, --tls-key) with a certificate for
// 127.0.0.1 issued by a CA made here, authentication on, and shows that every client works
// without its insecure flags when given the CA, and is refused with a certificate error
// without it: curl (--cacert), oras (--ca-file), crane and cosign (SSL_CERT_FILE), skopeo
// (--dest-cert-dir/--src-cert-dir holding ca.crt) and containerd (ctr --tlscacert).
func TestTLS(t *testing.T) {
	t.Parallel()
	ca := testenv.NewCA(t)
	srv := testenv.StartTLSServer(t, ca, testenv.ServerOptions{Args: authArgs()})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", tail(srv.Log(), 200))
		}
	})
	reg := srv.RegistryAddr
	admin := account{"admin", adminPassword}

	t.Run("curl", func(t *testing.T) {
		t.Parallel()
		curl := tool{Path: testenv.RequireTool(t, "curl")}
		for _, u := range []string{srv.HTTPSURL() + "/healthz", srv.APIURL(true) + "/healthz"} {
			if out := curl.must(t, "-sS", "--fail", "--cacert", ca.CertFile, u); out != "ok\n" {
				t.Errorf("curl %s: %q, want ok", u, out)
			}
			requireCertError(t, curl.mustFail(t, "-sS", "--fail", u))
		}
		// The challenge sends clients to the token endpoint over HTTPS.
		out := curl.must(t, "-sS", "-o", "/dev/null", "-D", "-", "--cacert", ca.CertFile, srv.HTTPSURL()+"/v2/")
		want := `Bearer realm="` + srv.HTTPSURL() + `/token",service="xloud-image"`
		if !strings.Contains(out, " 401") || !strings.Contains(out, want) {
			t.Errorf("GET /v2/ without credentials over HTTPS:\n%s\nwant 401 and WWW-Authenticate: %s", out, want)
		}
		if out := curl.must(t, "-sS", "--fail", "--cacert", ca.CertFile, "-u", admin.creds(), srv.HTTPSURL()+"/v2/"); out != "{}" && out != "{}\n" {
			t.Errorf("GET /v2/ as admin over HTTPS: %q", out)
		}
		// Plain HTTP to either port is not served.
		for _, addr := range []string{srv.RegistryAddr, srv.APIAddr} {
			if out := curl.must(t, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://"+addr+"/healthz"); out != "400" {
				t.Errorf("plain HTTP to the HTTPS port %s: %s, want 400", addr, out)
			}
		}
	})

	t.Run("oras", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		oras := tool{Path: testenv.RequireTool(t, "oras"), Dir: dir, Env: credentialEnv(t), Stdin: admin.Password}
		d := writeRandomFile(t, filepath.Join(dir, "disk.img"), 3<<20+5)
		ref := reg + "/tls/oras:v1"
		args := func(cmd string, rest ...string) []string {
			return slices.Concat([]string{cmd, "--registry-config", filepath.Join(dir, "auth.json")}, rest)
		}

		requireCertError(t, oras.mustFail(t, args("login", "-u", admin.User, "--password-stdin", reg)...))
		oras.must(t, args("login", "--ca-file", ca.CertFile, "-u", admin.User, "--password-stdin", reg)...)
		oras.must(t, args("push", "--ca-file", ca.CertFile, "--no-tty", ref, "disk.img")...)
		oras.must(t, args("pull", "--ca-file", ca.CertFile, "--no-tty", "-o", "out", ref)...)
		requireSameFile(t, filepath.Join(dir, "out", "disk.img"), d, 3<<20+5)
		requireCertError(t, oras.mustFail(t, args("pull", "--no-tty", "-o", "out2", ref)...))
	})

	t.Run("crane", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		env := credentialEnv(t)
		crane := tool{Path: testenv.RequireTool(t, "crane"), Dir: dir, Env: append(slices.Clone(env), "SSL_CERT_FILE="+ca.CertFile)}
		noCA := tool{Path: crane.Path, Dir: dir, Env: env}
		payload := randomBytes(1<<20 + 3)
		writeFile(t, filepath.Join(dir, "layer.tar"), buildTar(t, []tarEntry{{Name: "payload.bin", Mode: 0o644, Data: payload}}))

		crane.must(t, "auth", "login", reg, "-u", admin.User, "-p", admin.Password)
		crane.must(t, "append", "--oci-empty-base", "-f", "layer.tar", "-t", reg+"/tls/crane:v1")
		crane.must(t, "copy", reg+"/tls/crane:v1", reg+"/tls/crane-copy:v1")
		if got := strings.Fields(crane.must(t, "ls", reg+"/tls/crane-copy")); !slices.Equal(got, []string{"v1"}) {
			t.Errorf("crane ls over HTTPS: %q, want [v1]", got)
		}
		crane.must(t, "export", reg+"/tls/crane-copy:v1", "fs.tar")
		requireTarFiles(t, filepath.Join(dir, "fs.tar"), map[string][]byte{"payload.bin": payload})
		requireCertOrFallbackError(t, noCA.mustFail(t, "ls", reg+"/tls/crane-copy"))
	})

	t.Run("skopeo", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		skopeo := tool{Path: testenv.RequireTool(t, "skopeo"), Dir: dir, Env: append(credentialEnv(t), "TMPDIR="+t.TempDir())}
		certDir := filepath.Join(dir, "certs")
		writeFile(t, filepath.Join(certDir, "ca.crt"), readFile(t, ca.CertFile))
		layer := buildTar(t, []tarEntry{{Name: "etc/motd", Mode: 0o644, Data: randomBytes(200 << 10)}})
		img := newImage(t, []blob{{ocispec.MediaTypeImageLayer, layer}}, []digest.Digest{digest.FromBytes(layer)})
		want := img.writeLayout(t, filepath.Join(dir, "src"), "v1")
		ref := "docker://" + reg + "/tls/skopeo:v1"
		copyArgs := []string{"--insecure-policy", "copy", "--quiet", "--preserve-digests"}

		requireCertError(t, skopeo.mustFail(t, append(copyArgs, "--dest-creds", admin.creds(), "oci:src:v1", ref)...))
		skopeo.must(t, append(copyArgs, "--dest-cert-dir", certDir, "--dest-creds", admin.creds(), "oci:src:v1", ref)...)
		skopeo.must(t, append(copyArgs, "--src-cert-dir", certDir, "--src-creds", admin.creds(), ref, "oci:back:v1")...)
		if got := layoutManifest(t, filepath.Join(dir, "back"), "v1"); got != want {
			t.Fatalf("skopeo copy back over HTTPS: manifest %s, want %s", got, want)
		}
		if got := readLayoutBlob(t, filepath.Join(dir, "back"), digest.FromBytes(layer)); !slices.Equal(got, layer) {
			t.Fatalf("skopeo copy back over HTTPS: layer differs")
		}
	})

	t.Run("containerd", func(t *testing.T) {
		t.Parallel()
		ref, d := craneImage(t, tool{Path: testenv.RequireTool(t, "crane"), Env: append(credentialEnv(t), "SSL_CERT_FILE="+ca.CertFile)},
			reg+"/tls/ctr", admin)
		ctd := startContainerd(t)
		// ctr takes a loopback registry for a plain-HTTP one unless told otherwise: the hosts
		// file names the server with its scheme, and nothing else (no CA, no skip_verify; ctr
		// 1.6 wants a host tree).
		hostsDir := t.TempDir()
		writeFile(t, filepath.Join(hostsDir, reg, "hosts.toml"), []byte(fmt.Sprintf(
			"server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", "https://"+reg, "https://"+reg)))
		pull := []string{"images", "pull", "--snapshotter", "native", "--hosts-dir", hostsDir, "--user", admin.creds()}
		requireCertError(t, ctd.mustFail(t, append(pull, ref)...))
		ctd.must(t, append(pull, "--tlscacert", ca.CertFile, ref)...)
		if listed := ctd.must(t, "images", "ls"); !hasImageLine(listed, ref, d) {
			t.Errorf("ctr images ls has no %s at %s:\n%s", ref, d, listed)
		}
	})

	t.Run("cosign", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		env := append(credentialEnv(t), "COSIGN_PASSWORD=xloud-test", "TUF_ROOT="+t.TempDir())
		cosign := tool{Path: testenv.RequireTool(t, "cosign"), Dir: dir, Env: append(slices.Clone(env), "SSL_CERT_FILE="+ca.CertFile)}
		noCA := tool{Path: cosign.Path, Dir: dir, Env: env}
		crane := tool{Path: testenv.RequireTool(t, "crane"), Dir: dir, Env: cosign.Env}
		tagRef, d := craneImage(t, crane, reg+"/tls/signed", admin)
		ref := strings.TrimSuffix(tagRef, ":v1") + "@" + d.String()
		cosign.must(t, "generate-key-pair")
		writeTrustedRoot(t, dir)
		cosign.must(t, "login", reg, "-u", admin.User, "-p", admin.Password)
		cosign.must(t, "sign", "--key", "cosign.key", "--tlog-upload=false", "-y", ref)
		verify := []string{"verify", "--key", "cosign.pub", "--insecure-ignore-tlog=true", "--trusted-root", "trusted_root.json", ref}
		if out := cosign.must(t, verify...); !strings.Contains(out, d.String()) {
			t.Errorf("cosign verify over HTTPS printed no claim for %s:\n%s", d, out)
		}
		requireCertOrFallbackError(t, noCA.mustFail(t, verify...))
	})
}

// requireCertError checks that a client failed because it could not verify the server's
// certificate.
func requireCertError(t *testing.T, out string) {
	t.Helper()
	for _, s := range []string{
		"x509: certificate signed by unknown authority", // Go clients
		"SSL certificate problem",                       // curl
	} {
		if strings.Contains(out, s) {
			return
		}
	}
	t.Errorf("client without the CA failed for another reason than the certificate:\n%s", tail(out, 10))
}

// requireCertOrFallbackError is requireCertError for go-containerregistry clients (crane,
// cosign): for a loopback registry they try HTTPS and plain HTTP at once and may report the
// plain attempt's failure, which the HTTPS port answers with 400.
func requireCertOrFallbackError(t *testing.T, out string) {
	t.Helper()
	if strings.Contains(out, "Client sent an HTTP request to an HTTPS server") {
		return
	}
	requireCertError(t, out)
}

// craneImage pushes a one-layer image to repo:v1 with crane (whose Env, and flags, carry what
// it needs to reach the registry) logged in as acct, and returns the tag reference and its
// digest.
func craneImage(t *testing.T, crane tool, repo string, acct account, flags ...string) (string, digest.Digest) {
	t.Helper()
	dir := t.TempDir()
	crane.Dir = dir
	writeFile(t, filepath.Join(dir, "layer.tar"), buildTar(t, []tarEntry{
		{Name: "payload.bin", Mode: 0o644, Data: randomBytes(64 << 10)}}))
	host, _, _ := strings.Cut(repo, "/")
	crane.must(t, "auth", "login", host, "-u", acct.User, "-p", acct.Password)
	crane.must(t, slices.Concat(flags, []string{"append", "--oci-empty-base", "-f", "layer.tar", "-t", repo + ":v1"})...)
	d := digest.Digest(strings.TrimSpace(crane.must(t, slices.Concat(flags, []string{"digest", repo + ":v1"})...)))
	return repo + ":v1", d
}

// writeTrustedRoot writes trusted_root.json, a Sigstore trusted root with no authorities, to
// dir: a key-based verify needs none, but without the file cosign fetches the public root.
func writeTrustedRoot(t *testing.T, dir string) {
	t.Helper()
	writeFile(t, filepath.Join(dir, "trusted_root.json"),
		[]byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`))
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
