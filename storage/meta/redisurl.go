package meta

import (
	"errors"
	"fmt"
	"io"
	"net"
	neturl "net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrUnavailable means the metadata store did not answer (refused, reset, timed out, loading
// its data, no primary): nothing was changed, and the same request may succeed later. Each
// door answers it 503 in its own format.
var ErrUnavailable = errors.New("metadata store unavailable")

// unavailableError is a store error that also matches ErrUnavailable.
type unavailableError struct{ err error }

func (e unavailableError) Error() string        { return ErrUnavailable.Error() + ": " + e.err.Error() }
func (e unavailableError) Unwrap() error        { return e.err }
func (e unavailableError) Is(target error) bool { return target == ErrUnavailable }

// retryablePrefixes are Redis replies that mean "not now" rather than "no": a server loading
// its AOF, a replica not yet promoted, a primary without replicas it was told to wait for.
var retryablePrefixes = []string{"LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "NOREPLICAS", "CLUSTERDOWN"}

// unavailable marks err as ErrUnavailable when it says Redis could not be reached or is not
// ready; other errors (nil included) pass unchanged.
func unavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	var ne net.Error
	var re redis.Error
	switch {
	case errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrClosed):
		return unavailableError{err}
	case errors.As(err, &re):
		for _, p := range retryablePrefixes {
			if strings.HasPrefix(re.Error(), p) {
				return unavailableError{err}
			}
		}
	case strings.Contains(err.Error(), "redis: all sentinels specified in configuration are unreachable"),
		strings.Contains(err.Error(), "connection refused"):
		return unavailableError{err}
	}
	return err
}

// newRedisClient builds the client url names, the replicas each write waits for, and says
// where it points for messages.
func newRedisClient(url string) (*redis.Client, Sentinel, string, error) {
	if strings.HasPrefix(url, "redis+sentinel://") {
		sc, err := ParseSentinelURL(url)
		if err != nil {
			return nil, sc, "", err
		}
		opt := sc.Options
		return redis.NewFailoverClient(opt), sc, fmt.Sprintf("primary %q via sentinels %s", opt.MasterName, strings.Join(opt.SentinelAddrs, ",")), nil
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, Sentinel{}, "", fmt.Errorf("parse redis url: %w", err)
	}
	return redis.NewClient(opt), Sentinel{}, opt.Addr, nil
}

// Sentinel is a parsed redis+sentinel:// URL: the failover client's options, and how many
// replicas must have each write before it is acknowledged (WAIT), for how long at most.
type Sentinel struct {
	Options      *redis.FailoverOptions
	WaitReplicas int
	WaitTimeout  time.Duration
}

// ParseSentinelURL reads
// redis+sentinel://[:password@]host:port[,host:port…]/master[/db][?wait_replicas=N&wait_timeout=D]:
// the sentinels to ask, the name of the primary they watch, the database, and the replicas a
// write waits for (WAIT; default none, timeout 1s). The password is the primary's (and its
// replicas'); sentinels are asked without one.
func ParseSentinelURL(url string) (Sentinel, error) {
	var sc Sentinel
	rest, ok := strings.CutPrefix(url, "redis+sentinel://")
	if !ok {
		return sc, fmt.Errorf("parse redis url %q: want redis+sentinel://", url)
	}
	bad := func(why string) error {
		return fmt.Errorf("parse redis url: %s; want redis+sentinel://[:password@]host:port[,host:port]/master[/db][?wait_replicas=N&wait_timeout=D]", why)
	}
	rest, query, _ := strings.Cut(rest, "?")
	sc.WaitTimeout = time.Second
	q, err := neturl.ParseQuery(query)
	if err != nil {
		return sc, bad("query " + err.Error())
	}
	for k, v := range q {
		switch {
		case k == "wait_replicas" && len(v) == 1:
			n, err := strconv.Atoi(v[0])
			if err != nil || n < 0 {
				return sc, bad(fmt.Sprintf("wait_replicas %q is not a count", v[0]))
			}
			sc.WaitReplicas = n
		case k == "wait_timeout" && len(v) == 1:
			d, err := time.ParseDuration(v[0])
			if err != nil || d <= 0 {
				return sc, bad(fmt.Sprintf("wait_timeout %q is not a positive duration", v[0]))
			}
			sc.WaitTimeout = d
		default:
			return sc, bad(fmt.Sprintf("unknown parameter %q", k))
		}
	}
	hosts, path, _ := strings.Cut(rest, "/")
	opt := &redis.FailoverOptions{}
	if at := strings.LastIndex(hosts, "@"); at >= 0 {
		user, pw, hasPW := strings.Cut(hosts[:at], ":")
		if !hasPW {
			pw, user = user, ""
		}
		opt.Username, opt.Password, hosts = user, pw, hosts[at+1:]
	}
	for _, h := range strings.Split(hosts, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" {
			return sc, bad(fmt.Sprintf("sentinel address %q is not host:port", h))
		}
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return sc, bad(fmt.Sprintf("sentinel port %q", port))
		}
		opt.SentinelAddrs = append(opt.SentinelAddrs, h)
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if parts[0] == "" || len(parts) > 2 {
		return sc, bad("no primary name")
	}
	opt.MasterName = parts[0]
	if len(parts) == 2 {
		db, err := strconv.Atoi(parts[1])
		if err != nil || db < 0 {
			return sc, bad(fmt.Sprintf("database %q is not a number", parts[1]))
		}
		opt.DB = db
	}
	sc.Options = opt
	return sc, nil
}
