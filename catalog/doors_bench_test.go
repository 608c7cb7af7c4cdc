package catalog_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/dashboard"
	"github.com/xloud/xloud-image/imageapi"
)

// BenchmarkDashboardImagesPage renders the dashboard's images page ("My project", 25 of
// 100,000 images) and makes the Image API list call behind it (the same catalog.List with
// the same filter), interleaved in one run, each over HTTP with its own credentials: a
// session cookie, an X-Auth-Token. It reports both times per page and their ratio (`make
// bench` runs it; the goal is a ratio under 2).
func BenchmarkDashboardImagesPage(b *testing.B) {
	const n = 100000
	w := newWorld(&testing.T{})
	owner := w.project["a"]
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	imgs := make([]catalog.Image, n)
	for i := range imgs {
		name, size, virt, format := fmt.Sprintf("image-%06d", i), int64(i)*4096, int64(i)*65536, "qcow2"
		imgs[i] = catalog.Image{ID: uuid.NewString(), Name: &name, Owner: owner, Status: catalog.StatusActive,
			Visibility: catalog.VisibilityPrivate, Tags: []string{}, Properties: map[string]string{catalog.PropSignatureStatus: "unsigned"},
			DiskFormat: &format, Size: &size, VirtualSize: &virt,
			CreatedAt: start.Add(time.Duration(i) * time.Second), UpdatedAt: start}
	}
	if err := w.cat.BulkInsert(ctx, imgs); err != nil {
		b.Fatal(err)
	}
	imgs = nil
	authn := &auth.Authenticator{Passwords: w.id, Tokens: w.id}
	api := httptest.NewServer(imageapi.New(w.cat, authn, imageapi.Options{}))
	defer api.Close()
	d, err := dashboard.New(dashboard.Options{Catalog: w.cat, SignIn: auth.IdentitySignIn{Identity: w.id},
		Tokens: w.id, Meta: w.store.Meta()})
	if err != nil {
		b.Fatal(err)
	}
	dash := httptest.NewServer(d)
	defer dash.Close()

	user, _ := w.id.UserByName(ctx, "member-a")
	_, token, err := w.id.IssueToken(ctx, user, owner, []string{"password"}, time.Time{})
	if err != nil {
		b.Fatal(err)
	}
	apiURL := api.URL + "/v2/images?visibility=all&owner=" + owner + "&limit=25"
	apiReq := func() string {
		req, _ := http.NewRequest("GET", apiURL, nil)
		req.Header.Set("X-Auth-Token", token)
		return fetch(b, http.DefaultClient, req)
	}
	browser := signedIn(b, dash.URL, "member-a", "pw", "a")
	dashReq := func() string {
		req, _ := http.NewRequest("GET", dash.URL+"/dashboard/images?tab=project", nil)
		return fetch(b, browser, req)
	}
	// Both show the same 25 images: the newest.
	if a, p := apiReq(), dashReq(); !strings.Contains(a, "image-099999") || !strings.Contains(p, "image-099999") ||
		strings.Count(p, `href="/dashboard/images/`)-1 != 25 {
		b.Fatalf("the pages differ from the expected 25 newest images")
	}
	runtime.GC()
	var tAPI, tDash time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		apiReq()
		t1 := time.Now()
		dashReq()
		tAPI, tDash = tAPI+t1.Sub(t0), tDash+time.Since(t1)
	}
	b.ReportMetric(float64(tAPI.Microseconds())/float64(b.N), "µs/api-list")
	b.ReportMetric(float64(tDash.Microseconds())/float64(b.N), "µs/dashboard-page")
	b.ReportMetric(float64(tDash)/float64(tAPI), "ratio")
}

// fetch sends req and returns the body of a 200.
func fetch(b *testing.B, c *http.Client, req *http.Request) string {
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("%s: %d %s", req.URL, resp.StatusCode, body)
	}
	return string(body)
}

var benchCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signedIn is a client with a dashboard session, signed in through the form.
func signedIn(b *testing.B, base, user, password, project string) *http.Client {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	req, _ := http.NewRequest("GET", base+"/dashboard/login", nil)
	m := benchCSRF.FindStringSubmatch(fetch(b, c, req))
	if m == nil {
		b.Fatal("no CSRF token on the sign-in page")
	}
	resp, err := c.PostForm(base+"/dashboard/login", url.Values{"csrf": {m[1]}, "username": {user}, "password": {password}, "project": {project}})
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/dashboard/images" {
		b.Fatalf("sign in: ended at %s (%d)", resp.Request.URL, resp.StatusCode)
	}
	return c
}
