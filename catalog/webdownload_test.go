package catalog_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/internal/testenv"
)

// TestWebDownloadRefusesInternalAddresses: with Glance's default filter, URIs naming
// loopback, link-local (the metadata service), private, unspecified, multicast, broadcast,
// CGNAT and reserved addresses, in any IPv6 spelling, are refused before anything starts;
// public ones pass.
func TestWebDownloadRefusesInternalAddresses(t *testing.T) {
	refused := []string{
		"http://127.0.0.1/", "http://127.9.9.9/", "http://[::1]/", "http://localhost/", "http://LOCALHOST./",
		"http://169.254.169.254/latest/meta-data/", "http://[fe80::1%25eth0]/",
		"http://10.0.0.1/", "http://172.16.0.1/", "http://192.168.1.1/", "http://[fc00::1]/", "http://[fd12:3456::1]/",
		"http://0.0.0.0/", "http://[::]/", "http://0.1.2.3/", "http://224.0.0.1/", "http://[ff02::1]/",
		"http://255.255.255.255/", "http://100.64.0.1/", "http://198.18.0.1/", "http://240.0.0.1/",
		"http://[::ffff:127.0.0.1]/", "http://[::ffff:169.254.169.254]/", "http://[::ffff:10.0.0.1]/",
		"http://[::127.0.0.1]/", "http://[64:ff9b::a9fe:a9fe]/", "http://[64:ff9b::7f00:1]/",
		"http://[64:ff9b:1::1]/", "http://[2002:7f00:1::]/", "http://[2001::1]/", "http://[fec0::1]/",
	}
	for _, uri := range refused {
		err := catalog.DefaultWebDownloader.Check(ctx, uri)
		if !errors.Is(err, catalog.ErrInvalid) || !strings.Contains(err.Error(), "does not pass filtering") {
			t.Errorf("%s: %v, want refused", uri, err)
		}
	}
	for _, uri := range []string{"http://93.184.216.34/", "https://[2606:4700::1111]/", "http://[64:ff9b::5db8:d822]/",
		"http://[2002:5db8:d822::1]/", "http://[::ffff:93.184.216.34]/"} {
		if err := catalog.DefaultWebDownloader.Check(ctx, uri); err != nil {
			t.Errorf("%s: %v, want allowed", uri, err)
		}
	}
}

// TestWebDownloadFilterLists: Glance's allowed and disallowed schemes, hosts and ports; an
// allowed list makes its disallowed list moot; host entries are names, addresses and CIDRs.
func TestWebDownloadFilterLists(t *testing.T) {
	cases := []struct {
		name string
		w    catalog.WebDownloader
		uri  string
		ok   bool
	}{
		{"allowed scheme", catalog.WebDownloader{AllowedSchemes: []string{"https"}}, "https://example.com/x", true},
		{"scheme not allowed", catalog.WebDownloader{AllowedSchemes: []string{"https"}}, "http://example.com/x", false},
		{"disallowed scheme", catalog.WebDownloader{DisallowedSchemes: []string{"http"}}, "http://example.com/x", false},
		{"never ftp", catalog.WebDownloader{DisallowedSchemes: []string{"http"}}, "ftp://example.com/x", false},
		{"disallowed port", catalog.WebDownloader{DisallowedPorts: []int{8080}}, "http://example.com:8080/x", false},
		{"other port", catalog.WebDownloader{DisallowedPorts: []int{8080}}, "http://example.com:8081/x", true},
		{"disallowed name", catalog.WebDownloader{DisallowedHosts: []string{"Example.COM"}}, "http://example.com./x", false},
		{"disallowed CIDR", catalog.WebDownloader{DisallowedHosts: []string{"93.184.0.0/16"}}, "http://93.184.216.34/x", false},
		{"disallowed mapped", catalog.WebDownloader{DisallowedHosts: []string{"93.184.216.34"}}, "http://[::ffff:93.184.216.34]/x", false},
		{"allowed name", catalog.WebDownloader{AllowedHosts: []string{"example.com"}}, "http://example.com/x", true},
		{"not the allowed name", catalog.WebDownloader{AllowedHosts: []string{"example.com"}}, "http://example.org/x", false},
		{"public IP outside the allowed names", catalog.WebDownloader{AllowedHosts: []string{"example.com"}}, "http://93.184.216.34/x", false},
		{"allowed over disallowed", catalog.WebDownloader{AllowedHosts: []string{"example.com"}, DisallowedHosts: []string{"example.com"}}, "http://example.com/x", true},
		{"allowed loopback", catalog.WebDownloader{AllowedHosts: []string{"127.0.0.1"}}, "http://127.0.0.1:9/x", true},
		{"allowed loopback, mapped", catalog.WebDownloader{AllowedHosts: []string{"127.0.0.1"}}, "http://[::ffff:127.0.0.1]:9/x", true},
		{"allowed private CIDR", catalog.WebDownloader{AllowedHosts: []string{"10.1.0.0/16"}}, "http://10.1.2.3/x", true},
		{"outside the allowed CIDR", catalog.WebDownloader{AllowedHosts: []string{"10.1.0.0/16"}}, "http://10.2.0.1/x", false},
		{"metadata not named", catalog.WebDownloader{AllowedHosts: []string{"127.0.0.1"}}, "http://169.254.169.254/x", false},
		{"allowed localhost by name", catalog.WebDownloader{AllowedHosts: []string{"localhost"}}, "http://localhost:9/x", true},
		{"credentials", catalog.WebDownloader{AllowedHosts: []string{"example.com"}}, "http://u:p@example.com/x", false},
	}
	for _, c := range cases {
		err := c.w.Check(ctx, c.uri)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, catalog.ErrInvalid)) {
			t.Errorf("%s: %s: %v", c.name, c.uri, err)
		}
	}
}

