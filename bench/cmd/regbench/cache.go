//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// cacheResults is the image cache phase: one xloud-image over a versitygw bucket with
// --cache-dir, in the same run as the same blob from a filesystem store and from S3
// without a cache.
type cacheResults struct {
	cold    []float64 // MB/s per run: first GET through the cache (streams from S3, fills it)
	nocache []float64 // GET of the same content from an S3 store without a cache
	raw     []float64 // ranged GET of the object straight from versitygw
	warm    []float64 // GET answered from the cache (sendfile)
	fs      []float64 // GET of the same blob from the filesystem store
	// The serving xloud-image's CPU seconds (user+system) over each cold GET and each GET
	// without a cache: what the machine's load does not change much. coldFillCPU runs on
	// to the fill's commit (what the fill costs after the client has every byte too).
	coldCPU, nocacheCPU, coldFillCPU []float64
}

// phaseCache measures the node cache: a cold GET (S3 → client, teed to the cache file, verified after)
// against a GET from S3 without a cache and a raw ranged GET of the object; then a GET
// served from the cache against one from the filesystem store.
func (b *bench) phaseCache(ctx context.Context) error {
	v, err := b.startVersity(ctx)
	if err != nil {
		return err
	}
	defer v.stop()
	storeURL := fmt.Sprintf("s3://%s:%s@xloud/cache?endpoint=http://%s&region=us-east-1", s3Access, s3Secret, v.addr)
	xc, err := startXloud(ctx, b.o.xloudBin, b.work, "xloud-cache", "--store", "s3="+storeURL,
		"--cache-dir", filepath.Join(b.work, "xloud-cache-dir"), "--cache-max-size", strconv.FormatInt(int64(2*b.o.size), 10))
	if err != nil {
		return err
	}
	defer xc.stop()
	xn, err := startXloud(ctx, b.o.xloudBin, b.work, "xloud-s3-nocache", "--store", "s3="+storeURL)
	if err != nil {
		return err
	}
	defer xn.stop()
	f := b.files[0]
	for _, s := range []*server{xc, xn, b.xloud} {
		if _, err := b.putRegistry(s, "bench/cache")(ctx, 0, f); err != nil {
			return fmt.Errorf("push to %s: %w", s.name, err)
		}
	}
	blob := "/v2/bench/cache-0/blobs/" + f.digest
	key, err := objectOfSize(filepath.Join(v.root, "xloud", "cache", "data"), int64(b.o.size))
	if err != nil {
		return err
	}
	raw, err := presign(ctx, v, "xloud", "cache/data/"+key)
	if err != nil {
		return err
	}
	for _, s := range []*server{xn, b.xloud} {
		if _, _, err := b.c.getBlob(ctx, s.base+blob, f.digest, true); err != nil {
			return fmt.Errorf("warm-up GET from %s: %w", s.name, err)
		}
	}
	r := &b.res.cache
	for i := range b.o.runs {
		if err := clearCache(ctx, xc); err != nil {
			return err
		}
		for _, t := range rotate([]int{0, 1, 2}, i) {
			var n int64
			var el time.Duration
			var err error
			var out *[]float64
			name := ""
			switch t {
			case 0:
				name, out = "cold via cache", &r.cold
				cpu := procCPUSeconds(xc.pid())
				n, el, err = b.c.getBlob(ctx, xc.base+blob, f.digest, false)
				r.coldCPU = append(r.coldCPU, procCPUSeconds(xc.pid())-cpu)
				if err == nil {
					err = waitCacheEntries(ctx, xc, 1) // the fill's commit, outside every timing
					r.coldFillCPU = append(r.coldFillCPU, procCPUSeconds(xc.pid())-cpu)
				}
			case 1:
				name, out = "s3 no cache", &r.nocache
				cpu := procCPUSeconds(xn.pid())
				n, el, err = b.c.getBlob(ctx, xn.base+blob, f.digest, false)
				r.nocacheCPU = append(r.nocacheCPU, procCPUSeconds(xn.pid())-cpu)
			case 2:
				name, out = "versitygw ranged", &r.raw
				n, el, err = b.rangedGet(ctx, raw, "", int64(b.o.size))
			}
			if err == nil && n != int64(b.o.size) {
				err = fmt.Errorf("%d bytes, want %d", n, int64(b.o.size))
			}
			if err != nil {
				return fmt.Errorf("cache GET run %d, %s: %w", i+1, name, err)
			}
			*out = append(*out, mbps(n, el.Seconds()))
			b.logf("cache GET run %d %-16s %8.1f MB/s (%.2fs)", i+1, name, mbps(n, el.Seconds()), el.Seconds())
		}
		if _, _, err := b.c.getBlob(ctx, xc.base+blob, f.digest, i == 0); err != nil { // the cached copy is right
			return fmt.Errorf("verified GET from the cache: %w", err)
		}
		// warmPairs of each per run, alternating: a GET from a warm file takes a few tenths
		// of a second, and single GETs of the same file scatter 2-3x with every other
		// process's CPU use: nine or eighteen in all left the medians up to 20% apart from
		// run to run, 36 of each in one run came within 1%.
		var order []int
		for k := range warmPairs {
			order = append(order, rotate([]int{0, 1}, i+k)...)
		}
		for _, t := range order {
			s, out, name := xc, &r.warm, "from cache"
			if t == 1 {
				s, out, name = b.xloud, &r.fs, "filesystem store"
			}
			n, el, err := b.c.getBlob(ctx, s.base+blob, f.digest, false)
			if err == nil && n != int64(b.o.size) {
				err = fmt.Errorf("%d bytes, want %d", n, int64(b.o.size))
			}
			if err != nil {
				return fmt.Errorf("cache GET run %d, %s: %w", i+1, name, err)
			}
			*out = append(*out, mbps(n, el.Seconds()))
			b.logf("cache GET run %d %-16s %8.1f MB/s (%.2fs)", i+1, name, mbps(n, el.Seconds()), el.Seconds())
		}
	}
	return nil
}

// warmPairs is how many GETs from the cache and from the filesystem store each run times.
const warmPairs = 12

// clearCache empties the server's cache (DELETE /v2/cache; --auth none: an admin) and waits
// until it holds nothing.
func clearCache(ctx context.Context, s *server) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, s.apiBase+"/v2/cache", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("DELETE /v2/cache: %s", resp.Status)
	}
	return waitCacheEntries(ctx, s, 0)
}

var cacheEntriesRE = regexp.MustCompile(`(?m)^xloud_cache_entries (\S+)$`)

// waitCacheEntries polls /metrics until the cache holds n blobs.
func waitCacheEntries(ctx context.Context, s *server, n int) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.apiBase+"/metrics", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := cacheEntriesRE.FindSubmatch(body)
		if m != nil && string(m[1]) == strconv.Itoa(n) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the cache of %s never held %d blobs (%q)", s.name, n, m)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// presign returns a presigned GET URL of bucket/key on v.
func presign(ctx context.Context, v *versity, bucket, key string) (string, error) {
	c, err := minio.New(v.addr, &minio.Options{Creds: credentials.NewStaticV4(s3Access, s3Secret, ""), Region: "us-east-1", BucketLookup: minio.BucketLookupPath})
	if err != nil {
		return "", err
	}
	u, err := c.PresignedGetObject(ctx, bucket, key, time.Hour, nil)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}
