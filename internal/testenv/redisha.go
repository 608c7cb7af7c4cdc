package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions choose how a RedisServer runs.
type RedisOptions struct {
	// AOF turns on the append-only file with fsync at every write, so a killed server loses
	// nothing it acknowledged.
	AOF bool
	// ReplicaOf (host:port) makes the server a replica of that primary.
	ReplicaOf string
}

// RedisServer is a redis-server the test can kill and start again on the same port and data.
type RedisServer struct {
	t    testing.TB
	Port int
	Dir  string
	opt  RedisOptions
	mu   sync.Mutex
	cmd  *exec.Cmd
}

// StartRedisServer starts a redis-server on a free loopback port; it is killed when the test
// ends.
func StartRedisServer(t testing.TB, opt RedisOptions) *RedisServer {
	t.Helper()
	r := &RedisServer{t: t, Port: FreePort(t), Dir: t.TempDir(), opt: opt}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// Addr is host:port.
func (r *RedisServer) Addr() string { return fmt.Sprintf("127.0.0.1:%d", r.Port) }

// URL is the server's redis:// URL, database 0.
func (r *RedisServer) URL() string { return "redis://" + r.Addr() + "/0" }

// Start starts the server (again) on its port and data directory and waits until it
// answers PING (so it has loaded its AOF).
func (r *RedisServer) Start() {
	r.t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		r.t.Fatalf("redis-server not installed (run scripts/install-deps.sh): %v", err)
	}
	args := []string{"--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1", "--dir", r.Dir,
		"--save", "", "--protected-mode", "yes"}
	if r.opt.AOF {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	if r.opt.ReplicaOf != "" {
		host, port, _ := strings.Cut(r.opt.ReplicaOf, ":")
		args = append(args, "--replicaof", host, port)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cmd := exec.Command(bin, args...)
	logf, _ := os.OpenFile(filepath.Join(r.Dir, "redis.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	r.cmd = cmd
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c.Ping(context.Background()).Err() == nil {
			return
		}
	}
	r.t.Fatalf("redis-server on %s did not answer", r.Addr())
}

// Stop kills the server (SIGKILL, as a crash would) and waits for it.
func (r *RedisServer) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

// Client is a go-redis client of the server, closed when the test ends.
func (r *RedisServer) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	r.t.Cleanup(func() { c.Close() })
	return c
}

// Sentinel is one redis-server in sentinel mode watching a primary named Master.
type Sentinel struct {
	Port   int
	Master string
}

// Addr is host:port.
func (s *Sentinel) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.Port) }

// URL is the redis+sentinel:// URL of the watched primary.
func (s *Sentinel) URL() string { return fmt.Sprintf("redis+sentinel://%s/%s/0", s.Addr(), s.Master) }

// StartSentinel starts a sentinel watching the primary at addr under the name master, with a
// quorum of one and a short down-after, so a killed primary is failed over within seconds.
func StartSentinel(t testing.TB, primary, master string) *Sentinel {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not installed (run scripts/install-deps.sh): %v", err)
	}
	s := &Sentinel{Port: FreePort(t), Master: master}
	dir := t.TempDir()
	host, port, _ := strings.Cut(primary, ":")
	conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s 1\n"+
		"sentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 5000\nsentinel parallel-syncs %s 1\n",
		s.Port, dir, master, host, port, master, master, master)
	file := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, file, "--sentinel")
	logf, _ := os.Create(filepath.Join(dir, "sentinel.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sentinel: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() })
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr()})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if addr, err := c.GetMasterAddrByName(context.Background(), master).Result(); err == nil && len(addr) == 2 {
			return s
		}
	}
	t.Fatalf("sentinel on %s does not know primary %s", s.Addr(), master)
	return nil
}

// PrimaryAddr asks the sentinel where the primary is now.
func (s *Sentinel) PrimaryAddr(ctx context.Context) (string, error) {
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr()})
	defer c.Close()
	addr, err := c.GetMasterAddrByName(ctx, s.Master).Result()
	if err != nil {
		return "", err
	}
	return addr[0] + ":" + addr[1], nil
}

// WaitReplicaSynced waits until the replica's link to its primary is up.
func WaitReplicaSynced(t testing.TB, replica *RedisServer) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	defer c.Close()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		info, err := c.Info(context.Background(), "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") {
			return
		}
	}
	t.Fatalf("replica %s did not sync with its primary", replica.Addr())
}