// webWorld is a catalog, an internal server that counts its requests (the target an attack
// would read), and an origin on another loopback address that redirects wherever
// ?to= says.
type webWorld struct {
	*world
	secret     []byte
	internal   string // base URL of the internal server, on 127.0.0.1
	origin     string // base URL of the origin, on 127.0.0.2
	secretHits atomic.Int32
}

func newWebWorld(t *testing.T) *webWorld {
	w := &webWorld{world: newWorld(t), secret: bytes.Repeat([]byte("internal secret "), 4096)}
	w.internal = testenv.ServeOn(t, "127.0.0.1:0", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.secretHits.Add(1)
		rw.Write(w.secret)
	})).URL
	w.origin = testenv.ServeOn(t, "127.0.0.2:0", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		to := r.URL.Query().Get("to")
		if to == "" {
			http.NotFound(rw, r)
			return
		}
		http.Redirect(rw, r, to, http.StatusFound)
	})).URL
	return w
}

// importWeb runs a web-download of uri into a new image and returns the image afterwards, the
// error Import gave (refused at once), and the error the background work gave.
func (w *webWorld) importWeb(t *testing.T, web *catalog.WebDownloader, uri string) (catalog.Image, error, error) {
	t.Helper()
	img := w.create(t, "member-a", "web", "raw")
	run, startErr := w.cat.Import(ctx, w.as["member-a"], img.ID, catalog.ImportRequest{Method: catalog.ImportWebDownload, URI: uri, Web: web})
	var runErr error
	if startErr == nil {
		runErr = run(ctx)
	}
	got, err := w.cat.Get(ctx, w.as["member-a"], img.ID)
	if err != nil {
		t.Fatal(err)
	}
	return got, startErr, runErr
}

// queuedEmpty fails unless img is back to queued with no data.
func queuedEmpty(t *testing.T, what string, img catalog.Image) {
	t.Helper()
	if img.Status != catalog.StatusQueued || img.Size != nil || img.Checksum != nil || img.DiskDigest != "" || img.Reference != "" {
		t.Fatalf("%s: image %+v, want queued with no data", what, img)
	}
}

func redirectTo(origin, target string) string {
	return origin + "/r?to=" + url.QueryEscape(target)
}

