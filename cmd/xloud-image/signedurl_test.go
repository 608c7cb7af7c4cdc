package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xloud/xloud-image/internal/testenv"
)

// bootWorld is a server with auth, a project "alpha" whose member alice owns a qcow2 image,
// and bob, a reader of alpha.
type bootWorld struct {
	t          *testing.T
	srv        *testenv.Server
	hc         *http.Client
	api, reg   string // base URLs
	admin      *testenv.IdentityClient
	alphaID    string
	bobID      string
	alice, bob string // project-scoped tokens
	image      string // image id
	disk       string // path of the image's qcow2 file
	// wrap runs qemu's commands (with the test CA trusted, over TLS).
	wrap []string
}

// call sends one request and returns the status and body.
func (w *bootWorld) call(method, url, token string, body []byte, hdr ...string) (*http.Response, []byte) {
	w.t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		w.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := w.hc.Do(req)
	if err != nil {
		w.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func (w *bootWorld) must(want int, method, url, token string, body []byte, hdr ...string) []byte {
	w.t.Helper()
	resp, b := w.call(method, url, token, body, hdr...)
	if resp.StatusCode != want {
		w.t.Fatalf("%s %s: %d, want %d: %s", method, url, resp.StatusCode, want, b)
	}
	return b
}

// newBootWorld starts the server (over TLS when ca is set) and uploads a 64 MiB qcow2 with
// a few written extents as alice.
func newBootWorld(t *testing.T, ca *testenv.CA, args ...string) *bootWorld {
	testenv.RequireTool(t, "qemu-img")
	testenv.RequireTool(t, "qemu-io")
	args = append([]string{"--auth", "embedded", "--admin-password", "admin-secret"}, args...)
	w := &bootWorld{t: t, hc: http.DefaultClient}
	if ca != nil {
		w.srv = testenv.StartTLSServer(t, ca, testenv.ServerOptions{Args: args})
		w.hc = ca.Client()
		w.api, w.reg = w.srv.APIURL(true), w.srv.HTTPSURL()
	} else {
		w.srv = testenv.StartServer(t, testenv.ServerOptions{Args: args})
		w.api, w.reg = w.srv.APIURL(false), w.srv.URL()
	}
	w.admin = testenv.AdminIdentity(t, w.api, w.hc, "admin-secret")
	w.alphaID = w.admin.Project(t, "alpha")
	w.admin.User(t, w.alphaID, "alice", "alice-pw", "member")
	w.bobID = w.admin.User(t, w.alphaID, "bob", "bob-pw", "reader")
	var err error
	id := &testenv.IdentityClient{Base: w.api, HTTP: w.hc}
	if w.alice, err = id.Login("alice", "alice-pw", "alpha"); err != nil {
		t.Fatal(err)
	}
	if w.bob, err = id.Login("bob", "bob-pw", "alpha"); err != nil {
		t.Fatal(err)
	}
	w.disk = filepath.Join(t.TempDir(), "disk.qcow2")
	qemu(t, nil, "qemu-img", "create", "-q", "-f", "qcow2", w.disk, "64M")
	qemu(t, nil, "qemu-io", "-f", "qcow2", "-c", "write -P 0xab 0 1M", "-c", "write -P 0x5c 10M 3M",
		"-c", "write -P 0x17 63M 1M", w.disk)
	var img struct{ ID string }
	json.Unmarshal(w.must(201, "POST", w.api+"/v2/images", w.alice,
		[]byte(`{"name":"golden","disk_format":"qcow2","container_format":"bare"}`), "Content-Type", "application/json"), &img)
	w.image = img.ID
	data, err := os.ReadFile(w.disk)
	if err != nil {
		t.Fatal(err)
	}
	w.must(204, "PUT", w.api+"/v2/images/"+w.image+"/file", w.alice, data, "Content-Type", "application/octet-stream")
	return w
}

// qemu runs a (qemu) command and returns its output, failing the test when it fails.
func qemu(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// signedURL asks the Image API for a URL of the image as token's caller.
func (w *bootWorld) signedURL(token, body string) string {
	w.t.Helper()
	var out struct {
		URL       string `json:"url"`
		ExpiresAt string `json:"expires_at"`
	}
	b := w.must(200, "POST", w.api+"/v2/images/"+w.image+"/actions/url", token, []byte(body), "Content-Type", "application/json")
	if err := json.Unmarshal(b, &out); err != nil || out.URL == "" {
		w.t.Fatalf("url answer %s: %v", b, err)
	}
	exp, err := time.Parse(time.RFC3339, out.ExpiresAt)
	if err != nil || exp.Before(time.Now()) {
		w.t.Fatalf("expires_at %q: %v", out.ExpiresAt, err)
	}
	return out.URL
}

// backing is qemu's backing file name for url.
func backing(url string) string {
	b, _ := json.Marshal(map[string]string{"file.driver": strings.SplitN(url, ":", 2)[0], "file.url": url})
	return "json:" + string(b)
}

// qemuImg runs qemu-img (wrapped) with args.
func (w *bootWorld) qemuImg(env []string, args ...string) string {
	w.t.Helper()
	all := append(append(slices.Clone(w.wrap), "qemu-img"), args...)
	return qemu(w.t, env, all[0], all[1:]...)
}

// trustCA makes qemu's commands trust ca: qemu's curl driver (libcurl with GnuTLS) reads
// only the system bundle and no CA option or variable, so they run in a private mount
// namespace where the system bundle plus ca is bound over /etc/ssl/certs/ca-certificates.crt.
func (w *bootWorld) trustCA(ca *testenv.CA) {
	const system = "/etc/ssl/certs/ca-certificates.crt"
	sys, err := os.ReadFile(system)
	if err != nil {
		w.t.Fatalf("system CA bundle: %v", err)
	}
	pem, err := os.ReadFile(ca.CertFile)
	if err != nil {
		w.t.Fatal(err)
	}
	bundle := filepath.Join(w.t.TempDir(), "bundle.pem")
	if err := os.WriteFile(bundle, append(append(sys, '\n'), pem...), 0o644); err != nil {
		w.t.Fatal(err)
	}
	ns := []string{"unshare", "--mount"}
	if os.Geteuid() != 0 {
		ns = append(ns, "--map-root-user")
	}
	w.wrap = append(ns, "sh", "-c", `mount --bind "$0" `+system+` && exec "$@"`, bundle)
}

// overlayReads makes a qcow2 overlay over url and checks it reads back identical to the
// image; env goes to qemu (e.g. the CA bundle).
func (w *bootWorld) overlayReads(url string, env ...string) {
	w.t.Helper()
	overlay := filepath.Join(w.t.TempDir(), "overlay.qcow2")
	w.qemuImg(env, "create", "-q", "-f", "qcow2", "-b", backing(url), "-F", "qcow2", overlay)
	out := w.qemuImg(env, "compare", "-f", "qcow2", "-F", "qcow2", overlay, w.disk)
	if !strings.Contains(out, "Images are identical") {
		w.t.Fatalf("compare: %s", out)
	}
}

// qemuRefused checks that qemu cannot open url and that a GET of it answers status with an
// error body naming code.
func (w *bootWorld) qemuRefused(url string, status int, why string, env ...string) {
	w.t.Helper()
	args := append(append(slices.Clone(w.wrap), "qemu-img", "info", "-f", "qcow2"), backing(url))
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err == nil {
		w.t.Fatalf("%s: qemu-img info succeeded:\n%s", why, out)
	}
	resp, b := w.call("GET", url, "", nil, "Range", "bytes=0-511")
	if resp.StatusCode != status || !strings.Contains(string(b), `"errors"`) {
		w.t.Fatalf("%s: GET answered %d %s, want %d with an error body", why, resp.StatusCode, b, status)
	}
	if resp, _ := w.call("HEAD", url, "", nil); resp.StatusCode != status {
		w.t.Fatalf("%s: HEAD answered %d, want %d", why, resp.StatusCode, status)
	}
}

// TestSignedURLQemu: a qcow2 overlay whose backing file is a signed URL of an image reads
// back identical to the image through qemu's http driver; GET, HEAD and Range answer as a
// blob GET; the URL is refused once tampered with, expired, once its holder lost their role,
// while the image is deactivated (and works again once reactivated), and once the image is
// deleted; bad requests for a URL are refused and change nothing; the registry issues URLs
// of blobs too; bytes served are counted per image and the access log carries the URL's
// nonce, never its token.
func TestSignedURLQemu(t *testing.T) {
	w := newBootWorld(t, nil, "--access-log", "--signed-url-max-ttl", "2h")
	url := w.signedURL(w.alice, "")
	w.overlayReads(url)

	// HTTP semantics of a blob GET.
	data, _ := os.ReadFile(w.disk)
	d := fmt.Sprintf("sha256:%x", sha256.Sum256(data))
	resp, _ := w.call("HEAD", url, "", nil)
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(data)) || resp.Header.Get("Accept-Ranges") != "bytes" ||
		resp.Header.Get("ETag") != `"`+d+`"` {
		t.Fatalf("HEAD: %d length %d headers %v", resp.StatusCode, resp.ContentLength, resp.Header)
	}
	resp, b := w.call("GET", url, "", nil, "Range", "bytes=100-199")
	if resp.StatusCode != 206 || !bytes.Equal(b, data[100:200]) ||
		resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 100-199/%d", len(data)) {
		t.Fatalf("Range GET: %d %v", resp.StatusCode, resp.Header)
	}
	if resp, _ := w.call("GET", url, "", nil, "Range", fmt.Sprintf("bytes=%d-", len(data)+10)); resp.StatusCode != 416 {
		t.Fatalf("unsatisfiable range: %d", resp.StatusCode)
	}
	if resp, b := w.call("GET", url, "", nil); resp.StatusCode != 200 || !bytes.Equal(b, data) {
		t.Fatalf("GET: %d, %d bytes", resp.StatusCode, len(b))
	}
	w.must(405, "PUT", url, "", nil)

	// Bad requests for a URL: clear errors, and no key or URL is made.
	for _, c := range []struct {
		token, path, body string
		want              int
	}{
		{w.alice, w.image, `{"ttl":0}`, 400},
		{w.alice, w.image, `{"ttl":7201}`, 400},
		{w.alice, w.image, `{"ttl":"60"}`, 400},
		{w.alice, w.image, `{"ttl":60,"x":1}`, 400},
		{w.alice, w.image, `[1]`, 400},
		{w.alice, "00000000-0000-0000-0000-000000000000", "", 404},
		{"", w.image, "", 401},
	} {
		resp, b := w.call("POST", w.api+"/v2/images/"+c.path+"/actions/url", c.token, []byte(c.body), "Content-Type", "application/json")
		if resp.StatusCode != c.want || bytes.Contains(b, []byte("/signed/")) {
			t.Errorf("POST url %s %q: %d %s, want %d", c.path, c.body, resp.StatusCode, b, c.want)
		}
	}

	// Tampered: a changed claim, a changed signature, a truncated token, a foreign key id.
	token := url[strings.Index(url, "/signed/")+len("/signed/"):]
	payload, sig, _ := strings.Cut(token, ".")
	claims, _ := base64.RawURLEncoding.DecodeString(payload)
	forged := base64.RawURLEncoding.EncodeToString(bytes.Replace(claims, []byte(w.image), []byte("00000000-0000-0000-0000-000000000000"), 1))
	otherKey := base64.RawURLEncoding.EncodeToString(bytes.Replace(claims, []byte(`"k":"`), []byte(`"k":"x`), 1))
	flipped := []byte(sig)
	flipped[3] ^= 1
	base := strings.TrimSuffix(url, token)
	for _, bad := range []string{forged + "." + sig, payload + "." + string(flipped), payload, otherKey + "." + sig, "", "!!!"} {
		w.qemuRefused(base+bad, 403, "tampered "+bad)
	}

	// Expiry.
	short := w.signedURL(w.alice, `{"ttl":1}`)
	time.Sleep(2100 * time.Millisecond)
	w.qemuRefused(short, 403, "expired")

	// Lost access: bob reads while he is a reader of alpha, not once the role is revoked.
	bobURL := w.signedURL(w.bob, `{"ttl":600}`)
	w.overlayReads(bobURL)
	w.must(204, "DELETE", w.api+"/identity/v3/projects/"+w.alphaID+"/users/"+w.bobID+"/roles/role-reader", w.admin.Token, nil)
	w.qemuRefused(bobURL, 403, "role revoked")

	// The registry's own URL of the same blob, asked with a registry credential.
	var reg struct{ URL string }
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:alice-pw"))
	rb := w.must(200, "POST", w.reg+"/v2/alpha/golden/blobs/"+d+"/url?ttl=600", "", nil, "Authorization", basic)
	json.Unmarshal(rb, &reg)
	w.overlayReads(reg.URL)
	for _, bad := range []struct {
		path string
		want int
	}{{"/v2/alpha/golden/blobs/" + d + "/url?ttl=0", 400}, {"/v2/alpha/golden/blobs/sha256:nope/url", 400},
		{"/v2/alpha/golden/blobs/sha256:" + strings.Repeat("0", 64) + "/url", 404}} {
		if resp, b := w.call("POST", w.reg+bad.path, "", nil, "Authorization", basic); resp.StatusCode != bad.want {
			t.Errorf("POST %s: %d %s, want %d", bad.path, resp.StatusCode, b, bad.want)
		}
	}

	// Deactivation refuses at use; reactivation lets the same URL read again.
	w.must(204, "POST", w.api+"/v2/images/"+w.image+"/actions/deactivate", w.alice, nil)
	w.qemuRefused(url, 403, "deactivated")
	w.qemuRefused(reg.URL, 403, "deactivated (registry URL)")
	w.must(403, "POST", w.api+"/v2/images/"+w.image+"/actions/url", w.alice, nil)
	w.must(204, "POST", w.api+"/v2/images/"+w.image+"/actions/reactivate", w.alice, nil)
	w.overlayReads(url)

	// Metrics: uses and bytes by image, and the access log names the nonce, not the token.
	m := string(w.must(200, "GET", w.reg+"/metrics", "", nil, "Authorization", adminBasic))
	if v, ok := metricValue(m, `xloud_signed_url_bytes_total{image="`+w.image+`"}`); !ok || v < float64(len(data)) {
		t.Errorf("bytes served for the image: %v %v", v, ok)
	}
	if v, ok := metricValue(m, `xloud_signed_url_requests_total{image="`+w.image+`"}`); !ok || v < 4 {
		t.Errorf("requests for the image: %v %v", v, ok)
	}
	if strings.Contains(w.srv.Log(), sig) || !strings.Contains(w.srv.Log(), `"url_nonce"`) {
		t.Errorf("access log: the token is logged, or the nonce is not")
	}

	// Deletion.
	w.must(204, "DELETE", w.api+"/v2/images/"+w.image, w.alice, nil)
	w.qemuRefused(url, 403, "deleted")
	w.qemuRefused(reg.URL, 403, "deleted (registry URL)")
}

// TestSignedURLQemuHTTPS: over HTTPS, qemu's https driver reads the signed URL verifying
// the server against the test CA, and refuses the server without it.
func TestSignedURLQemuHTTPS(t *testing.T) {
	ca := testenv.NewCA(t)
	w := newBootWorld(t, ca)
	url := w.signedURL(w.alice, "")
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("URL over TLS: %s", url)
	}
	// Without the CA, qemu refuses the server: the check is real.
	overlay := filepath.Join(t.TempDir(), "overlay.qcow2")
	cmd := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-b", backing(url), "-F", "qcow2", overlay)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "certificate") {
		t.Fatalf("qemu over TLS without the CA: %v %s", err, out)
	}
	w.trustCA(ca)
	w.overlayReads(url)
	w.must(204, "POST", w.api+"/v2/images/"+w.image+"/actions/deactivate", w.alice, nil)
	w.qemuRefused(url, 403, "deactivated, over TLS")
}

