package keymanager_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xloud/xloud-image/internal/testenv"
)

// call sends one request to the API port with an X-Auth-Token (none when tok is empty).
func call(t *testing.T, base, tok, method, path string, body any, hdr ...string) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	if tok != "" {
		req.Header.Set("X-Auth-Token", tok)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out, resp.Header
}

func certDER(t *testing.T) []byte {
	k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "signer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestSecretsAPI runs the secrets API against the live server on both metadata backends:
// store, list, show, payload, delete; every caller kind with its exact status; and bad input
// of every kind answered 400 in Barbican's body, storing nothing.
func TestSecretsAPI(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			opt := testenv.ServerOptions{Args: []string{"--auth", "embedded", "--admin-password", "km-admin-pw"}}
			if backend == "redis" {
				opt.RedisURL = testenv.StartRedis(t)
			}
			srv := testenv.StartServer(t, opt)
			testSecretsAPI(t, "http://"+srv.APIAddr)
		})
	}
}

func testSecretsAPI(t *testing.T, base string) {
	idc := testenv.AdminIdentity(t, base, nil, "km-admin-pw")
	demo := idc.Project(t, "demo")
	other := idc.Project(t, "other")
	idc.User(t, demo, "alice", "pw-alice", "member")
	idc.User(t, demo, "carol", "pw-carol", "member")
	idc.User(t, demo, "mgr", "pw-mgr", "manager")
	idc.User(t, demo, "rita", "pw-rita", "reader")
	idc.User(t, other, "bob", "pw-bob", "member")
	tok := map[string]string{"admin": idc.Token}
	for _, u := range []struct{ name, project string }{{"alice", "demo"}, {"carol", "demo"}, {"mgr", "demo"}, {"rita", "demo"}, {"bob", "other"}} {
		tk, err := idc.Login(u.name, "pw-"+u.name, u.project)
		if err != nil {
			t.Fatal(err)
		}
		tok[u.name] = tk
	}
	der := certDER(t)
	const secrets = "/key-manager/v1/secrets"

	// Discovery: keystoneauth finds v1 under the catalog's URL.
	if st, body, _ := call(t, base, "", "GET", "/key-manager", nil); st != 300 || !strings.Contains(string(body), `"id":"v1"`) {
		t.Fatalf("versions: %d %s", st, body)
	}

	// Hostile and malformed input: 400 (or 413) with Barbican's body, nothing stored.
	good := map[string]any{"name": "cert", "secret_type": "certificate", "payload": base64.StdEncoding.EncodeToString(der),
		"payload_content_type": "application/octet-stream", "payload_content_encoding": "base64"}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for a, b := range good {
			m[a] = b
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for _, c := range []struct {
		name string
		body any
		want int
		msg  string
	}{
		{"not json", "{", 400, "Malformed request body"},
		{"trailing", `{"payload":"x"} {}`, 400, "trailing"},
		{"wrong type", with("bit_length", "many"), 400, "bit_length"},
		{"bad base64", with("payload", "@@not base64@@"), 400, "base64"},
		{"no payload", with("payload", nil), 400, "payload"},
		{"empty payload", with("payload", ""), 400, "payload"},
		{"no content type", with("payload_content_type", nil), 400, "payload_content_type"},
		{"unknown content type", with("payload_content_type", "image/png"), 400, "image/png"},
		{"binary without encoding", with("payload_content_encoding", nil), 400, "base64"},
		{"text with encoding", with("payload_content_type", "text/plain"), 400, "text/plain"},
		{"unknown secret type", with("secret_type", "banana"), 400, "banana"},
		{"negative bit length", with("bit_length", -1), 400, "bit_length"},
		{"past expiration", with("expiration", "2001-01-01T00:00:00Z"), 400, "expiration"},
		{"bad expiration", with("expiration", "tomorrow"), 400, "expiration"},
		{"too large", with("payload", base64.StdEncoding.EncodeToString(make([]byte, 10001))), 400, "larger"},
		{"huge body", strings.Repeat(" ", 70<<10), 413, "too large"},
	} {
		st, body, _ := call(t, base, tok["alice"], "POST", secrets, c.body)
		var e struct {
			Code        int    `json:"code"`
			Title       string `json:"title"`
			Description string `json:"description"`
		}
		if st != c.want || json.Unmarshal(body, &e) != nil || e.Code != c.want || !strings.Contains(e.Description, c.msg) {
			t.Errorf("%s: %d %s, want %d mentioning %q", c.name, st, body, c.want, c.msg)
		}
	}
	if st, body, _ := call(t, base, tok["alice"], "GET", secrets, nil); st != 200 || !strings.Contains(string(body), `"total":0`) {
		t.Fatalf("after refusals: %d %s", st, body)
	}

	// Store: members and managers of the project, not readers, not anonymous.
	for who, want := range map[string]int{"rita": 403, "": 401} {
		if st, body, _ := call(t, base, tok[who], "POST", secrets, good); st != want {
			t.Errorf("store as %q: %d %s, want %d", who, st, body, want)
		}
	}
	st, body, hdr := call(t, base, tok["alice"], "POST", secrets+"/", good)
	var created struct {
		Ref string `json:"secret_ref"`
	}
	if st != 201 || json.Unmarshal(body, &created) != nil || hdr.Get("Location") != created.Ref ||
		!strings.HasPrefix(created.Ref, base+secrets+"/") {
		t.Fatalf("store: %d %s", st, body)
	}
	id := created.Ref[len(base+secrets+"/"):]
	path := secrets + "/" + id
	text := map[string]any{"name": "note", "payload": "hello", "payload_content_type": "text/plain"}
	if st, body, _ := call(t, base, tok["carol"], "POST", secrets, text); st != 201 {
		t.Fatalf("store text: %d %s", st, body)
	}

	// Show, payload, list, delete: each caller's exact status.
	for _, c := range []struct {
		who, method, path string
		accept            string
		want              int
	}{
		{"alice", "GET", path, "", 200},
		{"rita", "GET", path, "", 200},
		{"bob", "GET", path, "", 404}, // another project: as missing
		{"", "GET", path, "", 401},
		{"admin", "GET", path, "", 200},
		{"alice", "GET", path + "/payload", "application/octet-stream", 200},
		{"alice", "GET", path + "/payload", "*/*", 200},
		{"alice", "GET", path + "/payload", "text/plain", 406},
		{"alice", "GET", path, "application/octet-stream", 200}, // the payload, by Accept
		{"carol", "GET", path + "/payload", "application/octet-stream", 200},
		{"rita", "GET", path + "/payload", "application/octet-stream", 403},
		{"bob", "GET", path + "/payload", "application/octet-stream", 404},
		{"alice", "GET", secrets + "/not-a-uuid", "", 404},
		{"alice", "GET", secrets + "/00000000-0000-4000-8000-000000000000", "", 404},
		{"alice", "PUT", path, "", 405},
		{"bob", "DELETE", path, "", 404},
		{"rita", "DELETE", path, "", 403},
		{"carol", "DELETE", path, "", 403}, // a member who did not create it
	} {
		var hdr []string
		if c.accept != "" {
			hdr = []string{"Accept", c.accept}
		}
		st, body, _ := call(t, base, tok[c.who], c.method, c.path, nil, hdr...)
		if st != c.want {
			t.Errorf("%s %s %s (Accept %q): %d %s, want %d", c.who, c.method, c.path, c.accept, st, body, c.want)
		}
		if st == 200 && strings.HasSuffix(c.path, "/payload") && !bytes.Equal(body, der) {
			t.Errorf("%s payload: %d bytes, want the stored %d", c.who, len(body), len(der))
		}
	}
	var meta map[string]any
	_, body, _ = call(t, base, tok["rita"], "GET", path, nil)
	json.Unmarshal(body, &meta)
	if meta["name"] != "cert" || meta["secret_type"] != "certificate" || meta["status"] != "ACTIVE" ||
		meta["secret_ref"] != created.Ref || meta["content_types"].(map[string]any)["default"] != "application/octet-stream" {
		t.Fatalf("show: %s", body)
	}
	var list struct {
		Secrets []map[string]any `json:"secrets"`
		Total   int              `json:"total"`
		Next    string           `json:"next"`
	}
	_, body, _ = call(t, base, tok["rita"], "GET", secrets+"?limit=1", nil)
	if json.Unmarshal(body, &list) != nil || list.Total != 2 || len(list.Secrets) != 1 || list.Secrets[0]["name"] != "cert" || list.Next == "" {
		t.Fatalf("list limit=1: %s", body)
	}
	_, body, _ = call(t, base, tok["bob"], "GET", secrets, nil)
	if json.Unmarshal(body, &list) != nil || list.Total != 0 {
		t.Fatalf("bob lists: %s", body)
	}
	if st, _, _ := call(t, base, tok["alice"], "GET", secrets+"?limit=x", nil); st != 400 {
		t.Errorf("limit=x: %d", st)
	}
	if st, _, _ := call(t, base, tok["mgr"], "DELETE", path, nil); st != 204 {
		t.Fatalf("delete by the project's manager: %d", st)
	}
	if st, _, _ := call(t, base, tok["alice"], "GET", path, nil); st != 404 {
		t.Fatalf("after delete: %d", st)
	}
}

// TestSecretCLI stores, shows, fetches and deletes a certificate with the real
// `openstack secret` (python3-barbicanclient), which finds the service as key-manager in
// the identity catalog.
func TestSecretCLI(t *testing.T) {
	t.Parallel()
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--auth", "embedded", "--admin-password", "km-admin-pw"}})
	idc := testenv.AdminIdentity(t, "http://"+srv.APIAddr, nil, "km-admin-pw")
	demo := idc.Project(t, "demo")
	idc.User(t, demo, "alice", "alice-pw", "member")
	dir := t.TempDir()
	der := certDER(t)
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, testenv.RequireTool(t, "openstack"), args...)
		cmd.Env = append(os.Environ(), "HOME="+dir, "OS_AUTH_URL=http://"+srv.APIAddr+"/identity/v3",
			"OS_USERNAME=alice", "OS_PASSWORD=alice-pw", "OS_PROJECT_NAME=demo",
			"OS_USER_DOMAIN_NAME=Default", "OS_PROJECT_DOMAIN_NAME=Default", "OS_IDENTITY_API_VERSION=3",
			"OS_INTERFACE=public", "OS_REGION_NAME=RegionOne", "OS_CLOUD=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	ok := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("openstack %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(out)
	}
	ref := ok("secret", "store", "--name", "cert", "--secret-type", "certificate", "--payload-content-type",
		"application/octet-stream", "--payload-content-encoding", "base64", "--payload", base64.StdEncoding.EncodeToString(der),
		"-f", "value", "-c", "Secret href")
	if !strings.HasPrefix(ref, "http://"+srv.APIAddr+"/key-manager/v1/secrets/") {
		t.Fatalf("secret store: %q", ref)
	}
	if out := ok("secret", "list", "-f", "value", "-c", "Name", "-c", "Secret type"); out != "cert certificate" {
		t.Fatalf("secret list: %q", out)
	}
	if out := ok("secret", "get", ref, "-f", "value", "-c", "Status"); out != "ACTIVE" {
		t.Fatalf("secret get: %q", out)
	}
	file := filepath.Join(dir, "cert.der")
	ok("secret", "get", "--payload_content_type", "application/octet-stream", "--file", file, ref)
	if got, _ := os.ReadFile(file); !bytes.Equal(got, der) {
		t.Fatalf("secret get --file: %d bytes, want %d", len(got), len(der))
	}
	ok("secret", "delete", ref)
	if out, err := run("secret", "get", ref); err == nil || !strings.Contains(out, "Not Found") {
		t.Fatalf("secret get after delete: %v %s", err, out)
	}
}
