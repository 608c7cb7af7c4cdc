//go:build linux

package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// byteSize is a flag value such as 1GiB, 64MiB, 500MB or 1048576.
type byteSize int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

func (b *byteSize) Set(s string) error {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n <= 0 {
		return fmt.Errorf("bad size %q", s)
	}
	*b = byteSize(n * float64(mult))
	return nil
}

func (b *byteSize) String() string { return humanBytes(int64(*b)) }

// humanBytes writes n in the largest binary unit that divides it evenly enough to read.
func humanBytes(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.m {
			v := float64(n) / float64(u.m)
			if v == float64(int64(v)) {
				return fmt.Sprintf("%d %s", int64(v), u.s)
			}
			return fmt.Sprintf("%.2f %s", v, u.s)
		}
	}
	return fmt.Sprintf("%d B", n)
}

// median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// genReader yields n deterministic pseudo-random bytes from ChaCha8 seeded with seed. The
// stream does not depend on how the reads are sized, so a first pass can compute the digest
// that a second pass (the upload) must match.
type genReader struct {
	r    *rand.ChaCha8
	left int64
}

func newGenReader(seed uint64, n int64) *genReader {
	var s [32]byte
	copy(s[:], "regbench")
	for i := range 8 {
		s[8+i] = byte(seed >> (8 * i))
	}
	return &genReader{r: rand.NewChaCha8(s), left: n}
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	n, _ := g.r.Read(p) // always len(p), nil
	g.left -= int64(n)
	return n, nil
}

// genDigest is the sha256 digest of newGenReader(seed, n)'s stream.
func genDigest(seed uint64, n int64) string {
	h := sha256.New()
	buf := make([]byte, 1<<20)
	if _, err := io.CopyBuffer(writerOnly{h}, newGenReader(seed, n), buf); err != nil {
		panic(err) // the generator cannot fail
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// writeGenFile writes the generator's stream to path, fsyncs it and returns its digest;
// extra (other hashes) see the stream too.
func writeGenFile(path string, seed uint64, n int64, extra ...io.Writer) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 4<<20)
	if _, err := io.CopyBuffer(io.MultiWriter(append([]io.Writer{f, h}, extra...)...), newGenReader(seed, n), buf); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("sync %s: %w", path, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), f.Close()
}

// writerOnly hides ReadFrom, so io.Copy uses the caller's (large) buffer.
type writerOnly struct{ w io.Writer }

func (w writerOnly) Write(p []byte) (int, error) { return w.w.Write(p) }

// discard counts what it is given and keeps nothing.
type discard struct{ n int64 }

func (d *discard) Write(p []byte) (int, error) { d.n += int64(len(p)); return len(p), nil }

// warmFile reads path once, so the page cache holds it.
func warmFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyBuffer(&discard{}, f, make([]byte, 4<<20))
	return err
}

// dropCaches writes dirty pages back and empties the page cache (root only).
func dropCaches() error {
	if err := exec.Command("sync").Run(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0)
}

// procStatusKiB reads one "Key:   N kB" field of /proc/<pid>/status, in KiB.
func procStatusKiB(pid int, key string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != key {
			continue
		}
		return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, key)
}

// resetPeakRSS makes VmHWM start again from the current RSS (Linux 4.0+, root or owner).
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5\n"), 0)
}

// mbps is bytes per second in MB/s (10^6 bytes, as dd reports).
func mbps(bytes int64, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return float64(bytes) / seconds / 1e6
}
