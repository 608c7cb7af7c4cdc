package dashboard_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/xloud/xloud-image/internal/testenv"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "also write the main pages' screenshots to docs/ for the README")

// site is a live server with the users of the browser tests: alice (member of alpha), bob
// (member of beta), dave (member of gamma) and the bootstrap admin.
type site struct {
	srv                    *testenv.Server
	base                   string
	alpha, beta, gamma     string
	shots                  string // where screenshots go
	browser                context.Context
	alice, bob, dave, root context.Context
}

const adminPassword = "admin-pw-1"

func startSite(t *testing.T) *site {
	t.Helper()
	// web-download may fetch from this test's loopback web server.
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--auth", "embedded", "--admin-password", adminPassword,
		"--web-download-allowed-hosts", "127.0.0.1", "--web-download-ports", ""}})
	s := &site{srv: srv, base: "http://" + srv.APIAddr, shots: filepath.Join(t.TempDir(), "screenshots")}
	if err := os.MkdirAll(s.shots, 0o755); err != nil {
		t.Fatal(err)
	}
	id := testenv.AdminIdentity(t, s.base, nil, adminPassword)
	s.alpha, s.beta, s.gamma = id.Project(t, "alpha"), id.Project(t, "beta"), id.Project(t, "gamma")
	id.User(t, s.alpha, "alice", "alice-pw", "member")
	id.User(t, s.beta, "bob", "bob-pw", "member")
	id.User(t, s.gamma, "dave", "dave-pw", "member")
	id.User(t, s.alpha, "rita", "rita-pw", "reader")
	chromium := testenv.RequireTool(t, "chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.WindowSize(1400, 1000), chromedp.Flag("disable-gpu", true))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	s.browser = browser
	// Each user has a browser context of their own: cookies apart, as separate browsers.
	s.alice, s.bob, s.dave, s.root = s.tab(t), s.tab(t), s.tab(t), s.tab(t)
	return s
}

func (s *site) tab(t *testing.T) context.Context {
	ctx, cancel := chromedp.NewContext(s.browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	// The first run opens the tab for the life of its context: this one, without a deadline.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	return ctx
}

// run runs actions with a time limit, failing the test with what was being done.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(c, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// value runs one action that returns a value, with a time limit.
func value[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// eval runs a script for its effect.
func eval(js string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[*runtime.RemoteObject](js)(ctx, t)
		return err
	})
}

