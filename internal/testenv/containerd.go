//go:build linux

// containerd and its bind mounts are Linux only.

package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Containerd is a private containerd daemon for one test: its own config, root, state and
// gRPC socket under a temp dir, with the native snapshotter and without the plugins that need
// kernel features or a CNI (CRI, overlayfs, btrfs, devmapper, zfs, aufs).
type Containerd struct {
	Dir       string // holds config.toml, root/, state/, the sockets and containerd.log
	Address   string // gRPC socket
	Namespace string // the namespace Ctr uses

	t      testing.TB
	ctr    string
	cmd    *exec.Cmd
	log    *SyncBuffer
	exited chan struct{}
	views  map[string]string // target -> snapshot key, for mounts made by the fallback
}

// containerdConfig is a version 2 config (read by containerd 1.6 to 2.x). Disabled plugins
// that a version does not have are ignored.
const containerdConfig = `version = 2
root = %q
state = %q
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.cri.v1.images",
  "io.containerd.cri.v1.runtime",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.overlayfs",
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.snapshotter.v1.erofs",
  "io.containerd.internal.v1.opt",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = %q

[ttrpc]
  address = %q

[metrics]
  address = ""
`

// StartContainerd starts containerd (found on PATH, with ctr beside it) as the current user,
// who must be root, and waits until it answers. It is stopped, every mount left under its
// directory is detached, and the directory is removed when the test ends. A missing binary or
// a non-root user fails the test: scripts/install-deps.sh installs containerd.
func StartContainerd(t testing.TB) *Containerd {
	t.Helper()
	bin := RequireTool(t, "containerd")
	ctr := RequireTool(t, "ctr")
	if os.Geteuid() != 0 {
		t.Fatalf("containerd tests need root (they mount snapshots); euid is %d", os.Geteuid())
	}
	// Unix socket paths are limited to 108 bytes: keep the directory short, not t.TempDir().
	dir, err := os.MkdirTemp("", "ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Containerd{
		Dir:       dir,
		Address:   filepath.Join(dir, "containerd.sock"),
		Namespace: "xloud-test",
		t:         t,
		ctr:       ctr,
		log:       &SyncBuffer{},
		exited:    make(chan struct{}),
		views:     map[string]string{},
	}
	cfg := fmt.Sprintf(containerdConfig, filepath.Join(dir, "root"), filepath.Join(dir, "state"),
		c.Address, c.Address+".ttrpc")
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c.cmd = exec.Command(bin, "--config", filepath.Join(dir, "config.toml"), "--log-level", "info")
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	// Pdeathsig: a test binary that dies takes its containerd with it.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("start containerd: %v", err)
	}
	go func() { _ = c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(c.cleanup)

	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := c.Ctr("version")
		if err == nil {
			return c
		}
		select {
		case <-c.exited:
			t.Fatalf("containerd exited at start: %v\n%s", c.cmd.ProcessState, c.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd did not answer: %v\n%s\nlog:\n%s", err, out, c.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Ctr runs ctr against this daemon and namespace and returns its combined output.
func (c *Containerd) Ctr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	full := append([]string{"--address", c.Address, "--namespace", c.Namespace}, args...)
	out, err := exec.CommandContext(ctx, c.ctr, full...).CombinedOutput()
	return string(out), err
}

// ctr16MountBug is what `ctr images mount --snapshotter X` of containerd 1.6 answers when the
// default snapshotter is not loaded: it ignores the flag (containerd/containerd#6713, fixed in
// 1.7) and unpacks into overlayfs.
const ctr16MountBug = "snapshotter not loaded: overlayfs"

// MountImage mounts, read-only at target, the rootfs of an image pulled with
// `ctr images pull --snapshotter native`: with `ctr images mount --snapshotter native`, or,
// when this ctr has the 1.6 bug that ignores --snapshotter, with the same steps done by hand
// (`ctr snapshots --snapshotter native view` of chainID, then a read-only bind mount of the
// mounts it returns). It returns how it mounted, for the test log.
func (c *Containerd) MountImage(ref, platform, chainID, target string) (string, error) {
	out, err := c.Ctr("images", "mount", "--snapshotter", "native", "--platform", platform, ref, target)
	if err == nil {
		return "ctr images mount --snapshotter native", nil
	}
	if !strings.Contains(out, ctr16MountBug) {
		return "", fmt.Errorf("ctr images mount: %v\n%s", err, out)
	}
	key := "xloud-view-" + filepath.Base(target)
	// Like ctr images mount, hold the view with a lease naming it. containerd 1.6 ignores
	// such lease labels and may collect the view, which costs nothing here: a native view is
	// a read-only bind of its parent's directory, and the pulled image holds the parent.
	out, err = c.Ctr("leases", "create", "--id", key, "containerd.io/gc.ref.snapshot.native="+key)
	if err != nil {
		return "", fmt.Errorf("ctr leases create: %v\n%s", err, out)
	}
	c.views[target] = key
	out, err = c.Ctr("snapshots", "--snapshotter", "native", "view", "--mounts", key, chainID)
	if err != nil {
		return "", fmt.Errorf("ctr snapshots view %s: %v\n%s", chainID, err, out)
	}
	var mounts []struct {
		Type, Source string
		Options      []string
	}
	if err := json.Unmarshal([]byte(out), &mounts); err != nil || len(mounts) != 1 || mounts[0].Type != "bind" {
		return "", fmt.Errorf("ctr snapshots view: want one bind mount, got %s (%v)", out, err)
	}
	if err := syscall.Mount(mounts[0].Source, target, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		return "", fmt.Errorf("bind mount %s: %w", mounts[0].Source, err)
	}
	if err := syscall.Mount("", target, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		return "", fmt.Errorf("remount %s read-only: %w", target, err)
	}
	return "ctr snapshots --snapshotter native view + bind mount (ctr 1.6 ignores --snapshotter on images mount)", nil
}

// UnmountImage undoes MountImage and removes the view snapshot.
func (c *Containerd) UnmountImage(target string) error {
	key, ok := c.views[target]
	if !ok {
		if out, err := c.Ctr("images", "unmount", "--snapshotter", "native", "--rm", target); err != nil {
			return fmt.Errorf("ctr images unmount: %v\n%s", err, out)
		}
		return nil
	}
	if err := unmountBusy(target); err != nil {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	delete(c.views, target)
	if out, err := c.Ctr("snapshots", "--snapshotter", "native", "rm", key); err != nil && !strings.Contains(out, "not found") {
		return fmt.Errorf("ctr snapshots rm %s: %v\n%s", key, err, out)
	}
	if out, err := c.Ctr("leases", "delete", key); err != nil {
		return fmt.Errorf("ctr leases delete %s: %v\n%s", key, err, out)
	}
	return nil
}

// unmountBusy unmounts target, retrying while the kernel reports it busy: another process on
// this shared machine (a parallel test walking temp dirs, a page-cache writeback) can hold the
// view for a moment after the test closed its files. After two seconds of EBUSY it detaches
// lazily, which removes the mount from the namespace as soon as the last user lets go.
func unmountBusy(target string) error {
	var err error
	for i := 0; i < 20; i++ {
		if err = syscall.Unmount(target, 0); !errors.Is(err, syscall.EBUSY) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return syscall.Unmount(target, syscall.MNT_DETACH)
}

// Log returns what containerd printed so far.
func (c *Containerd) Log() string { return c.log.String() }

// Stop stops containerd with SIGTERM (SIGKILL after 10 seconds) and waits for it.
func (c *Containerd) Stop() {
	select {
	case <-c.exited:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// Running reports whether the daemon process is still alive.
func (c *Containerd) Running() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

func (c *Containerd) cleanup() {
	c.Stop()
	for _, m := range mountsUnder(c.Dir) {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			c.t.Errorf("unmount %s: %v", m, err)
		}
	}
	if left := mountsUnder(c.Dir); len(left) > 0 {
		c.t.Errorf("mounts left under %s, not removing it: %v", c.Dir, left)
		return
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		c.t.Errorf("remove %s: %v", c.Dir, err)
	}
}

// UnmountAll detaches every mount under dir (deepest first), for tests that mount images
// outside the daemon's directory.
func UnmountAll(t testing.TB, dir string) {
	t.Helper()
	for _, m := range mountsUnder(dir) {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", m, err)
		}
	}
}

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	dir = filepath.Clean(dir)
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// unescapeMount undoes the octal escapes (\040 for a space, ...) of /proc/self/mountinfo.
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%3o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
