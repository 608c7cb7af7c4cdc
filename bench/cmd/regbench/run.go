//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// bench holds one run: the working directory, the servers and what was measured.
type bench struct {
	o       options
	work    string
	c       *client
	xloud   *server
	dist    *server
	res     results
	started time.Time
	files   []blobFile // the PUT data, one file per run
	// The Image API phases' data, one file each per run: uploaded as images, and as plain
	// blobs through the Registry API for comparison.
	imageFiles, regFiles []blobFile
	images               []uploadedImage // the images uploaded by the Image API PUT phase
}

// blobFile is a file of random data and its digest (and, for image data, its MD5).
type blobFile struct {
	path   string
	digest string
	md5    string // hex; "" when not computed
}

func run(ctx context.Context, o options) error {
	for _, bin := range []string{o.xloudBin, o.distBin, o.wrkBin, o.versityBin, "dd"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s not found (scripts/install-deps.sh installs what is missing): %w", bin, err)
		}
	}
	work, err := os.MkdirTemp(o.dir, "regbench-")
	if err != nil {
		return err
	}
	if o.keep {
		defer fmt.Fprintln(os.Stderr, "kept working directory", work)
	} else {
		defer os.RemoveAll(work)
	}
	b := &bench{o: o, work: work, c: newClient(), started: time.Now()}
	b.res.machine = machineInfo(work, o)
	if err := b.generate(); err != nil {
		return err
	}
	if err := b.startServers(ctx); err != nil {
		return err
	}
	defer b.stopServers()
	b.res.loadStart = loadAvg()
	if err := b.phases(ctx); err != nil {
		return err
	}
	b.res.loadEnd = loadAvg()
	b.stopServers()
	b.res.elapsed = time.Since(b.started) - b.res.waited
	return b.report()
}

// phaseIDs name the phases for -phases, in the order they run.
var phaseIDs = []string{"put", "get", "image-put", "image-get", "manifest", "rss", "s3", "cache", "profile"}

// phases runs the measurements in order, recording the CPU other processes took meanwhile.
func (b *bench) phases(ctx context.Context) error {
	for _, p := range []struct {
		id, name string
		run      func(context.Context) error
	}{
		{"put", "PUT", b.phasePut}, {"get", "GET", b.phaseGet},
		{"image-put", "Image API PUT", b.phaseImagePut}, {"image-get", "Image API GET", b.phaseImageGet},
		{"manifest", "manifest GET", b.phaseManifest},
		{"rss", "RSS", b.phaseRSS}, {"s3", "S3", b.phaseS3}, {"cache", "image cache", b.phaseCache},
		{"profile", "profile", b.phaseProfile},
	} {
		if (p.id == "profile" && b.o.profileDir == "") || (b.o.phases != nil && !b.o.phases[p.id]) {
			continue
		}
		b.awaitIdle(ctx, p.name)
		before := b.cpuSnapshot()
		if err := p.run(ctx); err != nil {
			return err
		}
		c := othersSince(p.name, before, b.cpuSnapshot())
		b.res.cpu = append(b.res.cpu, c)
		if c.othersPercent > 10 {
			b.note("other processes used %.0f%% of the CPUs during the %s phase: its numbers are disturbed", c.othersPercent, p.name)
		}
	}
	return nil
}

// awaitIdle spends what is left of -wait-idle waiting for the machine to be idle before a
// phase, so a shared machine disturbs as little as it can.
func (b *bench) awaitIdle(ctx context.Context, phase string) {
	left := b.o.waitIdle - b.res.waited
	if left <= 0 {
		return
	}
	start := time.Now()
	idle := b.waitIdle(ctx, left)
	b.res.waited += time.Since(start)
	if !idle {
		b.note("the machine was not idle before the %s phase (waited %s in all); measuring anyway", phase, b.res.waited.Round(time.Second))
	}
}

// logf reports progress on stderr; stdout gets only the table.
func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(b.started).Seconds(), fmt.Sprintf(format, args...))
}

// generate writes files of fresh random data, each different from all others, so no
// registry can skip a write by deduplication: one per run for the PUT phase, and two per run
// for the Image API PUT phase (one uploaded as an image, one as a plain blob).
func (b *bench) generate() error {
	dir := filepath.Join(b.work, "files")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	b.logf("generating up to %d files of %s in %s", 3*b.o.runs, humanBytes(int64(b.o.size)), dir)
	for _, set := range []struct {
		name string
		seed uint64
		md5  bool
		out  *[]blobFile
	}{
		{"put", 1000, false, &b.files},
		{"image", 2000, true, &b.imageFiles},
		{"regput", 3000, false, &b.regFiles},
	} {
		if set.name != "put" && b.o.phases != nil && !b.o.phases["image-put"] {
			continue // only the Image API phases read these
		}
		for i := range b.o.runs {
			p := filepath.Join(dir, fmt.Sprintf("%s-%d.bin", set.name, i))
			var extra []io.Writer
			m := md5.New()
			if set.md5 {
				extra = append(extra, m)
			}
			d, err := writeGenFile(p, set.seed+uint64(i), int64(b.o.size), extra...)
			if err != nil {
				return err
			}
			f := blobFile{path: p, digest: d}
			if set.md5 {
				f.md5 = hex.EncodeToString(m.Sum(nil))
			}
			*set.out = append(*set.out, f)
		}
	}
	return nil
}

func (b *bench) startServers(ctx context.Context) error {
	var err error
	if b.xloud, err = startXloud(ctx, b.o.xloudBin, b.work, "xloud"); err != nil {
		return err
	}
	b.logf("xloud-image pid %d at %s", b.xloud.pid(), b.xloud.base)
	if b.dist, err = startDistribution(ctx, b.o.distBin, b.work); err != nil {
		return err
	}
	b.logf("distribution pid %d at %s", b.dist.pid(), b.dist.base)
	return nil
}

func (b *bench) stopServers() {
	for _, s := range []**server{&b.xloud, &b.dist} {
		if *s != nil {
			(*s).stop()
			*s = nil
		}
	}
}

// note records a remark for the results file (and stderr).
func (b *bench) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	b.res.notes = append(b.res.notes, s)
	b.logf("note: %s", s)
}

// rotate returns xs rotated left by i, so each run measures the targets in another order.
func rotate[T any](xs []T, i int) []T {
	i %= len(xs)
	return append(append([]T{}, xs[i:]...), xs[:i]...)
}

// runQuiet runs a command and returns its combined output.
func runQuiet(name string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	err := cmd.Run()
	return out.String(), err
}
