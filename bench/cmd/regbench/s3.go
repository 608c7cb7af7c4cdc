//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// s3Results is the S3 phase: xloud-image's S3 store and Distribution's s3-aws driver on one
// versitygw, in the same run.
type s3Results struct {
	putXloud, putDist []float64 // MB/s per run, monolithic blob PUT
	getXloud, getRaw  []float64 // MB/s per run: blob GET through xloud-image; ranged GET of the object from versitygw
	// getRedirect: blob GET from a second xloud-image on the same bucket with redirect= on
	// (307 to a presigned URL, followed), MB/s per run.
	getRedirect []float64
	// getRelay: the same ranged GET through a bare TCP relay (kernel splice) in front of
	// versitygw, MB/s per run: what one more hop costs here.
	getRelay                   []float64
	cpuXloud, cpuRaw, cpuRelay s3GetCPU // CPU per GET of each kind, by process
	rssXloud, rssDist          rssResult
	chunkSize                  int64
	// Requests versitygw logged during one chunked push (1 MiB chunks) per target, by operation.
	chunkedXloud, chunkedDist map[string]int
}

const (
	s3Access = "regbench"
	s3Secret = "regbench-secret"
)

// versity is the S3 server of the phase.
type versity struct {
	*server
	addr, root, accessLog string
}

