//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// results is everything measured in one run.
type results struct {
	putXloud, putDist, putDD   []float64 // MB/s per run
	getXloud, getBare, getDist []float64
	manXloud, manDist          wrkResult
	rssXloud, rssDist          rssResult
	machine                    string
	loadStart, loadEnd         string
	cpu                        []phaseCPU
	notes                      []string
	elapsed                    time.Duration // without waiting for idleness
	waited                     time.Duration // waiting for the machine to be idle

	// The Image API phases, all against xloud-image: MB/s per run, and xloud-image's CPU
	// seconds per transfer.
	imgPut, regPut, imgGet, regGet             []float64
	imgPutCPU, regPutCPU, imgGetCPU, regGetCPU []float64
	s3                                         s3Results
	cache                                      cacheResults

	// md5 is this CPU's single-stream MD5 rate (MB/s per run): the ceiling of any upload that
	// computes Glance's checksum, which is one serial chain.
	md5 []float64
}

// row is one line of the table: xloud-image against a baseline.
type row struct {
	what     string
	xloud    float64
	baseline string
	base     float64
	unit     string
	target   string      // "" = for information
	met      func() bool // nil = for information
}

func (b *bench) rows() []row {
	r := &b.res
	size := humanBytes(int64(b.o.size))
	px, pd, pdd := median(r.putXloud), median(r.putDist), median(r.putDD)
	gx, gb, gd := median(r.getXloud), median(r.getBare), median(r.getDist)
	ip, rp, ig, rg := median(r.imgPut), median(r.regPut), median(r.imgGet), median(r.regGet)
	mx, md := r.manXloud.reqPerSec, r.manDist.reqPerSec
	rx, rd := float64(r.rssXloud.peak)/1024, float64(r.rssDist.peak)/1024
	rows := []row{
		{size + " blob PUT, monolithic", px, "Distribution", pd, "MB/s", "≥ 1.10x", func() bool { return px >= 1.1*pd }},
		{size + " blob PUT vs the disk", px, "dd conv=fdatasync", pdd, "MB/s", "≥ 0.85x", func() bool { return px >= 0.85*pdd }},
		{size + " blob GET, warm cache", gx, "net/http ServeContent", gb, "MB/s", "≥ 0.85x", func() bool { return gx >= 0.85*gb }},
		{size + " blob GET, warm cache", gx, "Distribution", gd, "MB/s", "", nil},
		{size + " image upload, Image API (all hashes, index)", ip, "Registry API blob PUT, same server", rp, "MB/s", "≥ 0.85x", func() bool { return ip >= 0.85*rp }},
		{size + " image upload, Image API", ip, "single-stream MD5 of this CPU (its ceiling)", median(r.md5), "MB/s", "", nil},
		{size + " image download, Image API, warm cache", ig, "Registry API blob GET, same server", rg, "MB/s", "≥ 0.90x", func() bool { return ig >= 0.9*rg }},
		{fmt.Sprintf("manifest GET by tag (wrk -t%d -c%d)", b.o.wrkThreads, b.o.wrkConns), mx, "Distribution", md, "req/s", "≥ 3x", func() bool { return mx >= 3*md }},
		{"peak RSS during a " + humanBytes(int64(b.o.rssSize)) + " upload", rx, "Distribution", rd, "MiB", "< 100 MiB", func() bool { return rx < 100 }},
	}
	s3 := r.s3
	sx, sd := median(s3.putXloud), median(s3.putDist)
	sgx, sgr := median(s3.getXloud), median(s3.getRaw)
	srx, srd := float64(s3.rssXloud.peak)/1024, float64(s3.rssDist.peak)/1024
	cx, cd := float64(copies(s3.chunkedXloud)), float64(copies(s3.chunkedDist))
	rows = append(rows,
		row{size + " blob PUT into S3 (versitygw)", sx, "Distribution s3-aws driver", sd, "MB/s", "≥ 1.10x", func() bool { return sx >= 1.1*sd }},
		row{size + " blob GET from S3", sgx, "ranged GET of the object from versitygw", sgr, "MB/s", "≥ 0.90x", func() bool { return sgx >= 0.9*sgr }},
		row{size + " blob GET from S3, store with redirect= (307 followed)", median(s3.getRedirect), "ranged GET of the object from versitygw", sgr, "MB/s", "", nil},
		row{size + " ranged GET through a bare TCP relay (kernel splice, no HTTP)", median(s3.getRelay), "ranged GET of the object from versitygw", sgr, "MB/s", "", nil},
		row{size + " blob GET from S3", sgx, "the same GET through the bare TCP relay", median(s3.getRelay), "MB/s", "", nil},
		row{"peak RSS during a " + humanBytes(int64(b.o.rssSize)) + " S3 upload", srx, "Distribution s3-aws driver", srd, "MiB", "< 150 MiB", func() bool { return srx < 150 }},
		row{fmt.Sprintf("server-side copies in a %s push of 1 MiB chunks", humanBytes(s3.chunkSize)), cx, "Distribution s3-aws driver", cd, "requests", "0", func() bool { return s3.chunkSize > 0 && cx == 0 }},
	)
	c := r.cache
	cw, cf, cc, cn := median(c.warm), median(c.fs), median(c.cold), median(c.nocache)
	rows = append(rows,
		row{size + " blob GET served from the node cache (--cache-dir)", cw, "GET of the same blob from the filesystem store", cf, "MB/s", "≥ 0.90x", func() bool { return cw >= 0.9*cf }},
		row{size + " first (cold) blob GET through the cache, from S3", cc, "GET from the S3 store without a cache", cn, "MB/s", "≥ 0.80x", func() bool { return cc >= 0.8*cn }},
		row{size + " first (cold) blob GET through the cache, from S3", cc, "ranged GET of the object from versitygw", median(c.raw), "MB/s", "", nil},
	)
	return rows
}

