//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// putTarget is one thing a PUT run measures: a registry or dd. It returns the seconds the
// durable write of file took.
type putTarget struct {
	name string
	run  func(ctx context.Context, i int, f blobFile) (float64, error)
	out  *[]float64 // MB/s per run
}

// phasePut measures the monolithic blob PUT into both registries and dd's durable write, per
// run on that run's file, starting each from the same cache state: page cache dropped (so no
// dirty or cached pages of earlier writes), then the source file read back in, so every
// target reads its input from memory and writes to disk.
func (b *bench) phasePut(ctx context.Context) error {
	targets := []putTarget{
		{"dd", b.putDD, &b.res.putDD},
		{"xloud-image", b.putRegistry(b.xloud, "bench/put"), &b.res.putXloud},
		{"distribution", b.putRegistry(b.dist, "bench/put"), &b.res.putDist},
	}
	for i := range b.o.runs {
		for _, t := range rotate(targets, i) {
			if err := b.prepareWrite(b.files[i].path); err != nil {
				return err
			}
			sec, err := t.run(ctx, i, b.files[i])
			if err != nil {
				return fmt.Errorf("PUT run %d, %s: %w", i+1, t.name, err)
			}
			v := mbps(int64(b.o.size), sec)
			*t.out = append(*t.out, v)
			b.logf("PUT run %d %-13s %8.1f MB/s (%.2fs)", i+1, t.name, v, sec)
		}
	}
	return nil
}

// prepareWrite drops the page cache (if allowed) and reads src back in.
func (b *bench) prepareWrite(src string) error {
	if b.o.dropCaches {
		if err := dropCaches(); err != nil {
			b.note("cannot drop the page cache (%v): PUTs run without it", err)
			b.o.dropCaches = false
		}
	}
	return warmFile(src)
}

// putRegistry pushes run i's file into repository <repo>-<i> of s.
func (b *bench) putRegistry(s *server, repo string) func(context.Context, int, blobFile) (float64, error) {
	return func(ctx context.Context, i int, f blobFile) (float64, error) {
		file, err := os.Open(f.path)
		if err != nil {
			return 0, err
		}
		defer file.Close()
		el, err := b.c.pushBlob(ctx, s.base, fmt.Sprintf("%s-%d", repo, i), file, int64(b.o.size), f.digest)
		return el.Seconds(), err
	}
}

// putDD copies the file with dd conv=fdatasync onto the registries' filesystem and takes the
// time dd reports (which includes the fdatasync).
func (b *bench) putDD(ctx context.Context, i int, f blobFile) (float64, error) {
	dst := filepath.Join(b.work, "ddtest")
	defer os.Remove(dst)
	start := time.Now()
	out, err := runQuiet("dd", "if="+f.path, "of="+dst, "bs=4M", "conv=fdatasync")
	wall := time.Since(start).Seconds()
	if err != nil {
		return 0, fmt.Errorf("dd: %v: %s", err, out)
	}
	sec, ok := parseDD(out)
	if !ok {
		b.note("could not parse dd's output %q; used wall time", out)
		return wall, nil
	}
	return sec, nil
}

var ddTimeRE = regexp.MustCompile(`copied, ([0-9.]+) s`)

// parseDD reads the elapsed seconds from dd's summary line.
func parseDD(out string) (float64, bool) {
	m := ddTimeRE.FindStringSubmatch(out)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil && v > 0
}
