package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/internal/testenv"
)

// keystoneCacheTTL is the server's --keystone-cache-ttl in these tests.
const keystoneCacheTTL = 2 * time.Second

// TestKeystoneAuth runs the server with --auth keystone against a real Keystone (Debian's,
// on PostgreSQL, started here): Keystone tokens and passwords work on the Registry API as
// the one policy says, revoked tokens stop working once the cache entry expires, and the
// clients (crane, oras, the openstack CLI) work with it. One Keystone serves every subtest.
func TestKeystoneAuth(t *testing.T) {
	ks := testenv.StartKeystone(t)
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{
		"--auth", "keystone", "--keystone-url", ks.URL, "--keystone-user", ks.ServiceUser,
		"--keystone-password", ks.ServicePassword, "--keystone-project", ks.ServiceProject,
		"--keystone-cache-ttl", keystoneCacheTTL.String(),
	}})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s\nkeystone log:\n%s", srv.Log(), ks.Log())
		}
	})
	if strings.Contains(srv.Log(), ks.ServicePassword) {
		t.Fatal("the service password reached the log")
	}
	t.Run("KeystoneTokens", func(t *testing.T) { testKeystoneTokens(t, ks, srv) })
	t.Run("Passwords", func(t *testing.T) { testKeystonePasswords(t, ks, srv) })
	t.Run("Clients", func(t *testing.T) { testKeystoneClients(t, ks, srv) })
	t.Run("RevokedTokenRefusedAfterTTL", func(t *testing.T) { testKeystoneRevocation(t, ks, srv) })
	t.Run("GarbageRefused", func(t *testing.T) { testKeystoneGarbage(t, ks, srv) })
	t.Run("OpenstackCLIToken", func(t *testing.T) { testKeystoneOpenstackCLI(t, ks, srv) })
	t.Run("UnifiedLimits", func(t *testing.T) { testKeystoneUnifiedLimits(t, ks, srv) })
	t.Run("WrongServiceCredentials", func(t *testing.T) { testKeystoneWrongServiceCredentials(t, ks) })
}

// Refused service credentials stop the start, with a message naming them and without the
// password.
func testKeystoneWrongServiceCredentials(t *testing.T, ks *testenv.Keystone) {
	cmd := exec.Command(testenv.Binary(t), "serve", "--data-dir", t.TempDir(),
		"--registry-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0",
		"--auth", "keystone", "--keystone-url", ks.URL, "--keystone-user", ks.ServiceUser,
		"--keystone-project", ks.ServiceProject)
	cmd.Env = append(os.Environ(), "XLOUD_KEYSTONE_PASSWORD=not-the-password")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "service credentials") {
		t.Fatalf("serve with a wrong service password: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "not-the-password") {
		t.Fatalf("the password reached the output:\n%s", out)
	}
}

// cred sets a request's credentials.
type cred func(*http.Request)

func bearer(tok string) cred {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}
func xAuthToken(tok string) cred {
	return func(r *http.Request) { r.Header.Set("X-Auth-Token", tok) }
}
func basicAuth(user, pw string) cred { return func(r *http.Request) { r.SetBasicAuth(user, pw) } }

// ksCall sends one request to the server with credentials c and returns status, headers
// and body.
func ksCall(t *testing.T, srv *testenv.Server, c cred, method, path string, body []byte, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL()+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if c != nil {
		c(req)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header, b
}

// ksPushBlob pushes content into repo in one request (POST with digest).
func ksPushBlob(t *testing.T, srv *testenv.Server, c cred, repo string, content []byte) (int, []byte, digest.Digest) {
	t.Helper()
	d := digest.FromBytes(content)
	status, _, b := ksCall(t, srv, c, "POST", "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), content,
		"Content-Type", "application/octet-stream")
	return status, b, d
}

// ksPushImage pushes a one-layer image (not a VM disk) as repo:tag and returns its
// manifest and layer digest.
func ksPushImage(t *testing.T, srv *testenv.Server, c cred, repo, tag string) ([]byte, digest.Digest) {
	t.Helper()
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","tag":%q}`, tag))
	layer := make([]byte, 1024)
	rand.Read(layer)
	var ds [2]digest.Digest
	for i, blob := range [][]byte{cfg, layer} {
		status, b, d := ksPushBlob(t, srv, c, repo, blob)
		if status != http.StatusCreated {
			t.Fatalf("push blob to %s: %d %s", repo, status, b)
		}
		ds[i] = d
	}
	m := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		ds[0], len(cfg), ds[1], len(layer)))
	status, _, b := ksCall(t, srv, c, "PUT", "/v2/"+repo+"/manifests/"+tag, m,
		"Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if status != http.StatusCreated {
		t.Fatalf("push manifest %s:%s: %d %s", repo, tag, status, b)
	}
	return m, ds[1]
}

