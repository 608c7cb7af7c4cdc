package storage_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xloud/xloud-image/storage"
)

// TestFileSectionServeContent: a section of a file served with http.ServeContent over a real
// loopback connection (sendfile for single ranges, reads for multipart ones) answers every
// range with exactly the section's bytes, never one outside it, and the same file serves
// many requests in a row.
func TestFileSectionServeContent(t *testing.T) {
	data := make([]byte, 3<<20+123)
	rand.Read(data)
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sections := map[string][2]int64{"whole": {0, int64(len(data))}, "inner": {1<<20 + 7, 1<<20 + 4099}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sec := sections[strings.TrimPrefix(r.URL.Path, "/")]
		f, err := os.Open(path)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		http.ServeContent(w, r, "", time.Time{}, storage.SectionFile(f, sec[0], sec[1]))
	}))
	defer srv.Close()
	for name, sec := range sections {
		want := data[sec[0] : sec[0]+sec[1]]
		n := int64(len(want))
		cases := []struct{ rng, body string }{
			{"", string(want)},
			{"bytes=0-0", string(want[:1])},
			{"bytes=0-511", string(want[:512])},
			{"bytes=100-16483", string(want[100:16484])},
			{fmt.Sprintf("bytes=%d-", n-10), string(want[n-10:])},
			{"bytes=-4096", string(want[n-4096:])},
			{fmt.Sprintf("bytes=%d-%d", n-5000, n+5000), string(want[n-5000:])}, // clipped at the end
		}
		for _, c := range cases {
			for range 2 { // the keep-alive connection again
				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/"+name, nil)
				if c.rng != "" {
					req.Header.Set("Range", c.rng)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				wantStatus := http.StatusPartialContent
				if c.rng == "" {
					wantStatus = http.StatusOK
				}
				if resp.StatusCode != wantStatus || !bytes.Equal(got, []byte(c.body)) {
					t.Errorf("%s %q: %s, %d bytes, want %d and the section's %d bytes", name, c.rng, resp.Status, len(got), wantStatus, len(c.body))
				}
			}
		}
		// Two ranges: multipart, read through Read and Seek.
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/"+name, nil)
		req.Header.Set("Range", "bytes=10-19,2000-2999")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if err != nil {
			t.Fatal(err)
		}
		mr := multipart.NewReader(resp.Body, params["boundary"])
		for _, wantPart := range [][]byte{want[10:20], want[2000:3000]} {
			p, err := mr.NextPart()
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(p)
			if !bytes.Equal(got, wantPart) {
				t.Errorf("%s multipart: a part of %d bytes differs from the section", name, len(got))
			}
		}
		resp.Body.Close()
	}
}
