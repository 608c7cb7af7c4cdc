//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

const (
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar"
	// manifestAccept is what a pulling client (containerd) sends.
	manifestAccept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, " +
		"application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"
	smallRepo = "bench/small"
	smallTag  = "latest"
)

// wrkResult is what the benchmark takes from wrk's report.
type wrkResult struct {
	reqPerSec    float64
	non2xx       int64
	socketErrors string
	p50, p99     string
}

// phaseManifest pushes a small image (config, one layer, manifest, tag) to both registries
// and measures manifest GETs by tag with wrk.
func (b *bench) phaseManifest(ctx context.Context) error {
	layer, _ := io.ReadAll(newGenReader(7, 4096))
	img, err := smallImage(layer)
	if err != nil {
		return err
	}
	script := filepath.Join(b.work, "manifest.lua")
	lua := fmt.Sprintf("wrk.method = \"GET\"\nwrk.headers[\"Accept\"] = %q\n", manifestAccept)
	if err := os.WriteFile(script, []byte(lua), 0o640); err != nil {
		return err
	}
	for _, t := range []struct {
		s   *server
		out *wrkResult
	}{{b.xloud, &b.res.manXloud}, {b.dist, &b.res.manDist}} {
		if err := img.push(ctx, b.c, t.s.base); err != nil {
			return fmt.Errorf("push small image to %s: %w", t.s.name, err)
		}
		url := t.s.base + "/v2/" + smallRepo + "/manifests/" + smallTag
		// A short unmeasured run first: connections, caches and the Go runtime warm up.
		if _, err := b.wrk(script, url, time.Second, t.s.name+"-warmup"); err != nil {
			return err
		}
		r, err := b.wrk(script, url, b.o.wrkDuration, t.s.name)
		if err != nil {
			return err
		}
		if r.non2xx > 0 || r.socketErrors != "" {
			return fmt.Errorf("wrk against %s: %d non-2xx answers, socket errors %q", t.s.name, r.non2xx, r.socketErrors)
		}
		*t.out = r
		b.logf("manifest GET %-13s %10.0f req/s (p50 %s, p99 %s)", t.s.name, r.reqPerSec, r.p50, r.p99)
	}
	return nil
}

// wrk runs wrk with the benchmark's settings, keeps its output in the working directory and
// parses it.
func (b *bench) wrk(script, url string, d time.Duration, label string) (wrkResult, error) {
	out, err := runQuiet(b.o.wrkBin, "-t", strconv.Itoa(b.o.wrkThreads), "-c", strconv.Itoa(b.o.wrkConns),
		"-d", fmt.Sprintf("%ds", max(1, int(d.Round(time.Second).Seconds()))), "--latency", "-s", script, url)
	_ = os.WriteFile(filepath.Join(b.work, "wrk-"+label+".txt"), []byte(out), 0o640)
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %v: %s", err, out)
	}
	return parseWrk(out)
}

var (
	wrkRPSRE    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkNon2xxRE = regexp.MustCompile(`Non-2xx or 3xx responses:\s+([0-9]+)`)
	wrkSockRE   = regexp.MustCompile(`Socket errors:\s+(.*)`)
	wrkP50RE    = regexp.MustCompile(`\n\s+50%\s+(\S+)`)
	wrkP99RE    = regexp.MustCompile(`\n\s+99%\s+(\S+)`)
)

// parseWrk reads requests/s, errors and latency percentiles from wrk's report.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := wrkRPSRE.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in wrk output: %s", out)
	}
	r.reqPerSec, _ = strconv.ParseFloat(m[1], 64)
	if m := wrkNon2xxRE.FindStringSubmatch(out); m != nil {
		r.non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := wrkSockRE.FindStringSubmatch(out); m != nil {
		r.socketErrors = strings.TrimSpace(m[1])
	}
	if m := wrkP50RE.FindStringSubmatch(out); m != nil {
		r.p50 = m[1]
	}
	if m := wrkP99RE.FindStringSubmatch(out); m != nil {
		r.p99 = m[1]
	}
	return r, nil
}

// image is a small OCI image: its blobs and its manifest.
type image struct {
	config, layer, manifest []byte
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func smallImage(layer []byte) (image, error) {
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{sha(layer)}},
	})
	if err != nil {
		return image{}, err
	}
	desc := func(mt string, b []byte) map[string]any {
		return map[string]any{"mediaType": mt, "digest": sha(b), "size": len(b)}
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": mediaManifest,
		"config": desc(mediaConfig, config),
		"layers": []any{desc(mediaLayer, layer)},
	})
	return image{config: config, layer: layer, manifest: manifest}, err
}

// push uploads the blobs and the manifest under smallTag and checks a GET by tag returns it.
func (img image) push(ctx context.Context, c *client, base string) error {
	for _, blob := range [][]byte{img.config, img.layer} {
		if _, err := c.pushBlob(ctx, base, smallRepo, bytes.NewReader(blob), int64(len(blob)), sha(blob)); err != nil {
			return err
		}
	}
	if err := c.putManifest(ctx, base, smallRepo, smallTag, mediaManifest, img.manifest); err != nil {
		return err
	}
	got, err := c.getManifest(ctx, base, smallRepo, smallTag, manifestAccept)
	if err != nil {
		return err
	}
	if got != sha(img.manifest) {
		return fmt.Errorf("manifest by tag is %s, pushed %s", got, sha(img.manifest))
	}
	return nil
}