func (b *bench) startVersity(ctx context.Context) (*versity, error) {
	dir := filepath.Join(b.work, "s3")
	v := &versity{root: filepath.Join(dir, "root"), accessLog: filepath.Join(dir, "access.log")}
	for _, d := range []string{filepath.Join(v.root, "xloud"), filepath.Join(v.root, "dist"), filepath.Join(dir, "meta")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, err
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	v.addr = fmt.Sprintf("127.0.0.1:%d", port)
	s, err := startProcess(ctx, "versitygw", filepath.Join(dir, "versitygw.log"), "http://"+v.addr+"/health",
		[]string{"ROOT_ACCESS_KEY=" + s3Access, "ROOT_SECRET_KEY=" + s3Secret}, b.o.versityBin,
		"--port", v.addr, "--quiet", "--health", "/health", "--access-log", v.accessLog,
		"posix", "--sidecar", filepath.Join(dir, "meta"), v.root)
	if err != nil {
		return nil, err
	}
	v.server = s
	return v, nil
}

// distS3Config is Distribution's configuration on its s3-aws driver (same cache and
// settings as the filesystem one; redirects off so GETs stream through it like ours).
const distS3Config = `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  s3:
    accesskey: %s
    secretkey: %s
    region: us-east-1
    regionendpoint: http://%s
    forcepathstyle: true
    bucket: dist
    secure: false
    v4auth: true
    rootdirectory: /
  redirect:
    disable: true
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:%d
  secret: regbench-not-secret
`

func (b *bench) startDistS3(ctx context.Context, v *versity) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(b.work, "distribution-s3.yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, distS3Config, s3Access, s3Secret, v.addr, port), 0o640); err != nil {
		return nil, err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	s, err := startProcess(ctx, "distribution-s3", filepath.Join(b.work, "distribution-s3.log"), base+"/v2/", distEnv, b.o.distBin, "serve", cfg)
	if err != nil {
		return nil, err
	}
	s.base = base
	return s, nil
}

// phaseS3 measures, against one versitygw: the 1 GiB blob PUT through xloud-image's S3 store
// and through Distribution's s3-aws driver; the GET of that blob through xloud-image and a
// plain ranged GET of its object from versitygw; the requests of a push in 1 MiB chunks
// (server-side copies counted); and the peak RSS of each during the large upload.
func (b *bench) phaseS3(ctx context.Context) error {
	v, err := b.startVersity(ctx)
	if err != nil {
		return err
	}
	defer v.stop()
	storeURL := fmt.Sprintf("s3://%s:%s@xloud/blobs?endpoint=http://%s&region=us-east-1", s3Access, s3Secret, v.addr)
	xs, err := startXloud(ctx, b.o.xloudBin, b.work, "xloud-s3", "--store", "s3="+storeURL)
	if err != nil {
		return err
	}
	defer xs.stop()
	ds, err := b.startDistS3(ctx, v)
	if err != nil {
		return err
	}
	defer ds.stop()
	r := &b.res.s3
	targets := []putTarget{
		{"xloud-image s3", b.putRegistry(xs, "bench/s3put"), &r.putXloud},
		{"distribution s3", b.putRegistry(ds, "bench/s3put"), &r.putDist},
	}
	for i := range b.o.runs {
		for _, t := range rotate(targets, i) {
			if err := b.prepareWrite(b.files[i].path); err != nil {
				return err
			}
			sec, err := t.run(ctx, i, b.files[i])
			if err != nil {
				return fmt.Errorf("S3 PUT run %d, %s: %w", i+1, t.name, err)
			}
			val := mbps(int64(b.o.size), sec)
			*t.out = append(*t.out, val)
			b.logf("S3 PUT run %d %-16s %8.1f MB/s (%.2fs)", i+1, t.name, val, sec)
		}
	}
	if err := b.s3Gets(ctx, v, xs); err != nil {
		return err
	}
	if err := b.s3RedirectGets(ctx, storeURL); err != nil {
		return err
	}
	if err := b.s3Chunked(ctx, v, xs, ds); err != nil {
		return err
	}
	b.logf("computing the digest of the %s RSS stream", humanBytes(int64(b.o.rssSize)))
	d := genDigest(4243, int64(b.o.rssSize))
	for _, t := range []struct {
		s   *server
		out *rssResult
	}{{xs, &r.rssXloud}, {ds, &r.rssDist}} {
		res, err := b.measureRSS(ctx, t.s, 4243, int64(b.o.rssSize), d)
		if err != nil {
			return fmt.Errorf("S3 RSS upload to %s: %w", t.s.name, err)
		}
		*t.out = res
		b.logf("S3 RSS %-16s peak %d MiB, upload %.0f MB/s", t.s.name, res.peak>>10, res.uploadMBs)
	}
	return nil
}

// s3Gets downloads run 0's blob through xloud-image, as a plain ranged GET (presigned) of
// the object that holds it straight from versitygw, and as the same ranged GET through a bare
// TCP relay (startTCPRelay), in rotating order; it reads the CPU time each process (versitygw,
// the server in the middle, the client) spent on each GET.
func (b *bench) s3Gets(ctx context.Context, v *versity, xs *server) error {
	f := b.files[0]
	key, err := objectOfSize(filepath.Join(v.root, "xloud", "blobs", "data"), int64(b.o.size))
	if err != nil {
		return err
	}
	c, err := minio.New(v.addr, &minio.Options{Creds: credentials.NewStaticV4(s3Access, s3Secret, ""), Region: "us-east-1", BucketLookup: minio.BucketLookupPath})
	if err != nil {
		return err
	}
	u, err := c.PresignedGetObject(ctx, "xloud", "blobs/data/"+key, time.Hour, nil)
	if err != nil {
		return err
	}
	raw := u.String()
	relay, relayAddr, err := startTCPRelay(ctx, b.work, v.addr)
	if err != nil {
		return err
	}
	defer relay.stop()
	// The presigned URL signs versitygw's host: the relayed GET is sent to the relay with
	// versitygw's Host header.
	viaRelay := strings.Replace(raw, "//"+v.addr+"/", "//"+relayAddr+"/", 1)
	xurl := xs.base + "/v2/bench/s3put-0/blobs/" + f.digest
	r := &b.res.s3
	targets := []struct {
		name   string
		middle *server
		get    func(verify bool) (int64, time.Duration, error)
		out    *[]float64
		cpu    *s3GetCPU
	}{
		{"xloud-image s3", xs, func(verify bool) (int64, time.Duration, error) { return b.c.getBlob(ctx, xurl, f.digest, verify) }, &r.getXloud, &r.cpuXloud},
		{"versitygw ranged", nil, func(bool) (int64, time.Duration, error) { return b.rangedGet(ctx, raw, "", int64(b.o.size)) }, &r.getRaw, &r.cpuRaw},
		{"bare TCP relay", relay, func(bool) (int64, time.Duration, error) {
			return b.rangedGet(ctx, viaRelay, v.addr, int64(b.o.size))
		}, &r.getRelay, &r.cpuRelay},
	}
	for _, t := range targets {
		if _, _, err := t.get(true); err != nil {
			return fmt.Errorf("warm-up S3 GET, %s: %w", t.name, err)
		}
	}
	for i := range b.o.runs {
		for _, t := range rotate(targets, i) {
			var mid0 float64
			if t.middle != nil {
				mid0 = procCPUSeconds(t.middle.pid())
			}
			s3cpu0, self0 := procCPUSeconds(v.pid()), rusageSeconds(syscall.RUSAGE_SELF)
			n, el, err := t.get(false)
			if err == nil && n != int64(b.o.size) {
				err = fmt.Errorf("%d bytes, want %d", n, int64(b.o.size))
			}
			if err != nil {
				return fmt.Errorf("S3 GET run %d, %s: %w", i+1, t.name, err)
			}
			t.cpu.s3 += procCPUSeconds(v.pid()) - s3cpu0
			t.cpu.client += rusageSeconds(syscall.RUSAGE_SELF) - self0
			if t.middle != nil {
				t.cpu.middle += procCPUSeconds(t.middle.pid()) - mid0
			}
			t.cpu.gets++
			val := mbps(n, el.Seconds())
			*t.out = append(*t.out, val)
			b.logf("S3 GET run %d %-16s %8.1f MB/s (%.2fs)", i+1, t.name, val, el.Seconds())
		}
	}
	return nil
}

// s3GetCPU sums the CPU seconds that the GETs of one kind cost each process.
type s3GetCPU struct {
	s3, middle, client float64
	gets               int
}

func (c s3GetCPU) String() string {
	if c.gets == 0 {
		return "not measured"
	}
	n := float64(c.gets)
	return fmt.Sprintf("versitygw %.2f, in the middle %.2f, client %.2f, in all %.2f CPU-s",
		c.s3/n, c.middle/n, c.client/n, (c.s3+c.middle+c.client)/n)
}

// s3RedirectGets pushes run 0's file into a second xloud-image whose store has redirect=
// on (same bucket) and times GETs that follow its 307 to S3.
func (b *bench) s3RedirectGets(ctx context.Context, storeURL string) error {
	xr, err := startXloud(ctx, b.o.xloudBin, b.work, "xloud-s3-redirect", "--store", "s3="+storeURL+"&redirect=20m")
	if err != nil {
		return err
	}
	defer xr.stop()
	f := b.files[0]
	if _, err := b.putRegistry(xr, "bench/s3redirect")(ctx, 0, f); err != nil {
		return err
	}
	url := xr.base + "/v2/bench/s3redirect-0/blobs/" + f.digest
	if _, _, err := b.c.getBlob(ctx, url, f.digest, true); err != nil {
		return fmt.Errorf("warm-up redirected GET: %w", err)
	}
	for i := range b.o.runs {
		n, el, err := b.c.getBlob(ctx, url, f.digest, false)
		if err == nil && n != int64(b.o.size) {
			err = fmt.Errorf("%d bytes, want %d", n, int64(b.o.size))
		}
		if err != nil {
			return fmt.Errorf("redirected GET run %d: %w", i+1, err)
		}
		val := mbps(n, el.Seconds())
		b.res.s3.getRedirect = append(b.res.s3.getRedirect, val)
		b.logf("S3 GET run %d %-16s %8.1f MB/s (%.2fs)", i+1, "xloud redirect", val, el.Seconds())
	}
	return nil
}

// rangedGet reads bytes=0-(size-1) of a presigned URL (206) into a 1 MiB buffer; host, if
// set, is the Host header (the one the URL was signed for).
func (b *bench) rangedGet(ctx context.Context, url, host string, size int64) (int64, time.Duration, error) {
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if host != "" {
		req.Host = host
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=0-%d", size-1))
	resp, err := b.c.do(req, http.StatusPartialContent)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	sink := &discard{}
	_, err = io.CopyBuffer(writerOnly{sink}, resp.Body, make([]byte, 1<<20))
	return sink.n, time.Since(start), err
}

// objectOfSize finds the object file of that size under dir (versitygw keeps an object as a
// plain file under its bucket directory).
func objectOfSize(dir string, size int64) (string, error) {
	var found string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || found != "" {
			return err
		}
		if info, err := e.Info(); err == nil && info.Size() == size {
			found, _ = filepath.Rel(dir, p)
		}
		return nil
	})
	if err == nil && found == "" {
		err = fmt.Errorf("no object of %d bytes under %s", size, dir)
	}
	return filepath.ToSlash(found), err
}

