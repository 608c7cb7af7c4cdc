package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/xloud/xloud-image/internal/testenv"
)

// TestHugeHeadersRefused: headers beyond the server's limit are refused before any handler
// runs (431), on both ports, and the server keeps serving.
func TestHugeHeadersRefused(t *testing.T) {
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--auth", "embedded", "--admin-password", "pw"}})
	for _, addr := range []string{srv.RegistryAddr, srv.APIAddr} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET /v2/ HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", addr, strings.Repeat("A", 200<<10))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		conn.Close()
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("%s: huge header answered %d", addr, resp.StatusCode)
		}
		r, err := http.Get("http://" + addr + "/healthz")
		if err != nil || r.StatusCode != 200 {
			t.Fatalf("%s: not serving after a huge header: %v", addr, err)
		}
		r.Body.Close()
	}
	if strings.Contains(srv.Log(), strings.Repeat("A", 100)) {
		t.Fatal("the oversized credential reached the log")
	}
}

// TestMetrics: /metrics on both ports counts the requests answered, by listener and code.
func TestMetrics(t *testing.T) {
	srv := testenv.StartServer(t, testenv.ServerOptions{})
	for i := 0; i < 3; i++ {
		r, err := http.Get(srv.URL() + "/v2/nothing/here/manifests/latest")
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
	}
	for _, addr := range []string{srv.RegistryAddr, srv.APIAddr} {
		r, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != 200 || !strings.Contains(string(body), `xloud_http_requests_total{code="404",listener="registry",method="GET"} 3`) {
			t.Fatalf("metrics on %s: %d\n%s", addr, r.StatusCode, body)
		}
	}
}