// table renders the main table in Markdown.
func (b *bench) table() string {
	var sb strings.Builder
	sb.WriteString("| measurement | xloud-image | baseline | baseline value | ratio (xloud/baseline) | target | met |\n")
	sb.WriteString("|---|--:|---|--:|--:|---|---|\n")
	for _, r := range b.rows() {
		if r.xloud == 0 && r.base == 0 {
			continue // not measured in this run (-phases)
		}
		ratio := "–"
		if r.base > 0 {
			ratio = fmt.Sprintf("%.2fx", r.xloud/r.base)
		}
		target, met := "info", ""
		if r.met != nil {
			target, met = r.target, "no"
			if r.met() {
				met = "yes"
			}
		}
		fmt.Fprintf(&sb, "| %s | %s %s | %s | %s %s | %s | %s | %s |\n",
			r.what, num(r.xloud), r.unit, r.baseline, num(r.base), r.unit, ratio, target, met)
	}
	return sb.String()
}

// num formats a measurement with precision that suits its size.
func num(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func runs(xs []float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = num(x)
	}
	return strings.Join(s, ", ")
}

// details lists every run and the method, under the table.
func (b *bench) details() string {
	r := &b.res
	var sb strings.Builder
	sb.WriteString("\nEvery run (MB/s; median in the table):\n\n")
	fmt.Fprintf(&sb, "- PUT xloud-image: %s; Distribution: %s; dd: %s\n", runs(r.putXloud), runs(r.putDist), runs(r.putDD))
	fmt.Fprintf(&sb, "- GET xloud-image: %s; ServeContent: %s; Distribution: %s\n", runs(r.getXloud), runs(r.getBare), runs(r.getDist))
	fmt.Fprintf(&sb, "- Image API upload: %s; Registry API PUT: %s; xloud-image CPU per upload (median): %.2f s and %.2f s\n",
		runs(r.imgPut), runs(r.regPut), median(r.imgPutCPU), median(r.regPutCPU))
	fmt.Fprintf(&sb, "- Image API download: %s; Registry API GET: %s; xloud-image CPU per download (median): %.2f s and %.2f s\n",
		runs(r.imgGet), runs(r.regGet), median(r.imgGetCPU), median(r.regGetCPU))
	for _, m := range []struct {
		name string
		w    wrkResult
	}{{"xloud-image", r.manXloud}, {"Distribution", r.manDist}} {
		fmt.Fprintf(&sb, "- manifest GET %s: %.0f req/s, latency p50 %s, p99 %s\n", m.name, m.w.reqPerSec, m.w.p50, m.w.p99)
	}
	for _, m := range []struct {
		name string
		r    rssResult
	}{{"xloud-image", r.rssXloud}, {"Distribution", r.rssDist}} {
		fmt.Fprintf(&sb, "- RSS %s: VmHWM over the upload %.1f MiB (largest sampled VmRSS %.1f MiB); VmHWM of all earlier phases %.1f MiB; upload %.0f MB/s\n",
			m.name, float64(m.r.peak)/1024, float64(m.r.sampled)/1024, float64(m.r.wholeRun)/1024, m.r.uploadMBs)
	}
	if s3 := r.s3; len(s3.putXloud) > 0 {
		fmt.Fprintf(&sb, "- S3 PUT xloud-image: %s; Distribution s3-aws: %s\n", runs(s3.putXloud), runs(s3.putDist))
		fmt.Fprintf(&sb, "- S3 GET xloud-image: %s; ranged GET from versitygw: %s; through the bare TCP relay: %s; with redirect= (307 followed): %s\n", runs(s3.getXloud), runs(s3.getRaw), runs(s3.getRelay), runs(s3.getRedirect))
		fmt.Fprintf(&sb, "- S3 GET CPU per GET (mean): through xloud-image: %s; straight from versitygw: %s; through the bare TCP relay: %s\n", s3.cpuXloud, s3.cpuRaw, s3.cpuRelay)
		fmt.Fprintf(&sb, "- S3 RSS xloud-image: VmHWM %.1f MiB (sampled %.1f MiB); Distribution s3-aws: %.1f MiB (sampled %.1f MiB)\n",
			float64(s3.rssXloud.peak)/1024, float64(s3.rssXloud.sampled)/1024, float64(s3.rssDist.peak)/1024, float64(s3.rssDist.sampled)/1024)
		fmt.Fprintf(&sb, "- S3 requests of a %s push in 1 MiB chunks: xloud-image %v; Distribution %v\n", humanBytes(s3.chunkSize), s3.chunkedXloud, s3.chunkedDist)
	}
	if c := r.cache; len(c.cold) > 0 {
		fmt.Fprintf(&sb, "- cache GET cold (fills): %s; S3 without cache: %s; versitygw ranged: %s; from the cache: %s; filesystem store: %s\n",
			runs(c.cold), runs(c.nocache), runs(c.raw), runs(c.warm), runs(c.fs))
		fmt.Fprintf(&sb, "- xloud-image CPU per GET (median): cold through the cache %.2f s (%.2f s to the fill's commit), from S3 without a cache %.2f s\n",
			median(c.coldCPU), median(c.coldFillCPU), median(c.nocacheCPU))
	}
	fmt.Fprintf(&sb, "\nMethod: %d runs of each PUT and GET, median reported; MB/s = 10^6 bytes/s. ", b.o.runs)
	sb.WriteString("PUT: POST then one PUT ?digest= with the whole body (Content-Length, sent with sendfile from a file of fresh random data per run, " +
		"so nothing dedupes); before each PUT and each dd: sync, drop the page cache, read the source file back in; " +
		"dd if=<the same file> of=<the registries' filesystem> bs=4M conv=fdatasync, time as dd reports it; the three targets rotate order each run. ")
	sb.WriteString("GET: the first run's blob, streamed to a discarding 1 MiB buffer, after one verified warm-up read per server; " +
		"the bare server is a separate process doing http.ServeContent over *os.File of xloud-image's own blob file. ")
	sb.WriteString("Image API (both sides xloud-image, the same server): upload = POST /v2/images (raw, bare) then PUT /v2/images/{id}/file " +
		"(application/octet-stream, Content-Length, sendfile from a file of fresh random data), timed from the POST to the PUT's 204, when the image is active: " +
		"MD5, sha256 and the containerDisk layer hash computed and the VM-image index published (checked afterwards, untimed: status, size, checksum, os_hash_value, index tag); " +
		"against a POST + monolithic PUT ?digest= of another fresh file of the same size through the Registry API; the same cache discipline as PUT before each, the two rotate order each run. " +
		"Download = GET /v2/images/{id}/file of the first run's image on the API port against GET /v2/<its repository>/blobs/<os_hash_value> on the registry port: " +
		"one file on disk, warm cache, verified warm-up read each, streamed to a discarding 1 MiB buffer, order rotating; ")
	fmt.Fprintf(&sb, "%d downloads of each (%d per run: they are short and scatter on a shared machine), median reported. ", imageGetRounds*b.o.runs, imageGetRounds)
	fmt.Fprintf(&sb, "Manifest GET: OCI image (config, one 4 KiB layer) tagged %s, wrk with the Accept header of a pulling client, %s after a 1 s warm-up. ", smallTag, b.o.wrkDuration)
	sb.WriteString("RSS: one monolithic PUT streamed from a ChaCha8 generator (digest from a first pass), VmHWM reset (clear_refs 5) before and read after. ")
	sb.WriteString("S3: one versitygw v1.8.0 (posix, sidecar metadata, access log on) on the same filesystem serves both; xloud-image with --store s3=s3://xloud/blobs, " +
		"Distribution v3 with its s3-aws driver (forcepathstyle, redirect disabled, in-memory descriptor cache) on bucket dist; PUT and GET as above; " +
		"the raw GET is a presigned GET of the object holding xloud-image's blob with Range: bytes=0-<size-1> (206); " +
		"the relayed GET is the same request sent through a bare TCP relay in front of versitygw (a separate process of this benchmark: per connection, one io.Copy each way between two TCP connections, which Go does with splice; no HTTP parsing, no buffer of its own): the least work any server between the client and S3 can do, so its ratio shows what one more hop costs on this machine; " +
		"the three GETs rotate order each run, and the CPU time of versitygw, of the process in the middle and of the client (this benchmark) is read around each; the chunked push is POST, PATCHes of 1 MiB with Content-Range, PUT ?digest=, " +
		"with versitygw's access-log lines for each bucket counted by operation. ")
	sb.WriteString("Image cache: a third xloud-image over its own versitygw bucket with --cache-dir (max 2x the blob), a fourth on the same bucket without a cache, and the filesystem xloud-image, each pushed run 0's file; " +
		"each run clears the cache (DELETE /v2/cache), then times in rotating order the cold GET through the cache (the client is sent the S3 stream as without a cache, each 1 MiB buffer then handed to a cache writer that writes it with O_DIRECT; a writer more than 8 buffers behind is detached and, once the client has every byte, fetches the rest of the file with a ranged GET from S3; the rest of the fill, the digest check (the file read back with O_DIRECT), fsync and rename are waited for outside the timing, and the CPU they take after the GET is reported apart), " +
		"the GET from the store without a cache and the raw ranged GET of the object; then a verified GET from the cache, then " + fmt.Sprintf("%d GETs from the cache (sendfile) and %d from the filesystem store, alternating, in rotating order (%d of each in all, median); ", warmPairs, warmPairs, warmPairs*b.o.runs) + "the S3 object and both local files are in the page cache throughout; the serving xloud-image's CPU time (/proc/<pid>/stat) is read before and after each cold GET (and again at the fill's commit) and each GET without a cache. ")
	sb.WriteString("Both registries fsync at commit (Distribution: filesystem driver, in-memory blob descriptor cache, access log off; xloud-image: embedded store, --auth none, log level warn).\n")
	fmt.Fprintf(&sb, "\nMachine load: load average %s at the start, %s at the end; CPU used by processes other than the benchmark's:", r.loadStart, r.loadEnd)
	for i, c := range r.cpu {
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(&sb, "%s %s %.0f%%", sep, c.name, c.othersPercent)
		if c.stealPercent >= 1 {
			fmt.Fprintf(&sb, " (+%.0f%% stolen by the hypervisor)", c.stealPercent)
		}
	}
	sb.WriteString(" (of all CPUs).\n")
	if len(r.notes) > 0 {
		sb.WriteString("\nNotes:\n\n")
		for _, n := range r.notes {
			fmt.Fprintf(&sb, "- %s\n", n)
		}
	}
	return sb.String()
}

