//go:build linux

package main

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
)

// getTarget is one server a GET run downloads the blob from.
type getTarget struct {
	name string
	url  string
	out  *[]float64 // MB/s per run
	cpu  *[]float64 // if set: xloud-image's CPU seconds per run
}

// phaseGet downloads the first run's blob from xloud-image, from the bare ServeContent server
// (serving xloud-image's own blob file) and from Distribution. Each is read once first,
// verified, so the page cache holds both files and the runs measure the servers.
func (b *bench) phaseGet(ctx context.Context) error {
	f := b.files[0]
	path, err := findBlobFile(b.xloud.dataDir, f.digest)
	if err != nil {
		return err
	}
	bare, err := startFileServer(ctx, b.work, path)
	if err != nil {
		return err
	}
	defer bare.stop()
	blob := "/v2/bench/put-0/blobs/" + f.digest
	targets := []getTarget{
		{"xloud-image", b.xloud.base + blob, &b.res.getXloud, nil},
		{"ServeContent", bare.base + "/blob", &b.res.getBare, nil},
		{"distribution", b.dist.base + blob, &b.res.getDist, nil},
	}
	return b.measureGets(ctx, "GET", targets, f.digest, b.o.runs)
}

// measureGets reads blob d from every target once, verified, so the page cache holds it and
// the runs measure the servers; then it downloads it from each target per run, in an order
// that rotates each run.
func (b *bench) measureGets(ctx context.Context, phase string, targets []getTarget, d string, runs int) error {
	for _, t := range targets {
		if _, _, err := b.c.getBlob(ctx, t.url, d, true); err != nil {
			return fmt.Errorf("warm-up %s from %s: %w", phase, t.name, err)
		}
	}
	for i := range runs {
		for _, t := range rotate(targets, i) {
			cpu := procCPUSeconds(b.xloud.pid())
			n, el, err := b.c.getBlob(ctx, t.url, d, false)
			if err != nil {
				return fmt.Errorf("%s run %d, %s: %w", phase, i+1, t.name, err)
			}
			cpu = procCPUSeconds(b.xloud.pid()) - cpu
			if n != int64(b.o.size) {
				return fmt.Errorf("%s run %d, %s: %d bytes, want %d", phase, i+1, t.name, n, int64(b.o.size))
			}
			v := mbps(n, el.Seconds())
			*t.out = append(*t.out, v)
			if t.cpu != nil {
				*t.cpu = append(*t.cpu, cpu)
			}
			b.logf("%s run %d %-13s %8.1f MB/s (%.2fs)", phase, i+1, t.name, v, el.Seconds())
		}
	}
	return nil
}

// findBlobFile finds the file holding blob d under a registry's data directory: the regular
// file named by the digest's hex (xloud-image's layout, see storage/layout.go).
func findBlobFile(root, d string) (string, error) {
	_, hex, _ := strings.Cut(d, ":")
	var found string
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || found != "" {
			return err
		}
		if e.Type().IsRegular() && e.Name() == hex {
			found = p
			return filepath.SkipAll
		}
		return nil
	})
	if err == nil && found == "" {
		err = fmt.Errorf("no file for blob %s under %s", d, root)
	}
	return found, err
}
