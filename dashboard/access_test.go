package dashboard_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/xloud/xloud-image/internal/testenv"
)

// caller is one kind of dashboard user, with its own cookies.
type caller struct {
	name   string
	client *http.Client
	csrf   string
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func newClient(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func post(t *testing.T, c *http.Client, u string, form url.Values) (int, string) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// signInHTTP signs in through the sign-in form and returns the caller with the CSRF token
// of its session's pages.
func signInHTTP(t *testing.T, base, name, user, password, project string) caller {
	t.Helper()
	c := caller{name: name, client: newClient(t)}
	if user == "" {
		return c
	}
	_, page := get(t, c.client, base+"/dashboard/login")
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the sign-in page")
	}
	st, _ := post(t, c.client, base+"/dashboard/login", url.Values{"csrf": {m[1]}, "username": {user}, "password": {password}, "project": {project}})
	if st != http.StatusSeeOther {
		t.Fatalf("sign in %s: %d", user, st)
	}
	_, page = get(t, c.client, base+"/dashboard/images")
	if m = csrfRE.FindStringSubmatch(page); m == nil {
		t.Fatalf("sign in %s: no CSRF token on the images page", user)
	}
	c.csrf = m[1]
	return c
}

// uploadImage makes an active qcow2 image through the Image API with a token of user.
func uploadImage(t *testing.T, base, token string, body map[string]any) string {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", base+"/v2/images", bytes.NewReader(b))
	req.Header.Set("X-Auth-Token", token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create image: %v %v", err, resp)
	}
	var img struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&img)
	resp.Body.Close()
	qemuImg := testenv.RequireTool(t, "qemu-img")
	path := filepath.Join(t.TempDir(), "disk.qcow2")
	if out, err := exec.Command(qemuImg, "create", "-f", "qcow2", path, "16M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v %s", err, out)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest("PUT", base+"/v2/images/"+img.ID+"/file", bytes.NewReader(data))
	req.Header.Set("X-Auth-Token", token)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("upload: %v %v", err, resp)
	}
	resp.Body.Close()
	return img.ID
}