// TestBootArgs: `xloud-image boot-args` signs in with the OS_* variables, finds the image by
// name, and prints a qemu-img line that, run by a shell, makes an overlay reading back
// identical to the image, and the qemu-system-x86_64 line booting that overlay; a wrong
// password or an unknown image is a clear error.
func TestBootArgs(t *testing.T) {
	w := newBootWorld(t, nil)
	dir := t.TempDir()
	env := []string{"OS_AUTH_URL=" + w.api + "/identity/v3", "OS_USERNAME=alice", "OS_PASSWORD=alice-pw",
		"OS_PROJECT_NAME=alpha", "OS_USER_DOMAIN_NAME=Default", "OS_PROJECT_DOMAIN_NAME=Default"}
	out, err := runTool(t, testenv.Binary(t), env, "boot-args", "--overlay", filepath.Join(dir, "vm.qcow2"), "--ttl", "600", "golden")
	if err != nil {
		t.Fatalf("boot-args: %v\n%s", err, out)
	}
	var create, system string
	for line := range strings.Lines(out) {
		switch {
		case strings.HasPrefix(line, "qemu-img create "):
			create = line
		case strings.HasPrefix(line, "qemu-system-x86_64 "):
			system = line
		}
	}
	if create == "" || !strings.Contains(system, "-drive file="+filepath.Join(dir, "vm.qcow2")+",format=qcow2") {
		t.Fatalf("boot-args printed:\n%s", out)
	}
	qemu(t, nil, "sh", "-c", create)
	if got := qemu(t, nil, "qemu-img", "compare", "-F", "qcow2", filepath.Join(dir, "vm.qcow2"), w.disk); !strings.Contains(got, "identical") {
		t.Fatalf("compare: %s", got)
	}
	// The overlay records the curl driver's settings the boot-like benchmark measured.
	if got, want := recordedReadahead(t, filepath.Join(dir, "vm.qcow2")), benchReadahead(t); got != want {
		t.Errorf("the overlay's backing file has readahead %q, scripts/bootbench.sh measures %q", got, want)
	}
	for _, c := range []struct {
		env  []string
		args []string
		want string
	}{
		{append(slices.Clone(env), "OS_PASSWORD=wrong"), []string{"boot-args", "golden"}, "sign in"},
		{env, []string{"boot-args", "nothing-here"}, `no image with id or name "nothing-here"`},
		{env, []string{"boot-args"}, "one IMAGE"},
	} {
		out, err := runTool(t, testenv.Binary(t), c.env, c.args...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%v: %v\n%s\nwant %q", c.args, err, out, c.want)
		}
	}
}

// recordedReadahead is the file.readahead of the json: backing file overlay records ("" when
// it has none, which is qemu's default of 256 KiB).
func recordedReadahead(t *testing.T, overlay string) string {
	t.Helper()
	var info struct {
		Backing string `json:"backing-filename"`
	}
	if err := json.Unmarshal([]byte(qemu(t, nil, "qemu-img", "info", "-U", "--output=json", overlay)), &info); err != nil {
		t.Fatalf("qemu-img info %s: %v", overlay, err)
	}
	var opts map[string]any
	if err := json.Unmarshal([]byte(strings.TrimPrefix(info.Backing, "json:")), &opts); err != nil {
		t.Fatalf("backing file %q: %v", info.Backing, err)
	}
	if v, ok := opts["file.readahead"]; ok {
		return fmt.Sprint(v)
	}
	return ""
}

// benchReadahead is the file.readahead scripts/bootbench.sh gives qemu's curl driver.
func benchReadahead(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	script, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "scripts", "bootbench.sh"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`file\.readahead\\":(\d+)`).FindSubmatch(script)
	if m == nil {
		t.Fatal("scripts/bootbench.sh sets no file.readahead")
	}
	return string(m[1])
}
