//go:build linux

package main

import (
	"io"
	"testing"
	"time"
)

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1GiB": 1 << 30, "64MiB": 64 << 20, "4G": 4 << 30, "500MB": 500e6, "1048576": 1 << 20, "1.5GiB": 3 << 29,
	} {
		var b byteSize
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "-1MiB", "x"} {
		var b byteSize
		if err := b.Set(in); err == nil {
			t.Errorf("Set(%q) accepted", in)
		}
	}
}

func TestQuickDefaults(t *testing.T) {
	o, err := parseOptions([]string{"-quick", "-size", "32MiB"})
	if err != nil {
		t.Fatal(err)
	}
	if o.size != 32<<20 || o.rssSize != 256<<20 || o.wrkDuration != 2*time.Second || o.out != "" {
		t.Errorf("quick options = %+v", o)
	}
}

func TestMedian(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
}

// The generator's stream must not depend on read sizes: the digest comes from one pass and
// the upload from another, read by net/http in its own sizes.
func TestGenReaderStable(t *testing.T) {
	const n = 3<<20 + 17
	want := genDigest(5, n)
	got, _ := io.ReadAll(io.LimitReader(oddReader{newGenReader(5, n)}, n+10))
	if len(got) != n || sha(got) != want {
		t.Fatalf("len %d, digest %s, want %s", len(got), sha(got), want)
	}
	if genDigest(6, n) == want {
		t.Fatal("seeds give the same stream")
	}
}

// oddReader reads in small, changing sizes.
type oddReader struct{ r io.Reader }

func (o oddReader) Read(p []byte) (int, error) {
	if len(p) > 7919 {
		p = p[:7919]
	}
	return o.r.Read(p)
}

func TestParseDD(t *testing.T) {
	out := "256+0 records in\n256+0 records out\n1073741824 bytes (1.1 GB, 1.0 GiB) copied, 2.82054 s, 381 MB/s\n"
	if s, ok := parseDD(out); !ok || s != 2.82054 {
		t.Errorf("parseDD = %v, %v", s, ok)
	}
}

func TestParseWrk(t *testing.T) {
	out := `Running 10s test @ http://127.0.0.1:1/v2/bench/small/manifests/latest
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   412.00us  300.00us   9.00ms   90.00%
    Req/Sec    40.00k     2.00k   45.00k    70.00%
  Latency Distribution
     50%  350.00us
     75%  450.00us
     90%  600.00us
     99%    1.50ms
  800000 requests in 10.00s, 500.00MB read
  Non-2xx or 3xx responses: 3
Requests/sec:  80000.50
Transfer/sec:     50.00MB
`
	r, err := parseWrk(out)
	if err != nil || r.reqPerSec != 80000.50 || r.non2xx != 3 || r.p50 != "350.00us" || r.p99 != "1.50ms" {
		t.Errorf("parseWrk = %+v, %v", r, err)
	}
}
