package testenv

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
)

// Cluster is several xloud-image serve processes over one metadata store (Redis) and one S3
// bucket, each on its own loopback ports and data directory: what operators run behind a
// load balancer.
type Cluster struct {
	Nodes    []*Server
	S3       *S3
	Bucket   string
	StoreURL string // the --store URL every node uses
}

// StartCluster starts n nodes with --redis-url redisURL (any URL --redis-url takes), one
// fresh versitygw bucket as their store, and the extra flags args.
func StartCluster(t testing.TB, n int, redisURL string, args ...string) *Cluster {
	t.Helper()
	s3 := StartS3(t)
	c := &Cluster{S3: s3, Bucket: s3.Bucket("cluster")}
	c.StoreURL = s3.URL(c.Bucket, "blobs")
	for range n {
		srv := StartServer(t, ServerOptions{RedisURL: redisURL, Args: append([]string{"--store", "s3=" + c.StoreURL}, args...)})
		c.Nodes = append(c.Nodes, srv)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, s := range c.Nodes {
				t.Logf("node %d log (tail):\n%s", i, tailString(s.Log(), 6000))
			}
		}
	})
	return c
}

func tailString(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// RoundRobin starts an HTTP reverse proxy on loopback that sends each request to the next
// node's registry port in turn (any HTTP load balancer), and returns its host:port.
func (c *Cluster) RoundRobin(t testing.TB) string {
	t.Helper()
	var next atomic.Uint64
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			node := c.Nodes[int(next.Add(1)-1)%len(c.Nodes)]
			r.SetURL(&url.URL{Scheme: "http", Host: node.RegistryAddr})
			r.Out.Host = r.In.Host // the nodes advertise the balancer's address, as behind any
		},
		FlushInterval: -1,
	}
	srv := httptest.NewServer(http.Handler(proxy))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}