// TestAccessMatrix asks every dashboard route as anonymous, a reader and a member of the
// image's project, a member of another project and an admin, and checks the exact status:
// what the dashboard allows is what the catalog (and so auth's policy) allows. The image is
// alpha's, shared (with no members) and protected, so that no call deletes it.
func TestAccessMatrix(t *testing.T) {
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--auth", "embedded", "--admin-password", adminPassword}})
	base := "http://" + srv.APIAddr
	id := testenv.AdminIdentity(t, base, nil, adminPassword)
	alpha, beta := id.Project(t, "alpha"), id.Project(t, "beta")
	gamma := id.Project(t, "gamma")
	id.User(t, alpha, "alice", "alice-pw", "member")
	id.User(t, alpha, "rita", "rita-pw", "reader")
	id.User(t, beta, "bob", "bob-pw", "member")
	tok, err := id.Login("alice", "alice-pw", "alpha")
	if err != nil {
		t.Fatal(err)
	}
	img := uploadImage(t, base, tok, map[string]any{"name": "golden", "disk_format": "qcow2", "container_format": "bare",
		"visibility": "shared", "protected": true})

	callers := []caller{
		signInHTTP(t, base, "anonymous", "", "", ""),
		signInHTTP(t, base, "reader", "rita", "rita-pw", "alpha"),
		signInHTTP(t, base, "other", "bob", "bob-pw", "beta"),
		signInHTTP(t, base, "member", "alice", "alice-pw", "alpha"),
		signInHTTP(t, base, "admin", "admin", adminPassword, "admin"),
	}
	snap := uploadImage(t, base, tok, map[string]any{"name": "golden-snap", "disk_format": "qcow2", "container_format": "bare",
		"image_type": "snapshot", "base_image_ref": img})
	if _, page := get(t, callers[3].client, base+"/dashboard/images/"+img); !strings.Contains(page, `href="/dashboard/images/`+snap+`"`) {
		t.Errorf("the image page does not list its snapshot %s", snap)
	}
	// With unified limits on, the images page shows the usage GET /v2/info/usage reports.
	if err := id.RegisterLimits("glance", "RegionOne", map[string]int{"image_size_total": 10000, "image_stage_total": 10000,
		"image_count_total": 100, "image_count_uploading": 100}); err != nil {
		t.Fatal(err)
	}
	if _, page := get(t, callers[3].client, base+"/dashboard/images"); !strings.Contains(page, `<meter id="quota-image_count_total" min="0" max="100" value="2"`) {
		t.Errorf("no quota bar of 2 images of 100 on the member's page:\n%s", page)
	}
	im := "/dashboard/images/" + img
	type route struct {
		method, path string
		form         url.Values
		// want is the status for anonymous, reader, other, member, admin.
		want [5]int
	}
	const (
		ok, see, bad, unauth, forbidden, missing = 200, 303, 400, 401, 403, 404
	)
	routes := []route{
		{"GET", "/dashboard/", nil, [5]int{see, see, see, see, see}},
		{"GET", "/dashboard/login", nil, [5]int{ok, ok, ok, ok, ok}},
		{"GET", "/dashboard/static/htmx.min.js", nil, [5]int{ok, ok, ok, ok, ok}},
		{"GET", "/dashboard/images", nil, [5]int{see, ok, ok, ok, ok}},
		{"GET", "/dashboard/images?tab=all", nil, [5]int{see, ok, ok, ok, ok}},
		{"GET", "/dashboard/images?tab=nope", nil, [5]int{see, bad, bad, bad, bad}},
		{"GET", "/dashboard/images/new", nil, [5]int{see, ok, ok, ok, ok}},
		{"GET", im, nil, [5]int{see, ok, missing, ok, ok}},
		{"GET", im + "/property-input?key=hw_disk_bus", nil, [5]int{see, ok, missing, ok, ok}},
		{"GET", "/dashboard/signing", nil, [5]int{see, ok, ok, ok, ok}},
		{"GET", "/dashboard/signing?project=" + alpha, nil, [5]int{see, ok, forbidden, ok, ok}},
		{"POST", "/dashboard/images", url.Values{"name": {"new"}, "disk_format": {"qcow2"}, "method": {"upload"}}, [5]int{unauth, forbidden, ok, ok, ok}},
		{"POST", "/dashboard/images", url.Values{"name": {"webdl"}, "disk_format": {"qcow2"}, "method": {"web-download"}, "url": {"ftp://x/y"}},
			[5]int{unauth, bad, bad, bad, bad}},
		// The import filter refuses loopback addresses: the image made for it is deleted again.
		{"POST", "/dashboard/images", url.Values{"name": {"webdl"}, "disk_format": {"qcow2"}, "method": {"web-download"}, "url": {"http://127.0.0.1:9/disk.qcow2"}},
			[5]int{unauth, forbidden, bad, bad, bad}},
		{"POST", "/dashboard/images", url.Values{"name": {"bad"}, "disk_format": {"floppy"}, "method": {"upload"}}, [5]int{unauth, bad, bad, bad, bad}},
		{"POST", im + "/edit", url.Values{"name": {"golden"}, "min_disk": {"1"}, "min_ram": {"0"}, "visibility": {"shared"}, "protected": {"true"}},
			[5]int{unauth, forbidden, missing, see, see}},
		{"POST", im + "/edit", url.Values{"name": {"golden"}, "min_disk": {"-1"}, "min_ram": {"0"}, "visibility": {"shared"}, "protected": {"true"}},
			[5]int{unauth, bad, missing, bad, bad}},
		{"POST", im + "/edit", url.Values{"name": {"golden"}, "min_disk": {"1"}, "min_ram": {"0"}, "visibility": {"public"}, "protected": {"true"}},
			[5]int{unauth, forbidden, missing, forbidden, see}},
		{"POST", im + "/edit", url.Values{"name": {"golden"}, "min_disk": {"1"}, "min_ram": {"0"}, "visibility": {"shared"}, "protected": {"true"}},
			[5]int{unauth, forbidden, missing, see, see}},
		{"POST", im + "/properties", url.Values{"key": {"hw_disk_bus"}, "value": {"floppy"}}, [5]int{unauth, bad, missing, bad, bad}},
		{"POST", im + "/properties", url.Values{"custom_key": {"x_custom"}, "value": {"1"}}, [5]int{unauth, forbidden, missing, see, see}},
		{"POST", im + "/properties/remove", url.Values{"key": {"x_custom"}}, [5]int{unauth, forbidden, missing, see, see}},
		{"POST", im + "/members", url.Values{"member": {gamma}}, [5]int{unauth, forbidden, missing, see, see}},
		{"POST", im + "/members/remove", url.Values{"member": {gamma}}, [5]int{unauth, forbidden, missing, see, see}},
		{"POST", im + "/members/status", url.Values{"status": {"accepted"}}, [5]int{unauth, missing, missing, missing, missing}},
		// Glance's default policy lets the owner project's members deactivate, as admins.
		{"POST", im + "/deactivate", nil, [5]int{unauth, forbidden, missing, see, see}},
		{"POST", im + "/reactivate", nil, [5]int{unauth, forbidden, missing, see, see}},
		{"POST", im + "/delete", nil, [5]int{unauth, forbidden, missing, forbidden, forbidden}},
		// The node's image cache: admins only (the policy's cache_* rules); this node has none,
		// which the catalog says with 404 for a change and the page says in words.
		{"GET", "/dashboard/cache", nil, [5]int{see, forbidden, forbidden, forbidden, ok}},
		{"POST", "/dashboard/cache/queue", url.Values{"image": {img}}, [5]int{unauth, forbidden, missing, forbidden, missing}},
		{"POST", "/dashboard/cache/queue", url.Values{"image": {""}}, [5]int{unauth, bad, bad, bad, bad}},
		{"POST", "/dashboard/cache/queue", url.Values{"image": {"00000000-0000-0000-0000-000000000000"}}, [5]int{unauth, missing, missing, missing, missing}},
		{"POST", "/dashboard/cache/" + img + "/delete", nil, [5]int{unauth, forbidden, missing, forbidden, missing}},
		{"POST", "/dashboard/project", url.Values{"project": {alpha}}, [5]int{unauth, see, bad, see, bad}},
		{"POST", "/dashboard/logout", nil, [5]int{unauth, see, see, see, see}},
	}
	// Only the admin is offered the cache link; on this node its page says there is no cache.
	for _, c := range callers[1:] {
		_, page := get(t, c.client, base+"/dashboard/images")
		if has := strings.Contains(page, `id="nav-cache"`); has != (c.name == "admin") {
			t.Errorf("%s: cache link shown %v", c.name, has)
		}
	}
	if _, page := get(t, callers[4].client, base+"/dashboard/cache"); !strings.Contains(page, "This node has no image cache") {
		t.Errorf("the admin's cache page of a node without a cache:\n%s", excerpt(page))
	}
	for i, c := range callers {
		for _, r := range routes {
			var st int
			var body string
			if r.method == "GET" {
				st, body = get(t, c.client, base+r.path)
			} else {
				form := url.Values{"csrf": {c.csrf}}
				for k, v := range r.form {
					form[k] = v
				}
				if c.csrf != "" && r.path != "/dashboard/logout" {
					// Without the CSRF token, every POST is refused and changes nothing.
					bare := url.Values{}
					for k, v := range r.form {
						bare[k] = v
					}
					if st, _ := post(t, c.client, base+r.path, bare); st != forbidden {
						t.Errorf("%s %s %s without CSRF token: %d, want 403", c.name, r.method, r.path, st)
					}
				}
				st, body = post(t, c.client, base+r.path, form)
			}
			if st != r.want[i] {
				t.Errorf("%s %s %s: %d, want %d\n%s", c.name, r.method, r.path, st, r.want[i], excerpt(body))
			}
		}
	}
	// The sign-in form needs its CSRF token too.
	anon := newClient(t)
	get(t, anon, base+"/dashboard/login")
	if st, _ := post(t, anon, base+"/dashboard/login", url.Values{"username": {"alice"}, "password": {"alice-pw"}}); st != forbidden {
		t.Errorf("sign-in without CSRF token: %d, want 403", st)
	}
	// No refused web-download left an image behind.
	admin := signInHTTP(t, base, "admin", "admin", adminPassword, "admin")
	if _, page := get(t, admin.client, base+"/dashboard/images?tab=all&name=webdl"); !strings.Contains(page, `id="no-images"`) {
		t.Errorf("a refused web-download left an image:\n%s", page)
	}
	// The visibility filter narrows the all-projects tab through the catalog's listing.
	if _, page := get(t, admin.client, base+"/dashboard/images?tab=all&visibility=shared&name=golden"); !strings.Contains(page, ">golden<") {
		t.Errorf("all projects, shared, named golden: the shared image is missing:\n%s", excerpt(page))
	}
	if _, page := get(t, admin.client, base+"/dashboard/images?tab=all&visibility=private&name=golden"); !strings.Contains(page, `id="no-images"`) {
		t.Errorf("all projects, private, named golden: the shared image is listed:\n%s", excerpt(page))
	}
	// Signed out, the session is gone and its token revoked.
	for _, c := range callers[1:] {
		if st, _ := get(t, c.client, base+"/dashboard/images"); st != see {
			t.Errorf("%s after sign-out: %d, want 303 to the sign-in page", c.name, st)
		}
	}
}

var messageRE = regexp.MustCompile(`id="error-message">([^<]*)<`)

func excerpt(body string) string {
	if m := messageRE.FindStringSubmatch(body); m != nil {
		return "message: " + m[1]
	}
	return fmt.Sprintf("%.200s", strings.TrimSpace(body))
}