// wantDenied asserts a 403 with the OCI error code DENIED.
func wantDenied(t *testing.T, what string, status int, body []byte) {
	t.Helper()
	var e struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	json.Unmarshal(body, &e)
	if status != http.StatusForbidden || len(e.Errors) == 0 || e.Errors[0].Code != "DENIED" {
		t.Errorf("%s: %d %s, want 403 DENIED", what, status, body)
	}
}

// wantChallenge asserts a 401 with a Bearer challenge.
func wantChallenge(t *testing.T, what string, status int, h http.Header, body []byte) {
	t.Helper()
	if status != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer realm=") {
		t.Errorf("%s: %d (WWW-Authenticate %q) %s, want 401 with a Bearer challenge", what, status, h.Get("WWW-Authenticate"), body)
	}
}

// (a) Keystone tokens as Bearer and X-Auth-Token: members push and pull, readers only
// pull, members of another project neither.
func testKeystoneTokens(t *testing.T, ks *testenv.Keystone, srv *testenv.Server) {
	member := ks.Token(t, testenv.KeystoneMember, testenv.KeystoneProject)
	reader := ks.Token(t, testenv.KeystoneReader, testenv.KeystoneProject)
	other := ks.Token(t, testenv.KeystoneOther, testenv.KeystoneOtherProject)
	repo := testenv.KeystoneProject + "/repo"

	manifest, layer := ksPushImage(t, srv, bearer(member), repo, "v1")
	ksPushImage(t, srv, xAuthToken(member), repo, "v2")
	for name, c := range map[string]cred{
		"member bearer": bearer(member), "member X-Auth-Token": xAuthToken(member),
		"reader bearer": bearer(reader), "reader X-Auth-Token": xAuthToken(reader),
	} {
		status, _, b := ksCall(t, srv, c, "GET", "/v2/"+repo+"/manifests/v1", nil,
			"Accept", "application/vnd.oci.image.manifest.v1+json")
		if status != http.StatusOK || !bytes.Equal(b, manifest) {
			t.Errorf("%s: pull manifest: %d %s", name, status, b)
		}
		if status, _, _ := ksCall(t, srv, c, "GET", "/v2/"+repo+"/blobs/"+layer.String(), nil); status != http.StatusOK {
			t.Errorf("%s: pull blob: %d", name, status)
		}
	}
	for name, c := range map[string]cred{"reader bearer": bearer(reader), "reader X-Auth-Token": xAuthToken(reader)} {
		status, b, _ := ksPushBlob(t, srv, c, repo, []byte("a reader's blob"))
		wantDenied(t, name+": push", status, b)
	}
	for name, c := range map[string]cred{"other bearer": bearer(other), "other X-Auth-Token": xAuthToken(other)} {
		status, _, b := ksCall(t, srv, c, "GET", "/v2/"+repo+"/manifests/v1", nil)
		wantDenied(t, name+": pull", status, b)
		status, b, _ = ksPushBlob(t, srv, c, repo, []byte("another project's blob"))
		wantDenied(t, name+": push", status, b)
	}
	// The other project's member works in its own project.
	ksPushImage(t, srv, bearer(other), testenv.KeystoneOtherProject+"/repo", "v1")
}

// Basic credentials are checked by Keystone, directly on /v2/ and at the token endpoint,
// which grants only what the policy allows.
func testKeystonePasswords(t *testing.T, ks *testenv.Keystone, srv *testenv.Server) {
	repo := testenv.KeystoneProject + "/basic"
	ksPushImage(t, srv, basicAuth(testenv.KeystoneMember, ks.Password), repo, "v1")
	status, b, _ := ksPushBlob(t, srv, basicAuth(testenv.KeystoneReader, ks.Password), repo, []byte("x"))
	wantDenied(t, "reader basic push", status, b)
	if status, _, b := ksCall(t, srv, basicAuth(testenv.KeystoneReader, ks.Password), "GET", "/v2/"+repo+"/manifests/v1", nil); status != http.StatusOK {
		t.Errorf("reader basic pull: %d %s", status, b)
	}
	status, h, b := ksCall(t, srv, basicAuth(testenv.KeystoneMember, "wrong"), "GET", "/v2/"+repo+"/manifests/v1", nil)
	wantChallenge(t, "wrong password", status, h, b)

	for user, want := range map[string][]string{
		testenv.KeystoneMember: {"pull", "push"}, testenv.KeystoneReader: {"pull"}, testenv.KeystoneOther: nil,
	} {
		status, _, b := ksCall(t, srv, basicAuth(user, ks.Password), "GET",
			"/token?service=xloud-image&scope=repository:"+repo+":pull,push", nil)
		if status != http.StatusOK {
			t.Fatalf("token for %s: %d %s", user, status, b)
		}
		var tr struct{ Token string }
		json.Unmarshal(b, &tr)
		if got := grantedActions(t, tr.Token, repo); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("token for %s grants %v on %s, want %v", user, got, repo, want)
		}
	}
	status, _, b = ksCall(t, srv, basicAuth(testenv.KeystoneMember, "wrong"), "GET", "/token?scope=repository:"+repo+":pull", nil)
	if status != http.StatusUnauthorized {
		t.Errorf("token with a wrong password: %d %s", status, b)
	}
}

