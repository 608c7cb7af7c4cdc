package imageapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestParsePointer(t *testing.T) {
	cases := []struct {
		in, want string
		status   int
	}{
		{"/name", "name", 0},
		{"/a~1b", "a/b", 0},
		{"/a~0b", "a~b", 0},
		{"/~01", "~1", 0},
		{"/locations/0", "locations", 0},
		{"/locations/-", "locations", 0},
		{"name", "", 400},
		{"", "", 400},
		{"/", "", 400},
		{"//name", "", 400},
		{"/name/", "", 400},
		{"/a/b", "", 400},
		{"/locations/x", "", 400},
		{"/a~", "", 400},
		{"/a~2", "", 400},
	}
	for _, c := range cases {
		got, err := parsePointer(c.in)
		status := 0
		if err != nil {
			status, _, _ = statusOf(err)
		}
		if got != c.want || status != c.status {
			t.Errorf("%q: %q %d, want %q %d", c.in, got, status, c.want, c.status)
		}
	}
}

func TestParseRange(t *testing.T) {
	cases := []struct {
		rng, crange string
		want        string
	}{
		{"", "", "0-100 false"},
		{"bytes=0-0", "", "0-1 true"},
		{"bytes=99-", "", "99-100 true"},
		{"bytes=-1", "", "99-100 true"},
		{"bytes=-0", "", "416"},
		{"bytes=100-", "", "416"},
		{"bytes=-", "", "416"},
		{"bytes=5-4", "", "416"},
		{"bytes=0-1, 3-4", "", "400"},
		{"", "bytes 0-9/100", "0-10 true"},
		{"", "bytes 0-9/*", "0-10 true"},
		{"", "bytes */100", "416"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		if c.rng != "" {
			r.Header.Set("Range", c.rng)
		}
		if c.crange != "" {
			r.Header.Set("Content-Range", c.crange)
		}
		start, end, partial, err := parseRange(r, 100)
		got := fmt.Sprintf("%d-%d %v", start, end, partial)
		if err != nil {
			s, _, _ := statusOf(err)
			got = fmt.Sprint(s)
		}
		if got != c.want {
			t.Errorf("%q %q: %s, want %s", c.rng, c.crange, got, c.want)
		}
	}
}

func TestNegotiate(t *testing.T) {
	cases := []struct {
		accept []string
		want   string
	}{
		{nil, "text/html"},
		{[]string{""}, "text/plain"},
		{[]string{"*/*"}, "text/html"},
		{[]string{"application/json"}, "application/json"},
		{[]string{"application/json, */*"}, "text/html"}, // equal q: the first offer, as webob
		{[]string{"text/*;q=0.1, application/*;q=0.5"}, "application/json"},
		{[]string{"application/json;q=0"}, "text/plain"},
		{[]string{"image/png"}, "text/plain"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		if c.accept != nil {
			r.Header["Accept"] = c.accept
		}
		if got := negotiate(r); got != c.want {
			t.Errorf("%q: %s, want %s", c.accept, got, c.want)
		}
	}
}

func TestSplitQuoted(t *testing.T) {
	for in, want := range map[string]string{
		`a,b`:                      `[a b]`,
		`"glass, darkly",share me`: `[glass, darkly share me]`,
		`"x"`:                      `[x]`,
	} {
		got, err := splitQuoted(in)
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	for _, in := range []string{`"open`, `"a"b`} {
		if _, err := splitQuoted(in); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
	if s, _, _ := statusOf(errorf(http.StatusTeapot, "x")); s != http.StatusTeapot {
		t.Fatal("statusOf")
	}
}