// s3Chunked pushes the same fresh content in 1 MiB chunks to each registry and counts the
// requests versitygw logged for its bucket meanwhile.
func (b *bench) s3Chunked(ctx context.Context, v *versity, xs, ds *server) error {
	r := &b.res.s3
	r.chunkSize = min(int64(b.o.size), 64<<20)
	data, err := io.ReadAll(newGenReader(5151, r.chunkSize))
	if err != nil {
		return err
	}
	d := genDigest(5151, r.chunkSize)
	for _, t := range []struct {
		s      *server
		bucket string
		out    *map[string]int
	}{{xs, "xloud", &r.chunkedXloud}, {ds, "dist", &r.chunkedDist}} {
		before, err := countOps(v.accessLog, t.bucket)
		if err != nil {
			return err
		}
		if err := b.c.pushChunked(ctx, t.s.base, "bench/chunked", data, 1<<20, d); err != nil {
			return fmt.Errorf("chunked push to %s: %w", t.s.name, err)
		}
		time.Sleep(200 * time.Millisecond) // the access log is written behind
		after, err := countOps(v.accessLog, t.bucket)
		if err != nil {
			return err
		}
		for op, n := range before {
			after[op] -= n
		}
		*t.out = after
		b.logf("S3 chunked push %-16s requests: %v", t.s.name, after)
	}
	return nil
}

// countOps counts versitygw's access-log lines for bucket by operation (s3_CopyObject, …).
func countOps(path, bucket string) (map[string]int, error) {
	raw, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	out := map[string]int{}
	for _, line := range bytes.Split(raw, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) > 7 && f[1] == bucket && strings.HasPrefix(f[7], "s3_") {
			out[strings.TrimPrefix(f[7], "s3_")]++
		}
	}
	return out, nil
}

// copies is the number of server-side copies among ops.
func copies(ops map[string]int) int { return ops["CopyObject"] + ops["UploadPartCopy"] }
