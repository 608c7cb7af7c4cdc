package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/xloud/xloud-image/internal/testenv"
)

const adminBasic = "Basic YWRtaW46YWRtaW4tc2VjcmV0" // admin:admin-secret

// metricValue is the value of series (name and labels as exposed) in a scrape, if present.
func metricValue(scrape, series string) (float64, bool) {
	for line := range strings.Lines(scrape) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

func scrape(t *testing.T, c *client, hdr ...string) string {
	t.Helper()
	resp, body, err := c.do("GET", "/metrics", nil, hdr...)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape: %v %v %s", resp, err, body)
	}
	return string(body)
}

func wantMetric(t *testing.T, scrape, series string, want float64) {
	t.Helper()
	if got, ok := metricValue(scrape, series); !ok || got != want {
		t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
	}
}

// TestDomainMetrics: a scrape shows images by status, bytes stored, uploads in flight,
// refusals by reason, and garbage collections with the bytes they freed, as they change.
func TestDomainMetrics(t *testing.T) {
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--auth", "embedded", "--admin-password", "admin-secret"}})
	reg := &client{t: t, base: "http://" + srv.RegistryAddr}
	api := &client{t: t, base: "http://" + srv.APIAddr}
	blob := bytes.Repeat([]byte("blob "), 1000)
	d := fmt.Sprintf("sha256:%x", sha256.Sum256(blob))
	steps := []struct {
		c                  *client
		method, path, body string
		want               int
	}{
		{reg, "POST", "/v2/admin/tmp/blobs/uploads/?digest=" + d, string(blob), 201},
		{reg, "POST", "/v2/admin/tmp/blobs/uploads/", "", 202},
		{reg, "GET", "/v2/admin/tmp/manifests/nope", "", 404},
		{reg, "GET", "/v2/admin/tmp/manifests/nope", "", 404},
		{api, "POST", "/v2/images", `{"name":"m","disk_format":"raw","container_format":"bare"}`, 201},
		{api, "GET", "/v2/images/00000000-0000-0000-0000-000000000000", "", 404},
	}
	token := testenv.AdminIdentity(t, api.base, nil, "admin-secret").Token
	for _, s := range steps {
		resp, body, err := s.c.do(s.method, s.path, strings.NewReader(s.body), "Authorization", adminBasic, "X-Auth-Token", token,
			"Content-Type", "application/json")
		if err != nil || resp.StatusCode != s.want {
			t.Fatalf("%s %s: %v %v %s", s.method, s.path, resp, err, body)
		}
	}
	m := scrape(t, reg)
	wantMetric(t, m, `xloud_images{status="queued"}`, 1)
	wantMetric(t, m, `xloud_images{status="active"}`, 0)
	wantMetric(t, m, `xloud_stored_bytes{store="filesystem"}`, float64(len(blob)))
	wantMetric(t, m, `xloud_uploads_in_flight`, 1)
	wantMetric(t, m, `xloud_refusals_total{api="registry",reason="MANIFEST_UNKNOWN"}`, 2)
	wantMetric(t, m, `xloud_refusals_total{api="image",reason="404"}`, 1)
	wantMetric(t, m, `xloud_gc_runs_total`, 0)

	out, err := exec.Command(testenv.Binary(t), "gc", "--data-dir", srv.DataDir, "--grace", "0s").CombinedOutput()
	if err != nil {
		t.Fatalf("gc: %v\n%s", err, out)
	}
	m = scrape(t, api)
	wantMetric(t, m, `xloud_gc_runs_total`, 1)
	wantMetric(t, m, `xloud_gc_freed_bytes_total`, float64(len(blob)))
	wantMetric(t, m, `xloud_stored_bytes{store="filesystem"}`, 0)
	found := false
	for _, rec := range logRecords(t, srv) {
		found = found || (rec["msg"] == "garbage collected" && rec["bytes_freed"] == float64(len(blob)) && rec["level"] == "INFO")
	}
	if !found {
		t.Errorf("no garbage collection line in:\n%s", srv.Log())
	}
}

// TestMetricsAuth: with --metrics-auth, /metrics on either port wants an admin: none is 401,
// a member 403, the admin 200; without the flag anyone scrapes.
func TestMetricsAuth(t *testing.T) {
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--auth", "embedded", "--admin-password", "admin-secret", "--metrics-auth"}})
	for _, base := range []string{srv.RegistryAddr, srv.APIAddr} {
		c := &client{t: t, base: "http://" + base}
		resp, _, err := c.do("GET", "/metrics", nil)
		if err != nil || resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("%s anonymous: %v %v", base, resp, err)
		}
		resp, _, err = c.do("GET", "/metrics", nil, "Authorization", "Basic YWRtaW46d3Jvbmc=") // admin:wrong
		if err != nil || resp.StatusCode != 401 {
			t.Fatalf("%s wrong password: %v %v", base, resp, err)
		}
		if m := scrape(t, c, "Authorization", adminBasic); !strings.Contains(m, "xloud_http_requests_total") {
			t.Errorf("%s admin scrape lacks the request counter", base)
		}
	}
	id := testenv.AdminIdentity(t, "http://"+srv.APIAddr, nil, "admin-secret")
	proj := id.Project(t, "demo")
	id.User(t, proj, "alice", "alice-secret", "member")
	c := &client{t: t, base: "http://" + srv.RegistryAddr}
	resp, _, err := c.do("GET", "/metrics", nil, "Authorization", "Basic YWxpY2U6YWxpY2Utc2VjcmV0") // alice:alice-secret
	if err != nil || resp.StatusCode != 403 {
		t.Fatalf("member: %v %v", resp, err)
	}

	open := testenv.StartServer(t, testenv.ServerOptions{})
	scrape(t, &client{t: t, base: "http://" + open.RegistryAddr})
}