// TestWebDownloadInternalTargets: a download never reads an internal server unless an
// allowed host names it — not directly, not by a name that resolves to it, not through a
// redirect from an allowed origin, not by a DNS answer that changes after the check — and
// the image goes back to queued with no data.
func TestWebDownloadInternalTargets(t *testing.T) {
	w := newWebWorld(t)
	anyPort := &catalog.WebDownloader{}
	u, _ := url.Parse(w.internal)
	for _, uri := range []string{w.internal + "/disk", "http://localhost:" + u.Port() + "/disk", "http://[::ffff:127.0.0.1]:" + u.Port() + "/disk"} {
		img, startErr, _ := w.importWeb(t, anyPort, uri)
		if !errors.Is(startErr, catalog.ErrInvalid) {
			t.Fatalf("%s: import started (%v)", uri, startErr)
		}
		queuedEmpty(t, uri, img)
	}

	// The origin is allowed by the operator; where it redirects is not.
	originOnly := &catalog.WebDownloader{AllowedHosts: []string{"127.0.0.2"}}
	for _, target := range []string{w.internal + "/disk", "http://localhost:" + u.Port() + "/disk"} {
		img, startErr, runErr := w.importWeb(t, originOnly, redirectTo(w.origin, target))
		if startErr != nil || runErr == nil || !strings.Contains(runErr.Error(), "does not pass filtering") {
			t.Fatalf("redirect to %s: start %v, run %v", target, startErr, runErr)
		}
		queuedEmpty(t, "redirect to "+target, img)
	}
	// Nor on a port the filter does not allow.
	o, _ := url.Parse(w.origin)
	portOnly := &catalog.WebDownloader{AllowedHosts: []string{"127.0.0.0/8"}, Ports: []int{intPort(t, o.Port())}}
	img, startErr, runErr := w.importWeb(t, portOnly, redirectTo(w.origin, w.internal+"/disk"))
	if startErr != nil || runErr == nil || !strings.Contains(runErr.Error(), "port") {
		t.Fatalf("redirect to another port: start %v, run %v", startErr, runErr)
	}
	queuedEmpty(t, "redirect to another port", img)

	// DNS rebinding: the name resolves to a public address when checked (at Import and at
	// Fetch), to loopback when connected; the connection is refused.
	dns := testenv.StartDNS(t, func(name string, qtype uint16, n int) []netip.Addr {
		if name != "rebind.test" || qtype != 1 {
			return nil
		}
		if n <= 2 {
			return []netip.Addr{netip.MustParseAddr("93.184.216.34")}
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	})
	rebinding := &catalog.WebDownloader{Resolver: dns.Resolver}
	img, startErr, runErr = w.importWeb(t, rebinding, "http://rebind.test:"+u.Port()+"/disk")
	if startErr != nil || runErr == nil || !strings.Contains(runErr.Error(), "dial tcp 127.0.0.1:"+u.Port()+": web-download: address 127.0.0.1 is a loopback address") {
		t.Fatalf("rebinding: start %v, run %v", startErr, runErr)
	}
	if dns.Queries("rebind.test", 1) != 3 {
		t.Fatalf("rebinding: %d A queries, want the two checks' and the connection's", dns.Queries("rebind.test", 1))
	}
	queuedEmpty(t, "rebinding", img)

	// Redirects are bounded.
	loop := redirectTo(w.origin, redirectTo(w.origin, redirectTo(w.origin, redirectTo(w.origin, redirectTo(w.origin, redirectTo(w.origin, w.origin))))))
	img, startErr, runErr = w.importWeb(t, originOnly, loop)
	if startErr != nil || runErr == nil || !strings.Contains(runErr.Error(), "redirects") {
		t.Fatalf("six redirects: start %v, run %v", startErr, runErr)
	}
	queuedEmpty(t, "six redirects", img)

	if n := w.secretHits.Load(); n != 0 {
		t.Fatalf("the internal server was reached %d times", n)
	}
}

// TestWebDownloadAllowedInternal: an operator's allowed host entry naming an internal
// address (an address, a CIDR, or the host name) lets the download through, redirects
// included, and the image becomes active with the bytes.
func TestWebDownloadAllowedInternal(t *testing.T) {
	w := newWebWorld(t)
	u, _ := url.Parse(w.internal)
	for _, c := range []struct {
		hosts []string
		uri   string
	}{
		{[]string{"127.0.0.1"}, w.internal + "/disk"},
		{[]string{"127.0.0.0/8"}, redirectTo(w.origin, w.internal+"/disk")},
		{[]string{"localhost"}, "http://localhost:" + u.Port() + "/disk"},
	} {
		img, startErr, runErr := w.importWeb(t, &catalog.WebDownloader{AllowedHosts: c.hosts}, c.uri)
		if startErr != nil || runErr != nil || img.Status != catalog.StatusActive || *img.Size != int64(len(w.secret)) {
			t.Fatalf("%v %s: start %v, run %v, image %+v", c.hosts, c.uri, startErr, runErr, img)
		}
		_, rd, _, err := w.cat.Open(ctx, w.as["member-a"], img.ID)
		if err != nil {
			t.Fatal(err)
		}
		back, _ := io.ReadAll(rd)
		rd.Close()
		if !bytes.Equal(back, w.secret) {
			t.Fatalf("%v: data differs", c.hosts)
		}
	}
}

// TestWebDownloadRedactsCredentials: user information and queries in the URI, or in a
// redirect's Location, appear in no error.
func TestWebDownloadRedactsCredentials(t *testing.T) {
	w := newWebWorld(t)
	web := &catalog.WebDownloader{AllowedHosts: []string{"127.0.0.2"}}
	for _, uri := range []string{
		redirectTo(w.origin, "http://alice:hunter2@127.0.0.2:1/disk"),
		redirectTo(w.origin, "http://alice:hunter2@"+strings.TrimPrefix(w.internal, "http://")+"/disk?sig=hunter2"),
		w.origin + "/missing?to=&token=hunter2",
	} {
		_, startErr, runErr := w.importWeb(t, web, uri)
		if startErr != nil || runErr == nil {
			t.Fatalf("%s: start %v, run %v", uri, startErr, runErr)
		}
		if strings.Contains(runErr.Error(), "hunter2") || strings.Contains(runErr.Error(), "alice") {
			t.Fatalf("credentials in the error: %v", runErr)
		}
	}
	_, startErr, _ := w.importWeb(t, web, "http://alice:hunter2@127.0.0.2/disk")
	if !errors.Is(startErr, catalog.ErrInvalid) || strings.Contains(startErr.Error(), "hunter2") || strings.Contains(startErr.Error(), "alice") {
		t.Fatalf("credentials in the URI: %v", startErr)
	}
	if got := catalog.RedactURL("https://alice:hunter2@example.com/a?X-Amz-Signature=hunter2#frag"); got != "https://REDACTED@example.com/a?REDACTED" {
		t.Fatalf("RedactURL: %s", got)
	}
}

func intPort(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