// grantedActions reads the actions a registry token grants on repo (its payload, unverified).
func grantedActions(t *testing.T, tok, repo string) []string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a registry token: %q", tok)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Access []struct {
			Type, Name string
			Actions    []string
		}
	}
	json.Unmarshal(payload, &c)
	for _, a := range c.Access {
		if a.Type == "repository" && a.Name == repo {
			return a.Actions
		}
	}
	return nil
}

// (b) crane and oras sign in with a Keystone user's name and password (Basic, then the
// token endpoint) and push and pull the project's repositories.
func testKeystoneClients(t *testing.T, ks *testenv.Keystone, srv *testenv.Server) {
	dir := t.TempDir()
	run := func(bin string, env []string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(bin string, env []string, args ...string) string {
		t.Helper()
		out, err := run(bin, env, args...)
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
		}
		return out
	}
	reg := srv.RegistryAddr
	hello := []byte("hello from a keystone user\n")
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), hello, 0o644); err != nil {
		t.Fatal(err)
	}

	oras := testenv.RequireTool(t, "oras")
	orasEnv := []string{"DOCKER_CONFIG=" + filepath.Join(dir, "oras-config")}
	ref := reg + "/" + testenv.KeystoneProject + "/oras:v1"
	must(oras, orasEnv, "push", "--plain-http", "--no-tty", "-u", testenv.KeystoneMember, "-p", ks.Password, ref, "hello.txt")
	must(oras, orasEnv, "pull", "--plain-http", "--no-tty", "-u", testenv.KeystoneReader, "-p", ks.Password, "-o", "pulled", ref)
	if b, err := os.ReadFile(filepath.Join(dir, "pulled", "hello.txt")); err != nil || !bytes.Equal(b, hello) {
		t.Errorf("oras pull by the reader: %q, %v", b, err)
	}
	if out, err := run(oras, orasEnv, "push", "--plain-http", "--no-tty", "-u", testenv.KeystoneReader, "-p", ks.Password,
		reg+"/"+testenv.KeystoneProject+"/oras:reader", "hello.txt"); err == nil {
		t.Errorf("oras push by a reader succeeded:\n%s", out)
	}
	if out, err := run(oras, orasEnv, "pull", "--plain-http", "--no-tty", "-u", testenv.KeystoneOther, "-p", ks.Password,
		"-o", "other", ref); err == nil {
		t.Errorf("oras pull by another project's member succeeded:\n%s", out)
	}

	crane := testenv.RequireTool(t, "crane")
	craneEnv := []string{"DOCKER_CONFIG=" + filepath.Join(dir, "crane-config")}
	must(crane, craneEnv, "auth", "login", reg, "-u", testenv.KeystoneMember, "-p", ks.Password)
	cref := reg + "/" + testenv.KeystoneProject + "/crane:v1"
	must(crane, craneEnv, "append", "--insecure", "--oci-empty-base", "-f", writeLayerTar(t, dir, hello), "-t", cref)
	d := strings.TrimSpace(must(crane, craneEnv, "digest", "--insecure", cref))
	must(crane, craneEnv, "pull", "--insecure", cref, filepath.Join(dir, "crane.tar"))
	if got := strings.TrimSpace(must(crane, craneEnv, "ls", "--insecure", reg+"/"+testenv.KeystoneProject+"/crane")); got != "v1" {
		t.Errorf("crane ls: %q", got)
	}
	if !strings.HasPrefix(d, "sha256:") {
		t.Errorf("crane digest: %q", d)
	}
}

