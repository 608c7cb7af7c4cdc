package dashboard_test

import (
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xloud/xloud-image/internal/testenv"
)

// TestCachePage runs a server with an S3 store and --cache-dir: the admin queues an image
// from the cache page, sees it cached there (linked to its page, with hits, last access and
// size), removes it again; a member of the image's project is refused the page and its
// actions, and changes nothing.
func TestCachePage(t *testing.T) {
	s3 := testenv.StartS3(t)
	cacheDir := filepath.Join(t.TempDir(), "cache")
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--auth", "embedded", "--admin-password", adminPassword,
		"--store", "s3=" + s3.URL(s3.Bucket("images"), ""), "--cache-dir", cacheDir, "--cache-max-size", "100000000"}})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", srv.Log())
		}
	})
	base := "http://" + srv.APIAddr
	id := testenv.AdminIdentity(t, base, nil, adminPassword)
	alpha := id.Project(t, "alpha")
	id.User(t, alpha, "alice", "alice-pw", "member")
	tok, err := id.Login("alice", "alice-pw", "alpha")
	if err != nil {
		t.Fatal(err)
	}
	img := uploadImage(t, base, tok, map[string]any{"name": "cached", "disk_format": "qcow2", "container_format": "bare"})
	admin := signInHTTP(t, base, "admin", "admin", adminPassword, "admin")
	member := signInHTTP(t, base, "member", "alice", "alice-pw", "alpha")

	if st, page := get(t, admin.client, base+"/dashboard/cache"); st != 200 || !strings.Contains(page, `id="no-cached"`) {
		t.Fatalf("admin's cache page before queueing: %d\n%s", st, excerpt(page))
	}
	// The member may not queue: 403 and nothing is queued.
	if st, page := post(t, member.client, base+"/dashboard/cache/queue", url.Values{"csrf": {member.csrf}, "image": {img}}); st != 403 ||
		!strings.Contains(page, "You are not authorized to complete cache_image action.") {
		t.Fatalf("member queues: %d %s", st, excerpt(page))
	}
	if _, page := get(t, admin.client, base+"/dashboard/cache"); strings.Contains(page, img) {
		t.Fatalf("a refused queueing changed the cache:\n%s", page)
	}
	if st, page := post(t, admin.client, base+"/dashboard/cache/queue", url.Values{"csrf": {admin.csrf}, "image": {img}}); st != 303 {
		t.Fatalf("admin queues: %d %s", st, excerpt(page))
	}
	row := `<tr id="cached-` + img + `"><td><a href="/dashboard/images/` + img + `">` + img + `</a></td><td>0</td><td>`
	var page string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, page = get(t, admin.client, base+"/dashboard/cache")
		if strings.Contains(page, row) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cache page never shows %s cached:\n%s", img, page)
		}
	}
	if !strings.Contains(page, `id="nav-cache"`) {
		t.Errorf("no cache link for the admin")
	}
	// A download through the cache counts a hit, shown on the page.
	st, _ := get(t, member.client, base+"/dashboard/images/"+img)
	if st != 200 {
		t.Fatalf("member's image page: %d", st)
	}
	downloadImage(t, base, tok, img)
	if _, page = get(t, admin.client, base+"/dashboard/cache"); !strings.Contains(page, `<td>1</td>`) {
		t.Errorf("the download's hit is not on the page:\n%s", page)
	}

	// The member sees neither the link nor the page, and cannot remove the entry.
	if _, p := get(t, member.client, base+"/dashboard/images"); strings.Contains(p, `id="nav-cache"`) {
		t.Errorf("cache link offered to a member")
	}
	if st, p := get(t, member.client, base+"/dashboard/cache"); st != 403 || strings.Contains(p, img+"</a>") {
		t.Errorf("member's cache page: %d\n%s", st, excerpt(p))
	}
	if st, _ := post(t, member.client, base+"/dashboard/cache/"+img+"/delete", url.Values{"csrf": {member.csrf}}); st != 403 {
		t.Errorf("member removes: %d, want 403", st)
	}
	if _, page = get(t, admin.client, base+"/dashboard/cache"); !strings.Contains(page, `id="cached-`+img+`"`) {
		t.Fatalf("a refused removal changed the cache")
	}
	if st, _ := post(t, admin.client, base+"/dashboard/cache/"+img+"/delete", url.Values{"csrf": {admin.csrf}}); st != 303 {
		t.Fatalf("admin removes: %d", st)
	}
	if _, page = get(t, admin.client, base+"/dashboard/cache"); !strings.Contains(page, `id="no-cached"`) {
		t.Errorf("removed image still listed:\n%s", page)
	}
}

// downloadImage reads an image's data through the Image API with token.
func downloadImage(t *testing.T, base, token, id string) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/v2/images/"+id+"/file", nil)
	req.Header.Set("X-Auth-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("download %s: %v %d", id, err, resp.StatusCode)
	}
}
