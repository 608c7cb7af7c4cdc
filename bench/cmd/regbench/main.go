//go:build linux

// The benchmark reads /proc and getrusage and kills its servers with Pdeathsig: Linux only.

// Command regbench measures xloud-image against CNCF Distribution on the same machine, in one
// run, on the same data: a monolithic blob PUT (against the disk's durable write speed too), a
// blob GET (against a bare net/http ServeContent of the same file), manifest GETs by tag under
// wrk, and the peak RSS of each server while a large blob is uploaded. It also measures
// xloud-image's Image API against its own Registry API: an image upload (PUT
// /v2/images/{id}/file, every hash and the VM-image index included) against a blob PUT of as
// many fresh bytes, and the image's download against a blob GET of the same disk blob. It
// starts and stops every server itself, prints a Markdown table and writes it to -out.
//
//	regbench [-size 1GiB] [-rss-size 4GiB] [-wrk-duration 10s] [-runs 3] [-quick] [-dir DIR]
//
// scripts/bench.sh builds the binaries and runs it (make bench).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options is everything the command line can set.
type options struct {
	size        byteSize // blob size of the PUT and GET measurements
	rssSize     byteSize // blob size of the RSS measurement
	runs        int      // repetitions of each PUT and GET; the median is reported
	wrkDuration time.Duration
	wrkConns    int
	wrkThreads  int
	dir         string // parent of the temporary working directory
	keep        bool   // keep the working directory (blobs, logs) at the end
	xloudBin    string
	distBin     string
	versityBin  string // versitygw, the S3 server of the S3 phase
	wrkBin      string
	out         string // results file; "" prints only
	dropCaches  bool
	profileDir  string // if set, perf profiles of xloud-image land here
	quick       bool
	waitIdle    time.Duration   // wait up to this long in all for the machine to be idle before phases
	phases      map[string]bool // run only these phases (by id); nil: all
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == tcpRelayCmd {
		// It relays until killed: it returns only on failure.
		fmt.Fprintln(os.Stderr, "regbench tcp-relay:", tcpRelay(os.Args[2:]))
		os.Exit(1)
	}
	if len(os.Args) > 1 && os.Args[1] == serveFileCmd {
		if err := serveFile(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "regbench serve-file:", err)
			os.Exit(1)
		}
		return
	}
	o, err := parseOptions(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "regbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "regbench:", err)
		os.Exit(1)
	}
}

func parseOptions(args []string) (options, error) {
	o := options{size: 1 << 30, rssSize: 4 << 30}
	fs := flag.NewFlagSet("regbench", flag.ContinueOnError)
	fs.Var(&o.size, "size", "blob size for the PUT and GET measurements (e.g. 1GiB, 64MiB)")
	fs.Var(&o.rssSize, "rss-size", "blob size uploaded while peak RSS is measured")
	fs.IntVar(&o.runs, "runs", 3, "repetitions of each PUT and GET (median reported)")
	fs.DurationVar(&o.wrkDuration, "wrk-duration", 10*time.Second, "duration of each wrk run")
	fs.IntVar(&o.wrkConns, "wrk-connections", 32, "wrk connections")
	fs.IntVar(&o.wrkThreads, "wrk-threads", 2, "wrk threads")
	fs.StringVar(&o.dir, "dir", os.TempDir(), "where the temporary working directory is made (data of both registries and dd's file: one filesystem)")
	fs.BoolVar(&o.keep, "keep", false, "keep the working directory (blobs, server logs, wrk output)")
	fs.StringVar(&o.xloudBin, "xloud", "bin/xloud-image", "xloud-image binary")
	fs.StringVar(&o.distBin, "distribution", defaultDistribution(), "Distribution v3 registry binary")
	fs.StringVar(&o.wrkBin, "wrk", "wrk", "wrk binary")
	fs.StringVar(&o.versityBin, "versitygw", defaultTool("versitygw"), "versitygw binary (the S3 server of the S3 phase)")
	fs.StringVar(&o.out, "out", "bench/results.md", "write the results here (overwritten); -quick does not write unless -out is given")
	fs.BoolVar(&o.dropCaches, "drop-caches", true, "sync and drop the page cache before each PUT (needs root)")
	fs.StringVar(&o.profileDir, "profile", "", "after measuring, profile one xloud-image blob PUT and GET, Image API upload and download, and 3 s of manifest GETs with perf into this directory")
	fs.DurationVar(&o.waitIdle, "wait-idle", 0, "before each phase, wait (up to this long in all) for a 2 s moment when other processes use under 10% of the CPUs")
	fs.BoolVar(&o.quick, "quick", false, "small sizes for checking the harness: -size 64MiB -rss-size 256MiB -wrk-duration 2s (explicit flags win)")
	only := fs.String("phases", "", "run only these phases, comma-separated: "+strings.Join(phaseIDs, ",")+" (image-get needs image-put)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if *only != "" {
		o.phases = map[string]bool{}
		for _, id := range strings.Split(*only, ",") {
			if !slices.Contains(phaseIDs, id) {
				return o, fmt.Errorf("-phases: unknown phase %q (known: %s)", id, strings.Join(phaseIDs, ","))
			}
			o.phases[id] = true
		}
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		if !set["size"] {
			o.size = 64 << 20
		}
		if !set["rss-size"] {
			o.rssSize = 256 << 20
		}
		if !set["wrk-duration"] {
			o.wrkDuration = 2 * time.Second
		}
		if !set["out"] {
			o.out = ""
		}
	}
	if o.runs < 1 || o.size < 1 || o.rssSize < 1 {
		return o, fmt.Errorf("-runs, -size and -rss-size must be positive")
	}
	return o, nil
}

// defaultDistribution is registry where go install puts it.
func defaultDistribution() string { return defaultTool("registry") }

// defaultTool is where go install puts name.
func defaultTool(name string) string {
	if gp := os.Getenv("GOPATH"); gp != "" {
		return filepath.Join(gp, "bin", name)
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, "go", "bin", name)
}