// writeLayerTar writes a one-file tar for crane append and returns its path.
func writeLayerTar(t *testing.T, dir string, content []byte) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
	tw.Write(content)
	tw.Close()
	p := filepath.Join(dir, "layer.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// (c) A token revoked in Keystone is refused once the server's cache entry expires.
func testKeystoneRevocation(t *testing.T, ks *testenv.Keystone, srv *testenv.Server) {
	repo := testenv.KeystoneProject + "/revoke"
	tok := ks.Token(t, testenv.KeystoneMember, testenv.KeystoneProject)
	ksPushImage(t, srv, xAuthToken(tok), repo, "v1")
	pull := func() int {
		status, _, _ := ksCall(t, srv, xAuthToken(tok), "GET", "/v2/"+repo+"/manifests/v1", nil)
		return status
	}
	if s := pull(); s != http.StatusOK {
		t.Fatalf("pull before revocation: %d", s)
	}
	ks.RevokeToken(t, tok)
	revoked := time.Now()
	if ks.TokenValid(t, tok) {
		t.Fatal("keystone still accepts the revoked token")
	}
	deadline := revoked.Add(keystoneCacheTTL + 5*time.Second)
	for {
		s := pull()
		if s == http.StatusUnauthorized {
			t.Logf("revoked token refused %v after revocation (cache TTL %v)", time.Since(revoked).Round(time.Millisecond), keystoneCacheTTL)
			break
		}
		if s != http.StatusOK {
			t.Fatalf("pull with the revoked token: %d, want 200 (cached) or 401", s)
		}
		if time.Now().After(deadline) {
			t.Fatalf("revoked token still accepted %v after revocation (cache TTL %v)", time.Since(revoked), keystoneCacheTTL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	status, h, b := ksCall(t, srv, bearer(tok), "GET", "/v2/"+repo+"/manifests/v1", nil)
	wantChallenge(t, "revoked token as bearer", status, h, b)
}

// (d) Garbage tokens are refused with 401 and a challenge, never treated as anonymous.
func testKeystoneGarbage(t *testing.T, ks *testenv.Keystone, srv *testenv.Server) {
	repo := testenv.KeystoneProject + "/repo"
	garbage := "gAAAAABnotatokenatall" + strings.Repeat("x", 100)
	for name, c := range map[string]cred{"bearer": bearer(garbage), "X-Auth-Token": xAuthToken(garbage)} {
		status, h, b := ksCall(t, srv, c, "GET", "/v2/"+repo+"/manifests/v1", nil)
		wantChallenge(t, name+" garbage pull", status, h, b)
		status, b, _ = ksPushBlob(t, srv, c, repo, []byte("garbage"))
		if status != http.StatusUnauthorized {
			t.Errorf("%s garbage push: %d %s", name, status, b)
		}
	}
	status, _, b := ksCall(t, srv, bearer(garbage), "GET", "/token?scope=repository:"+repo+":pull", nil)
	if status != http.StatusUnauthorized {
		t.Errorf("token endpoint with a garbage token: %d %s", status, b)
	}
}

// (e) The Debian openstack CLI, pointed at the real Keystone, issues a token this server
// accepts.
func testKeystoneOpenstackCLI(t *testing.T, ks *testenv.Keystone, srv *testenv.Server) {
	bin := testenv.RequireTool(t, "openstack")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "token", "issue", "-f", "value", "-c", "id")
	cmd.Dir = t.TempDir()
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "OS_") && !strings.HasPrefix(e, "HOME=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(cmd.Env, "HOME="+cmd.Dir,
		"OS_AUTH_URL="+ks.URL+"/v3", "OS_IDENTITY_API_VERSION=3", "OS_INTERFACE=public", "OS_REGION_NAME=RegionOne",
		"OS_USERNAME="+testenv.KeystoneMember, "OS_PASSWORD="+ks.Password, "OS_USER_DOMAIN_NAME=Default",
		"OS_PROJECT_NAME="+testenv.KeystoneProject, "OS_PROJECT_DOMAIN_NAME=Default")
	cmd.Stdin = nil // /dev/null: the CLI reads stdin when it is not a terminal
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	tok := strings.TrimSpace(string(out))
	if err != nil || tok == "" || strings.ContainsAny(tok, " \n") {
		t.Fatalf("openstack token issue: %v: %q\n%s", err, out, stderr.String())
	}
	repo := testenv.KeystoneProject + "/cli"
	manifest, _ := ksPushImage(t, srv, xAuthToken(tok), repo, "v1")
	status, _, b := ksCall(t, srv, bearer(tok), "GET", "/v2/"+repo+"/manifests/v1", nil)
	if status != http.StatusOK || !bytes.Equal(b, manifest) {
		t.Fatalf("pull with the CLI's token: %d %s", status, b)
	}
}
