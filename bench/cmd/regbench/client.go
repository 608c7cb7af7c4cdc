//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// client speaks the parts of the distribution API the benchmark needs.
type client struct {
	hc *http.Client
}

func newClient() *client {
	tr := &http.Transport{
		DisableCompression:  true,
		MaxIdleConnsPerHost: 4,
		ReadBufferSize:      64 << 10,
		WriteBufferSize:     64 << 10,
	}
	return &client{hc: &http.Client{Transport: tr}}
}

// do sends req and fails unless the status is want; the caller closes the body.
func (c *client) do(req *http.Request, want int) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: status %d, want %d: %s", req.Method, req.URL.Path, resp.StatusCode, want, strings.TrimSpace(string(b)))
	}
	return resp, nil
}

// pushBlob uploads body (size bytes, digest d) into repo monolithically: POST to open a
// session, then one PUT with the whole body and its Content-Length. It returns the wall time
// from the POST to the PUT's answer. An *os.File body goes out with sendfile.
func (c *client) pushBlob(ctx context.Context, base, repo string, body io.Reader, size int64, d string) (time.Duration, error) {
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", nil)
	resp, err := c.do(req, http.StatusAccepted)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	loc, err := resolve(base, resp.Header.Get("Location"))
	if err != nil {
		return 0, err
	}
	q := loc.Query()
	q.Set("digest", d)
	loc.RawQuery = q.Encode()
	req, _ = http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), body)
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = c.do(req, http.StatusCreated)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return time.Since(start), nil
}

// pushChunked uploads data into repo in chunks of chunk bytes: POST, one PATCH per chunk
// with its Content-Range, then PUT ?digest= with no body.
func (c *client) pushChunked(ctx context.Context, base, repo string, data []byte, chunk int, d string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", nil)
	resp, err := c.do(req, http.StatusAccepted)
	if err != nil {
		return err
	}
	resp.Body.Close()
	loc, err := resolve(base, resp.Header.Get("Location"))
	if err != nil {
		return err
	}
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		req, _ = http.NewRequestWithContext(ctx, http.MethodPatch, loc.String(), bytes.NewReader(data[off:end]))
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", off, end-1))
		if resp, err = c.do(req, http.StatusAccepted); err != nil {
			return err
		}
		resp.Body.Close()
		if loc, err = resolve(base, resp.Header.Get("Location")); err != nil {
			return err
		}
	}
	q := loc.Query()
	q.Set("digest", d)
	loc.RawQuery = q.Encode()
	req, _ = http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), nil)
	if resp, err = c.do(req, http.StatusCreated); err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// resolve makes the upload Location absolute (the spec allows a relative one).
func resolve(base, loc string) (*url.URL, error) {
	if loc == "" {
		return nil, fmt.Errorf("upload answer has no Location")
	}
	b, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	l, err := url.Parse(loc)
	if err != nil {
		return nil, fmt.Errorf("bad Location %q: %w", loc, err)
	}
	return b.ResolveReference(l), nil
}

// getBlob downloads a blob into a 1 MiB buffer and drops it; it returns the bytes read and
// the wall time from request to the last byte. With verify it also checks the digest
// (slower: for warm-up reads, not timed ones).
func (c *client) getBlob(ctx context.Context, url string, d string, verify bool) (int64, time.Duration, error) {
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	sink := &discard{}
	var w io.Writer = sink
	h := sha256.New()
	if verify {
		w = io.MultiWriter(sink, h)
	}
	if _, err := io.CopyBuffer(writerOnly{w}, resp.Body, make([]byte, 1<<20)); err != nil {
		return sink.n, 0, fmt.Errorf("GET %s: %w", url, err)
	}
	el := time.Since(start)
	if verify && "sha256:"+hex.EncodeToString(h.Sum(nil)) != d {
		return sink.n, el, fmt.Errorf("GET %s: content does not match %s", url, d)
	}
	return sink.n, el, nil
}

// putManifest stores a manifest under tag.
func (c *client) putManifest(ctx context.Context, base, repo, tag, mediaType string, b []byte) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, base+"/v2/"+repo+"/manifests/"+tag, strings.NewReader(string(b)))
	req.Header.Set("Content-Type", mediaType)
	resp, err := c.do(req, http.StatusCreated)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// getManifest fetches a manifest by tag with accept and returns its Docker-Content-Digest.
func (c *client) getManifest(ctx context.Context, base, repo, tag, accept string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/"+repo+"/manifests/"+tag, nil)
	req.Header.Set("Accept", accept)
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}
