//go:build linux

package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// rssResult is a server's memory around the large upload, in KiB.
type rssResult struct {
	peak      int64   // VmHWM over the upload (since the reset; see reset)
	sampled   int64   // the largest VmRSS seen by sampling every 20 ms during the upload
	wholeRun  int64   // VmHWM before the reset: the peak of everything before this phase
	reset     bool    // whether VmHWM could be reset before the upload
	uploadMBs float64 // the upload's throughput, for information (generator-bound)
}

// phaseRSS uploads rss-size bytes into each registry in one monolithic PUT, streamed from a
// deterministic generator (its digest computed by a first pass over the same stream), and
// reads the server's peak RSS.
func (b *bench) phaseRSS(ctx context.Context) error {
	const seed = 4242
	n := int64(b.o.rssSize)
	b.logf("computing the digest of the %s RSS stream", humanBytes(n))
	d := genDigest(seed, n)
	for _, t := range []struct {
		s   *server
		out *rssResult
	}{{b.xloud, &b.res.rssXloud}, {b.dist, &b.res.rssDist}} {
		r, err := b.measureRSS(ctx, t.s, seed, n, d)
		if err != nil {
			return fmt.Errorf("RSS upload to %s: %w", t.s.name, err)
		}
		*t.out = r
		b.logf("RSS %-13s peak %d MiB (sampled %d MiB; whole run before: %d MiB), upload %.0f MB/s",
			t.s.name, r.peak>>10, r.sampled>>10, r.wholeRun>>10, r.uploadMBs)
	}
	return nil
}

func (b *bench) measureRSS(ctx context.Context, s *server, seed uint64, n int64, d string) (rssResult, error) {
	var r rssResult
	pid := s.pid()
	var err error
	if r.wholeRun, err = procStatusKiB(pid, "VmHWM"); err != nil {
		return r, err
	}
	r.reset = resetPeakRSS(pid) == nil
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if v, err := procStatusKiB(pid, "VmRSS"); err == nil && v > r.sampled {
				r.sampled = v
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	el, err := b.c.pushBlob(ctx, s.base, "bench/rss", newGenReader(seed, n), n, d)
	close(stop)
	wg.Wait()
	if err != nil {
		return r, err
	}
	r.uploadMBs = mbps(n, el.Seconds())
	r.peak, err = procStatusKiB(pid, "VmHWM")
	if !r.reset {
		b.note("could not reset %s's VmHWM: its peak includes the earlier phases", s.name)
	}
	return r, err
}
