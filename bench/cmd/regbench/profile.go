//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// phaseProfile (with -profile DIR) records perf CPU profiles of xloud-image during one more
// blob PUT and GET, one more Image API upload and download, and 3 s of manifest GETs, after
// the measurements so they are not disturbed, and writes perf report summaries beside them.
func (b *bench) phaseProfile(ctx context.Context) error {
	if b.o.profileDir == "" {
		return nil
	}
	if _, err := exec.LookPath("perf"); err != nil {
		b.note("perf not found: no profile")
		return nil
	}
	if err := os.MkdirAll(b.o.profileDir, 0o750); err != nil {
		return err
	}
	f := b.files[0]
	if err := b.prepareWrite(f.path); err != nil {
		return err
	}
	err := b.perf("put", func() error {
		file, err := os.Open(f.path)
		if err != nil {
			return err
		}
		defer file.Close()
		_, err = b.c.pushBlob(ctx, b.xloud.base, "bench/profile", file, int64(b.o.size), f.digest)
		return err
	})
	if err != nil {
		return err
	}
	err = b.perf("get", func() error {
		_, _, err := b.c.getBlob(ctx, b.xloud.base+"/v2/bench/put-0/blobs/"+f.digest, f.digest, false)
		return err
	})
	if err != nil {
		return err
	}
	// The Image API: one more image upload (of the first image's bytes, into a new image) and
	// a download of the first image.
	if len(b.images) > 0 {
		img := b.images[0]
		if err := b.prepareWrite(img.file.path); err != nil {
			return err
		}
		err = b.perf("image-put", func() error {
			file, err := os.Open(img.file.path)
			if err != nil {
				return err
			}
			defer file.Close()
			_, _, err = b.c.uploadImage(ctx, b.xloud.apiBase, "regbench-profile", file, int64(b.o.size))
			return err
		})
		if err != nil {
			return err
		}
		err = b.perf("image-get", func() error {
			_, _, err := b.c.getBlob(ctx, b.xloud.apiBase+"/v2/images/"+img.id+"/file", img.file.digest, false)
			return err
		})
		if err != nil {
			return err
		}
	}
	return b.perf("manifest", func() error {
		_, err := b.wrk(filepath.Join(b.work, "manifest.lua"), b.xloud.base+"/v2/"+smallRepo+"/manifests/"+smallTag, 3*time.Second, "profile")
		return err
	})
}

// perf records xloud-image while op runs into DIR/NAME.perf.data and DIR/NAME.txt.
func (b *bench) perf(name string, op func() error) error {
	data := filepath.Join(b.o.profileDir, name+".perf.data")
	cmd := exec.Command("perf", "record", "-F", "999", "-g", "-p", fmt.Sprint(b.xloud.pid()), "-o", data)
	log, _ := os.Create(filepath.Join(b.o.profileDir, name+".perf.log"))
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("perf: %w", err)
	}
	time.Sleep(300 * time.Millisecond) // perf attaches
	opErr := op()
	_ = cmd.Process.Signal(syscall.SIGINT)
	_ = cmd.Wait()
	if opErr != nil {
		return opErr
	}
	var sb strings.Builder
	for _, mode := range []string{"--no-children", "--children"} {
		out, err := runQuiet("perf", "report", "-i", data, "--stdio", mode, "-g", "none",
			"--percent-limit", "1", "--sort", "dso,sym")
		if err != nil {
			b.note("perf report %s: %v", name, err)
		}
		sb.WriteString(out)
	}
	txt := filepath.Join(b.o.profileDir, name+".txt")
	b.logf("profile of xloud-image %s: %s", name, txt)
	return os.WriteFile(txt, []byte(sb.String()), 0o640)
}
