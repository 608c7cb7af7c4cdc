package imageapi_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xloud/xloud-image/internal/testenv"
)

// ptyDriver runs a command on a pseudo-terminal and answers an empty line to its password
// prompt: `openstack image create --sign-key-path` asks for the key's password and refuses
// to run without a terminal.
const ptyDriver = `
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
out, sent = b"", False
while True:
    try:
        b = os.read(fd, 4096)
    except OSError:
        break
    if not b:
        break
    out += b
    if not sent and b"password" in out.lower():
        os.write(fd, b"\n")
        sent = True
_, st = os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
sys.exit(os.waitstatus_to_exitcode(st))
`

// onTerminal runs `openstack args…` as c on a terminal and returns its output.
func (c *cli) onTerminal(args ...string) (string, error) {
	return c.toolOnTerminal("openstack", args...)
}

// toolOnTerminal runs `tool args…` as c on a terminal and returns its output.
func (c *cli) toolOnTerminal(tool string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.RequireTool(c.t, "python3"), append([]string{"-c", ptyDriver,
		testenv.RequireTool(c.t, tool)}, args...)...)
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestGlanceSigningCLI is Glance's signing flow as the Xloud docs write it: a certificate
// stored with `openstack secret store`, an image created with `openstack image create
// --sign-key-path --sign-cert-id` (RSA-PSS, SHA-256) becomes active; signed with another key
// it is refused with 400; an image whose properties carry a bad signature stays queued with
// no data after a refused upload.
func TestGlanceSigningCLI(t *testing.T) {
	t.Parallel()
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--auth", "embedded", "--admin-password", "sig-admin-pw"}})
	idc := testenv.AdminIdentity(t, "http://"+srv.APIAddr, nil, "sig-admin-pw")
	demo := idc.Project(t, "demo")
	idc.User(t, demo, "alice", "alice-pw", "member")
	alice := newCLI(t, srv, "alice", "alice-pw", "demo")

	dir := t.TempDir()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	keyPath, otherPath, diskPath := filepath.Join(dir, "key.pem"), filepath.Join(dir, "other.pem"), filepath.Join(dir, "disk.raw")
	for path, k := range map[string]*rsa.PrivateKey{keyPath: key, otherPath: other} {
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	}
	os.WriteFile(diskPath, rawImage(1<<20), 0o644)
	cert := selfSigned(t, key, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))

	ref := strings.TrimSpace(alice.ok("openstack", "secret", "store", "--name", "cert", "--secret-type", "certificate",
		"--payload-content-type", "application/octet-stream", "--payload-content-encoding", "base64",
		"--payload", base64.StdEncoding.EncodeToString(cert), "-f", "value", "-c", "Secret href"))
	certID := ref[strings.LastIndex(ref, "/")+1:]

	if out, err := alice.onTerminal("image", "create", "--disk-format", "raw", "--container-format", "bare",
		"--sign-key-path", keyPath, "--sign-cert-id", certID, "--file", diskPath, "signed"); err != nil {
		t.Fatalf("image create --sign-key-path: %v\n%s", err, out)
	}
	img := alice.image("show", "signed")
	props, _ := img["properties"].(map[string]any)
	if img["status"] != "active" || props["img_signature_key_type"] != "RSA-PSS" || props["img_signature_hash_method"] != "SHA-256" ||
		props["img_signature_certificate_uuid"] != certID {
		t.Fatalf("signed image: %v", img)
	}

	out, err := alice.onTerminal("image", "create", "--disk-format", "raw", "--container-format", "bare",
		"--sign-key-path", otherPath, "--sign-cert-id", certID, "--file", diskPath, "forged")
	if err == nil || !strings.Contains(out, "400") {
		t.Fatalf("image create signed with another key: %v\n%s", err, out)
	}

	// Properties set by hand with a bad signature (by the API: OSC uploads its empty stdin
	// when given no file); the upload through the glance CLI (which, unlike OSC, does not
	// delete the image after a failure) is refused and the image stays queued, no data.
	tok, err := idc.Login("alice", "alice-pw", "demo")
	if err != nil {
		t.Fatal(err)
	}
	api := func(method, path string, body string) map[string]any {
		req, _ := http.NewRequest(method, "http://"+srv.APIAddr+path, strings.NewReader(body))
		req.Header.Set("X-Auth-Token", tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return m
	}
	created := api("POST", "/v2/images", `{"name":"handmade","disk_format":"raw","container_format":"bare",
		"img_signature":"`+base64.StdEncoding.EncodeToString(make([]byte, 256))+`","img_signature_hash_method":"SHA-256",
		"img_signature_key_type":"RSA-PSS","img_signature_certificate_uuid":"`+certID+`"}`)
	id, _ := created["id"].(string)
	alice.fails("Signature verification failed", "glance", "image-upload", "--file", diskPath, id)
	if img := api("GET", "/v2/images/"+id, ""); img["status"] != "queued" || img["size"] != nil ||
		img["checksum"] != nil || img["xloud_oci_reference"] != nil {
		t.Fatalf("after the refused upload: %v", img)
	}
}
