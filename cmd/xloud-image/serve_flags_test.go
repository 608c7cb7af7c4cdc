package main

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xloud/xloud-image/internal/testenv"
)

// TestAdvertisedURLs: --api-public-url is what the API port advertises (the Image API's
// version documents and the identity catalog), --public-url what the registry port does,
// for the Image API under /image too.
func TestAdvertisedURLs(t *testing.T) {
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--auth", "embedded", "--admin-password", "admin-secret",
		"--api-public-url", "https://images.example.test:9292/", "--public-url", "https://registry.example.test"}})
	c := &client{t: t, base: "http://" + srv.APIAddr}
	resp, body, err := c.do("GET", "/", nil)
	if err != nil || resp.StatusCode != 300 || !strings.Contains(string(body), `"href":"https://images.example.test:9292/v2/"`) {
		t.Fatalf("versions on the API port: %v %v %s", resp, err, body)
	}
	c.base = "http://" + srv.RegistryAddr
	resp, body, err = c.do("GET", "/image/versions", nil)
	if err != nil || resp.StatusCode != 200 || !strings.Contains(string(body), `"href":"https://registry.example.test/image/v2/"`) {
		t.Fatalf("versions under /image on the registry port: %v %v %s", resp, err, body)
	}
	c.base = "http://" + srv.APIAddr
	auth := `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"id":"default"},"password":"admin-secret"}}},
		"scope":{"project":{"name":"admin","domain":{"id":"default"}}}}}`
	resp, body, err = c.do("POST", "/identity/v3/auth/tokens", strings.NewReader(auth), "Content-Type", "application/json")
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("token: %v %v %s", resp, err, body)
	}
	for _, want := range []string{`"url":"https://images.example.test:9292"`, `"url":"https://images.example.test:9292/identity"`, `"url":"https://registry.example.test"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("identity catalog lacks %s: %s", want, body)
		}
	}
}

// TestWebDownloadPorts: web-download fetches from the ports --web-download-ports allows
// (Glance's allowed_ports; by default 80 and 443 only) and refuses the others with 400; a
// loopback origin also needs an allowed host naming it (flag, or a YAML list).
func TestWebDownloadPorts(t *testing.T) {
	disk := []byte(strings.Repeat("raw disk bytes ", 10000))
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(disk) }))
	defer origin.Close()
	u, _ := url.Parse(origin.URL)
	uri := origin.URL + "/disk.raw"
	sum := md5.Sum(disk)

	for _, bad := range []webFilter{{Ports: "80,x"}, {DisallowedPorts: "0"}, {AllowedHosts: "10.0.0.0/33"},
		{DisallowedHosts: "bad host"}, {AllowedSchemes: "ftp"}} {
		if _, err := webDownloader(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	yamlFile := filepath.Join(t.TempDir(), "config.yaml")
	yamlText := "web-download-ports: \"\"\nweb-download-allowed-hosts: [10.0.0.0/8, 127.0.0.0/8]\n"
	if err := os.WriteFile(yamlFile, []byte(yamlText), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		env    string // XLOUD_WEB_DOWNLOAD_ALLOWED_HOSTS
		status int
	}{
		{"default ports", nil, "", 400},
		{"origin's port, loopback not allowed", []string{"--web-download-ports", "443," + u.Port()}, "", 400},
		{"origin's port and host allowed", []string{"--web-download-ports", "443," + u.Port(), "--web-download-allowed-hosts", "127.0.0.1"}, "", 202},
		{"any port, loopback allowed in the environment", []string{"--web-download-ports", ""}, "127.0.0.1", 202},
		{"any port, loopback CIDR allowed in YAML", []string{"--config", yamlFile}, "", 202},
		{"disallowed port", []string{"--web-download-ports", "", "--web-download-disallowed-ports", u.Port(), "--web-download-allowed-hosts", "127.0.0.1"}, "", 400},
		{"disallowed scheme", []string{"--web-download-ports", "", "--web-download-allowed-schemes", "", "--web-download-disallowed-schemes", "http", "--web-download-allowed-hosts", "127.0.0.1"}, "", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("XLOUD_WEB_DOWNLOAD_ALLOWED_HOSTS", tc.env)
			}
			srv := testenv.StartServer(t, testenv.ServerOptions{Args: tc.args})
			c := &client{t: t, base: "http://" + srv.APIAddr}
			resp, body, err := c.do("POST", "/v2/images", strings.NewReader(`{"name":"web","disk_format":"raw","container_format":"bare"}`), "Content-Type", "application/json")
			if err != nil || resp.StatusCode != 201 {
				t.Fatalf("create: %v %v %s", resp, err, body)
			}
			var img map[string]any
			json.Unmarshal(body, &img)
			id := img["id"].(string)
			req := fmt.Sprintf(`{"method":{"name":"web-download","uri":%q}}`, uri)
			resp, body, err = c.do("POST", "/v2/images/"+id+"/import", strings.NewReader(req), "Content-Type", "application/json")
			if err != nil || resp.StatusCode != tc.status {
				t.Fatalf("import: %v %v %s, want %d", resp, err, body, tc.status)
			}
			want := "queued"
			if tc.status == 202 {
				want = "active"
			}
			for i := 0; ; i++ {
				_, body, _ = c.do("GET", "/v2/images/"+id, nil)
				json.Unmarshal(body, &img)
				if img["status"] == want || i == 500 {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if img["status"] != want {
				t.Fatalf("image is %v, want %s: %s", img["status"], want, body)
			}
			if want == "active" && img["checksum"] != hex.EncodeToString(sum[:]) {
				t.Fatalf("checksum %v, want %x", img["checksum"], sum)
			}
		})
	}
}

// TestServeSettingsFromEnvAndYAML: the serve settings that live in the config struct take
// XLOUD_* and YAML like every flag: os_hash_algo from the environment, sparse manifests and
// web-download ports and hosts (the origin is on loopback, refused unless named) from the
// file; a bad hashing algorithm from the environment stops serve.
func TestServeSettingsFromEnvAndYAML(t *testing.T) {
	disk := []byte(strings.Repeat("raw disk bytes ", 1000))
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(disk) }))
	defer origin.Close()
	u, _ := url.Parse(origin.URL)
	cfg := filepath.Join(t.TempDir(), "xloud.yaml")
	if err := os.WriteFile(cfg, []byte("sparse-manifests: true\nweb-download-ports: \"443,"+u.Port()+"\"\nweb-download-allowed-hosts: [127.0.0.1]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XLOUD_HASHING_ALGORITHM", "sha512")
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--config", cfg}})
	c := &client{t: t, base: "http://" + srv.APIAddr}
	resp, body, err := c.do("POST", "/v2/images", strings.NewReader(`{"name":"web","disk_format":"raw","container_format":"bare"}`), "Content-Type", "application/json")
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("create: %v %v %s", resp, err, body)
	}
	var img map[string]any
	json.Unmarshal(body, &img)
	id := img["id"].(string)
	req := fmt.Sprintf(`{"method":{"name":"web-download","uri":%q}}`, origin.URL+"/disk.raw")
	if resp, body, err = c.do("POST", "/v2/images/"+id+"/import", strings.NewReader(req), "Content-Type", "application/json"); err != nil || resp.StatusCode != 202 {
		t.Fatalf("import from the YAML's allowed port: %v %v %s", resp, err, body)
	}
	for i := 0; img["status"] != "active" && i < 500; i++ {
		time.Sleep(10 * time.Millisecond)
		_, body, _ = c.do("GET", "/v2/images/"+id, nil)
		json.Unmarshal(body, &img)
	}
	if img["status"] != "active" || img["os_hash_algo"] != "sha512" {
		t.Fatalf("imported image: %s", body)
	}
	// A manifest whose blobs were never pushed: accepted with sparse-manifests.
	reg := &client{t: t, base: "http://" + srv.RegistryAddr}
	missing := "sha256:" + strings.Repeat("ab", 32)
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":2},"layers":[]}`, missing)
	if resp, body, err = reg.do("PUT", "/v2/sparse/app/manifests/v1", strings.NewReader(m), "Content-Type", "application/vnd.oci.image.manifest.v1+json"); err != nil || resp.StatusCode != 201 {
		t.Fatalf("sparse manifest: %v %v %s", resp, err, body)
	}

	t.Setenv("XLOUD_HASHING_ALGORITHM", "md5")
	cmd := exec.Command(testenv.Binary(t), "serve", "--data-dir", t.TempDir(), "--auth", "none", "--registry-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "XLOUD_HASHING_ALGORITHM") || !strings.Contains(string(out), "sha256 or sha512") {
		t.Fatalf("serve with XLOUD_HASHING_ALGORITHM=md5: %v\n%s", err, out)
	}
}
