//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The machine may be shared (tests of other work running beside the benchmark). Each phase
// records how much CPU went to processes that are not the benchmark's, so a disturbed number
// says so.

// cpuSnap is a point in time: seconds of CPU since boot spent in processes (user, nice,
// system; interrupts left out, since the kernel charges them to no process), in all, stolen,
// and the parts of the process time that the benchmark's own processes and the kernel's
// threads (writeback, journal: working for the benchmark's writes) used.
type cpuSnap struct {
	busy, total, steal, ours, kernel float64
}

// phaseCPU is what one phase left to others.
type phaseCPU struct {
	name          string
	othersPercent float64 // CPU of other processes, in % of the machine (all CPUs)
	stealPercent  float64 // time the hypervisor took, in % of the machine
}

const userHZ = 100 // /proc/stat and /proc/<pid>/stat count in these ticks on Linux

func (b *bench) cpuSnapshot() cpuSnap {
	var s cpuSnap
	line, _, _ := strings.Cut(readFile("/proc/stat"), "\n")
	f := strings.Fields(line)
	for i := 1; i < len(f) && i <= 8; i++ {
		v, _ := strconv.ParseFloat(f[i], 64)
		v /= userHZ
		s.total += v
		switch i {
		case 1, 2, 3: // user, nice, system
			s.busy += v
		case 8:
			s.steal = v
		}
	}
	s.ours = rusageSeconds(syscall.RUSAGE_SELF) + rusageSeconds(syscall.RUSAGE_CHILDREN)
	for _, srv := range []*server{b.xloud, b.dist} {
		if srv != nil {
			s.ours += procCPUSeconds(srv.pid())
		}
	}
	s.kernel = kernelThreadsCPUSeconds()
	return s
}

// kernelThreadsCPUSeconds sums the CPU time of the kernel's threads (PF_KTHREAD).
func kernelThreadsCPUSeconds() float64 {
	ents, _ := os.ReadDir("/proc")
	var sum float64
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := procStatFields(pid); len(f) > 12 {
			if flags, _ := strconv.ParseUint(f[6], 10, 64); flags&0x00200000 != 0 {
				sum += ticks(f[11]) + ticks(f[12])
			}
		}
	}
	return sum
}

// procStatFields is /proc/<pid>/stat from field 3 (state) on: f[6] is flags (field 9),
// f[11] and f[12] are utime and stime (fields 14, 15).
func procStatFields(pid int) []string {
	s := readFile(fmt.Sprintf("/proc/%d/stat", pid))
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

func ticks(s string) float64 {
	v, _ := strconv.ParseFloat(s, 64)
	return v / userHZ
}

func rusageSeconds(who int) float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(who, &ru) != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// procCPUSeconds is a live process's user+system time.
func procCPUSeconds(pid int) float64 {
	f := procStatFields(pid)
	if len(f) < 13 {
		return 0
	}
	return ticks(f[11]) + ticks(f[12])
}

// othersSince is the CPU that other processes used between two snapshots.
func othersSince(name string, a, z cpuSnap) phaseCPU {
	total := z.total - a.total
	if total <= 0 {
		return phaseCPU{name: name}
	}
	others := max(0, (z.busy-a.busy)-(z.ours-a.ours)-(z.kernel-a.kernel))
	return phaseCPU{name: name, othersPercent: 100 * others / total, stealPercent: 100 * (z.steal - a.steal) / total}
}

func loadAvg() string {
	f := strings.Fields(readFile("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// waitIdle waits, up to limit, for a 2 s window in which processes other than ours used
// under 10% of the CPUs; it reports whether it saw one.
func (b *bench) waitIdle(ctx context.Context, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		a := b.cpuSnapshot()
		select {
		case <-ctx.Done():
			return false
		case <-time.After(2 * time.Second):
		}
		c := othersSince("idle", a, b.cpuSnapshot())
		if c.othersPercent < 10 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		b.logf("waiting for the machine to be idle: others use %.0f%% of the CPUs", c.othersPercent)
	}
}