// report prints the table and writes the results file.
func (b *bench) report() error {
	body := b.table()
	fmt.Print(body)
	if b.o.out == "" {
		return nil
	}
	var sb strings.Builder
	sb.WriteString("# Benchmark: xloud-image and Distribution, side by side\n\n")
	fmt.Fprintf(&sb, "Run %s (%s, plus %s waiting for an idle machine) by `scripts/bench.sh` (`make bench`).\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), b.res.elapsed.Round(time.Second), b.res.waited.Round(time.Second))
	sb.WriteString(b.res.machine + "\n")
	sb.WriteString(body)
	sb.WriteString(b.details())
	if err := os.MkdirAll(filepath.Dir(b.o.out), 0o750); err != nil {
		return err
	}
	if err := os.WriteFile(b.o.out, []byte(sb.String()), 0o644); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "results written to", b.o.out)
	return nil
}

// machineInfo describes where the run happened, for the results file.
func machineInfo(work string, o options) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "- Machine: %d CPUs (nproc), %s, %s RAM, Linux %s\n",
		runtime.NumCPU(), cpuModel(), memTotal(), strings.TrimSpace(readFile("/proc/sys/kernel/osrelease")))
	fmt.Fprintf(&sb, "- Data: %s (%s)\n", work, filesystem(work))
	fmt.Fprintf(&sb, "- xloud-image %s; %s; %s; bench built with %s\n",
		firstLine(runQuiet("git", "describe", "--always", "--dirty")),
		"Distribution "+lastField(firstLine(runQuiet(o.distBin, "--version"))),
		firstFields(firstLine(runQuiet(o.wrkBin, "-v")), 2), runtime.Version())
	fmt.Fprintf(&sb, "- Sizes: blob %s, RSS upload %s, %d runs, wrk %d threads %d connections %s\n",
		humanBytes(int64(o.size)), humanBytes(int64(o.rssSize)), o.runs, o.wrkThreads, o.wrkConns, o.wrkDuration)
	return sb.String()
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func firstLine(s string, err error) string {
	if err != nil && s == "" {
		return "unknown"
	}
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

func firstFields(s string, n int) string {
	f := strings.Fields(s)
	return strings.Join(f[:min(n, len(f))], " ")
}

func lastField(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return "unknown"
	}
	return f[len(f)-1]
}

func cpuModel() string {
	for _, l := range strings.Split(readFile("/proc/cpuinfo"), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func memTotal() string {
	for _, l := range strings.Split(readFile("/proc/meminfo"), "\n") {
		var kb int64
		if _, err := fmt.Sscanf(l, "MemTotal: %d kB", &kb); err == nil {
			return humanBytes(kb << 10)
		}
	}
	return "unknown"
}

// filesystem names the type and device of the filesystem holding dir.
func filesystem(dir string) string {
	var st syscall.Statfs_t
	fsType := "unknown fs"
	if syscall.Statfs(dir, &st) == nil {
		names := map[int64]string{0xEF53: "ext4", 0x58465342: "xfs", 0x9123683E: "btrfs", 0x01021994: "tmpfs", 0x794c7630: "overlayfs", 0x2FC12FC1: "zfs"}
		if n, ok := names[int64(st.Type)]; ok {
			fsType = n
		}
	}
	dev, best := "", ""
	for _, l := range strings.Split(readFile("/proc/mounts"), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && strings.HasPrefix(dir, f[1]) && len(f[1]) > len(best) {
			best, dev = f[1], f[0]
		}
	}
	return fmt.Sprintf("%s on %s, mounted at %s", fsType, dev, best)
}