func (s *site) signIn(t *testing.T, ctx context.Context, user, password, project string) {
	t.Helper()
	run(t, ctx, "sign in as "+user,
		chromedp.Navigate(s.base+"/dashboard/login"),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.SendKeys(chromedp.CSS("#project"), project),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#whoami")),
	)
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	run(t, ctx, "wait for "+sel, chromedp.WaitReady(chromedp.CSS(sel)))
	return strings.TrimSpace(value(t, ctx, "read "+sel, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector(%q).innerText`, sel))))
}

// waitText waits until the element sel shows want: after a form's POST, the page that
// follows (the old page may still be there when the click returns).
func waitText(t *testing.T, ctx context.Context, sel, want string) {
	t.Helper()
	js := fmt.Sprintf(`(document.querySelector(%q) || {}).innerText || ""`, sel)
	var got string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		v, err := chromedp.Run(c, chromedp.Evaluate[string](js))
		cancel()
		if got = strings.TrimSpace(v); err == nil && got == want {
			return
		}
	}
	t.Fatalf("%s shows %q, want %q", sel, got, want)
}

// shot saves a full-page screenshot under the test's directory (and docs/ with
// -update-screenshots).
func (s *site) shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	buf := value(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(s.shots, name+".png"), buf, 0o644); err != nil {
		t.Fatal(err)
	}
	if *updateScreenshots {
		if err := os.WriteFile(filepath.Join("..", "docs", "dashboard-"+name+".png"), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// makeQcow2 makes a qcow2 of the given virtual size with a little data in it.
func makeQcow2(t *testing.T, virtual string) string {
	t.Helper()
	qemuImg := testenv.RequireTool(t, "qemu-img")
	path := filepath.Join(t.TempDir(), "cirros.qcow2")
	if out, err := exec.Command(qemuImg, "create", "-f", "qcow2", path, virtual).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v\n%s", err, out)
	}
	return path
}

// fetchStatus sends a same-origin request from the page and returns its status.
func fetchStatus(t *testing.T, ctx context.Context, method, path, body string) int {
	t.Helper()
	js := fmt.Sprintf(`fetch(%q, {method: %q, credentials: "same-origin", headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: %q}).then(r => r.status)`, path, method, body)
	return value(t, ctx, method+" "+path, chromedp.Evaluate[int](js, chromedp.EvalAwaitPromise))
}

var idRE = regexp.MustCompile(`/dashboard/images/([0-9a-f-]{36})$`)

// TestBrowserFlow drives the dashboard in headless Chromium through an image's life: sign
// in, upload with the progress bar, share, accept, edit a property through the metadefs
// editor, deactivate as admin, delete; and the refusals: a wrong password, a non-member, a
// member making an image public, a POST without CSRF token.
func TestBrowserFlow(t *testing.T) {
	s := startSite(t)
	disk := makeQcow2(t, "64M")
	st, err := os.Stat(disk)
	if err != nil {
		t.Fatal(err)
	}

	// A wrong password and an unknown user get the same message.
	for _, u := range []string{"dave", "nobody"} {
		run(t, s.dave, "wrong password",
			chromedp.Navigate(s.base+"/dashboard/login"),
			chromedp.WaitReady(chromedp.CSS("#username")), eval(`document.getElementById("username").value = "x"`), chromedp.Clear(chromedp.CSS("#username")),
			chromedp.SendKeys(chromedp.CSS("#username"), u),
			chromedp.SendKeys(chromedp.CSS("#password"), "not-the-password"),
			chromedp.Click(chromedp.CSS("#signin")),
			chromedp.WaitVisible(chromedp.CSS("#login-error")))
		if got := text(t, s.dave, "#login-error"); got != "The user name, password or project is not right." {
			t.Fatalf("wrong password for %s: %q", u, got)
		}
	}
	s.shot(t, s.dave, "login")

	// alice uploads a qcow2; the progress bar reaches 100%.
	s.signIn(t, s.alice, "alice", "alice-pw", "alpha")
	run(t, s.alice, "create and upload",
		chromedp.Navigate(s.base+"/dashboard/images/new"),
		chromedp.WaitVisible(chromedp.CSS("#n-name")),
		chromedp.SendKeys(chromedp.CSS("#n-name"), "cirros"),
		chromedp.SetUploadFiles(chromedp.CSS("#n-file"), []string{disk}),
		chromedp.Click(chromedp.CSS("#n-create")),
		chromedp.WaitVisible(chromedp.CSS("#upload-done")),
	)
	progress := value(t, s.alice, "progress", chromedp.Evaluate[int](`document.getElementById("upload-progress").value`))
	if pct := text(t, s.alice, "#upload-percent"); progress != 100 || pct != "100%" {
		t.Fatalf("progress bar at the end: value %d, text %q", progress, pct)
	}
	s.shot(t, s.alice, "upload")
	uploaded := value(t, s.alice, "link", chromedp.Evaluate[string](`document.getElementById("upload-done").href`))

	// A file that is not the declared format is refused by the Image API, and the page says
	// why.
	notQcow2 := filepath.Join(t.TempDir(), "plain.img")
	if err := os.WriteFile(notQcow2, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, s.alice, "upload a raw file as qcow2",
		chromedp.Navigate(s.base+"/dashboard/images/new"),
		chromedp.SendKeys(chromedp.CSS("#n-name"), "not-qcow2"),
		chromedp.SetUploadFiles(chromedp.CSS("#n-file"), []string{notQcow2}),
		chromedp.Click(chromedp.CSS("#n-create")),
		chromedp.WaitVisible(chromedp.CSS("#upload-error")))
	if got := text(t, s.alice, "#upload-error"); !strings.Contains(got, "disk_format qcow2, data is raw") || strings.Contains(got, "<br") {
		t.Fatalf("a raw file declared qcow2: %q", got)
	}
	s.shot(t, s.alice, "upload-refused")
	// Created from a URL (web-download), the image becomes active in the background.
	web := httptest.NewServer(http.FileServer(http.Dir(filepath.Dir(disk))))
	defer web.Close()
	run(t, s.alice, "create from a URL",
		chromedp.Navigate(s.base+"/dashboard/images/new"),
		chromedp.SendKeys(chromedp.CSS("#n-name"), "from-url"),
		chromedp.Click(chromedp.CSS("#n-method-web")),
		chromedp.SendKeys(chromedp.CSS("#n-url"), web.URL+"/"+filepath.Base(disk)),
		chromedp.Click(chromedp.CSS("#n-create")),
		chromedp.WaitVisible(chromedp.CSS("#image-status")))
	for deadline := time.Now().Add(20 * time.Second); text(t, s.alice, "#image-status") != "active"; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("web-download image: %s", text(t, s.alice, "#image-status"))
		}
		run(t, s.alice, "reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#image-status")))
	}
	run(t, s.alice, "open the image", chromedp.Navigate(uploaded), chromedp.WaitVisible(chromedp.CSS("#image-status")))
	page := value(t, s.alice, "location", chromedp.Location())
	m := idRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("image page at %s", page)
	}
	id := m[1]
	imagePage := s.base + "/dashboard/images/" + id
	if got := text(t, s.alice, "#image-status"); got != "active" {
		t.Fatalf("status after upload: %q", got)
	}
	if got, want := text(t, s.alice, "#field-size"), fmt.Sprintf("%d bytes", st.Size()); !strings.HasPrefix(got, want) {
		t.Fatalf("size: %q, want %q…", got, want)
	}
	if got := text(t, s.alice, "#field-virtual_size"); !strings.HasPrefix(got, "67108864 bytes (64.0 MiB)") {
		t.Fatalf("virtual size: %q", got)
	}
	if got := text(t, s.alice, "#stores"); got != "default" {
		t.Fatalf("stores: %q", got)
	}
	if got := text(t, s.alice, "#cmd-oras"); !strings.Contains(got, "oras pull --plain-http "+s.srv.RegistryAddr+"/alpha/cirros:"+id) {
		t.Fatalf("oras command: %q", got)
	}
	if got := text(t, s.alice, "#cmd-kubevirt"); !strings.Contains(got, "image: "+s.srv.RegistryAddr+"/alpha/cirros:"+id) {
		t.Fatalf("containerDisk snippet: %q", got)
	}
	s.shot(t, s.alice, "image")

	// bob, not a member yet, cannot see the private image.
	s.signIn(t, s.bob, "bob", "bob-pw", "beta")
	run(t, s.bob, "open a private image", chromedp.Navigate(imagePage), chromedp.WaitVisible(chromedp.CSS("#error-message")))
	if got := text(t, s.bob, "#error-message"); got != "No such image, or you may not see it." {
		t.Fatalf("non-member on a private image: %q", got)
	}

	// alice, a member, cannot make it public: the catalog's refusal is shown.
	run(t, s.alice, "make public",
		chromedp.Navigate(imagePage), chromedp.WaitVisible(chromedp.CSS("#e-visibility")),
		chromedp.SetValue(chromedp.CSS("#e-visibility"), "public"),
		chromedp.Click(chromedp.CSS("#e-save")), chromedp.WaitVisible(chromedp.CSS("#error-message")))
	if got := text(t, s.alice, "h1"); got != "Forbidden" {
		t.Fatalf("member making an image public: page %q: %s", got, text(t, s.alice, "#error-message"))
	}

	// A POST without the CSRF token is refused (403) and changes nothing.
	if got := fetchStatus(t, s.alice, "POST", "/dashboard/images/"+id+"/delete", ""); got != 403 {
		t.Fatalf("POST without CSRF token: %d, want 403", got)
	}

	// alice shares it with beta.
	run(t, s.alice, "share",
		chromedp.Navigate(imagePage), chromedp.WaitVisible(chromedp.CSS("#e-visibility")),
		chromedp.SetValue(chromedp.CSS("#e-visibility"), "shared"),
		chromedp.Click(chromedp.CSS("#e-save")), chromedp.WaitVisible(chromedp.CSS("#m-project")),
		chromedp.SendKeys(chromedp.CSS("#m-project"), s.beta),
		chromedp.Click(chromedp.CSS("#m-add")), chromedp.WaitVisible(chromedp.CSS(".member-status")))
	if got := text(t, s.alice, ".member-status"); got != "pending" {
		t.Fatalf("member status after sharing: %q", got)
	}

	// alice sets a property through the metadata-definitions editor (an enum).
	run(t, s.alice, "metadefs editor",
		chromedp.SetValue(chromedp.CSS("#p-key"), "hw_disk_bus"),
		eval(`document.getElementById("p-key").dispatchEvent(new Event("change", {bubbles: true}))`),
		chromedp.WaitVisible(chromedp.CSS("#d-value")),
		chromedp.SetValue(chromedp.CSS("#d-value"), "virtio"),
		chromedp.Click(chromedp.CSS("#d-set")),
		chromedp.WaitVisible(chromedp.CSS("#prop-hw_disk_bus")))
	if got := text(t, s.alice, "#prop-hw_disk_bus"); got != "virtio" {
		t.Fatalf("hw_disk_bus after the editor: %q", got)
	}

	// bob accepts the share; the image is then in his "shared with me" tab.
	run(t, s.bob, "accept", chromedp.Navigate(imagePage), chromedp.WaitVisible(chromedp.CSS("#accept-share")),
		chromedp.Click(chromedp.CSS("#accept-share")))
	waitText(t, s.bob, "#my-share-status", "accepted")
	run(t, s.bob, "shared tab", chromedp.Navigate(s.base+"/dashboard/images?tab=shared"), chromedp.WaitVisible(chromedp.CSS("table.images")))
	if got := text(t, s.bob, "table.images tbody"); !strings.Contains(got, "cirros") {
		t.Fatalf("bob's shared tab: %q", got)
	}

	// The admin deactivates it; alice then sees it deactivated.
	s.signIn(t, s.root, "admin", adminPassword, "admin")
	run(t, s.root, "deactivate", chromedp.Navigate(imagePage), chromedp.WaitVisible(chromedp.CSS("#deactivate")),
		chromedp.Click(chromedp.CSS("#deactivate")), chromedp.WaitVisible(chromedp.CSS("#reactivate")))
	run(t, s.root, "all projects", chromedp.Navigate(s.base+"/dashboard/images?tab=all"), chromedp.WaitVisible(chromedp.CSS("table.images")))
	s.shot(t, s.root, "images")
	// A filter is applied in place (htmx); a bad one is refused in place, with why.
	run(t, s.root, "filter by name", chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "nothing-like-this\n"),
		chromedp.WaitVisible(chromedp.CSS("#no-images")))
	run(t, s.root, "bad size filter", chromedp.SendKeys(chromedp.CSS(`input[name="size_min"]`), "lots\n"),
		chromedp.WaitVisible(chromedp.CSS("#images #error-message")))
	if got := text(t, s.root, "#images #error-message"); !strings.Contains(got, "Minimum size") {
		t.Fatalf("a bad size filter: %q", got)
	}
	run(t, s.alice, "reload", chromedp.Navigate(imagePage), chromedp.WaitVisible(chromedp.CSS("#image-status")))
	if got := text(t, s.alice, "#image-status"); got != "deactivated" {
		t.Fatalf("status after deactivation: %q", got)
	}

	// Protected, it cannot be deleted: the reason is shown. Unprotected, it is deleted.
	run(t, s.alice, "protect", chromedp.Click(chromedp.CSS("#e-protected")), chromedp.Click(chromedp.CSS("#e-save")))
	waitText(t, s.alice, "#field-protected", "true")
	run(t, s.alice, "delete protected", eval(`window.confirm = () => true`),
		chromedp.Click(chromedp.CSS("#delete")), chromedp.WaitVisible(chromedp.CSS("#error-message")))
	if got := text(t, s.alice, "#error-message"); !strings.Contains(strings.ToLower(got), "protected") {
		t.Fatalf("deleting a protected image: %q", got)
	}
	run(t, s.alice, "unprotect and delete", chromedp.Navigate(imagePage), chromedp.WaitVisible(chromedp.CSS("#e-protected")),
		chromedp.Click(chromedp.CSS("#e-protected")), chromedp.Click(chromedp.CSS("#e-save")))
	waitText(t, s.alice, "#field-protected", "false")
	run(t, s.alice, "delete", eval(`window.confirm = () => true`),
		chromedp.Click(chromedp.CSS("#delete")), chromedp.WaitVisible(chromedp.CSS("table.images")))
	run(t, s.alice, "deleted image", chromedp.Navigate(imagePage), chromedp.WaitVisible(chromedp.CSS("#error-message")))
	if got := text(t, s.alice, "h1"); got != "Not Found" {
		t.Fatalf("a deleted image's page: %q", got)
	}

	// Sign-out revokes the session's token: the dashboard goes back to the sign-in page.
	run(t, s.bob, "sign out", chromedp.Navigate(s.base+"/dashboard/images"), chromedp.WaitVisible(chromedp.CSS("#signout")),
		chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.Navigate(s.base+"/dashboard/images"), chromedp.WaitVisible(chromedp.CSS("#username")))
	t.Logf("screenshots in %s", s.shots)
}
