package testenv

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// ServeOn is an HTTP server on addr (such as "127.0.0.2:0": Linux answers on all of
// 127.0.0.0/8), closed when the test ends. Tests of web-download filters use a second
// loopback address as the "allowed origin" and the first as the internal target.
func ServeOn(t testing.TB, addr string, h http.Handler) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// DNS is a DNS server on loopback (UDP) that answers A and AAAA queries from a function, and
// counts the queries per name and type.
type DNS struct {
	// Resolver sends every query to this server.
	Resolver *net.Resolver

	mu      sync.Mutex
	queries map[string]int
}

// Queries is how many queries for name (without the final dot) of qtype (1: A, 28: AAAA)
// were answered.
func (d *DNS) Queries(name string, qtype uint16) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queries[dnsKey(name, qtype)]
}

func dnsKey(name string, qtype uint16) string {
	return fmt.Sprintf("%s/%d", strings.ToLower(strings.TrimSuffix(name, ".")), qtype)
}

// StartDNS starts a DNS server whose answer to the nth query (from 1) of qtype for name is
// answer(name, qtype, n); no addresses is an empty NOERROR answer.
func StartDNS(t testing.TB, answer func(name string, qtype uint16, n int) []netip.Addr) *DNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	d := &DNS{queries: map[string]int{}}
	go d.serve(pc, answer)
	addr := pc.LocalAddr().String()
	d.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var nd net.Dialer
		return nd.DialContext(ctx, "udp", addr)
	}}
	return d
}

func (d *DNS) serve(pc net.PacketConn, answer func(string, uint16, int) []netip.Addr) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		name, qtype, qend, ok := parseQuestion(buf[:n])
		if !ok {
			continue
		}
		d.mu.Lock()
		d.queries[dnsKey(name, qtype)]++
		count := d.queries[dnsKey(name, qtype)]
		d.mu.Unlock()
		pc.WriteTo(dnsReply(buf[:qend], qtype, answer(name, qtype, count)), from)
	}
}

// parseQuestion reads the one question of a query: its name, type, and where it ends.
func parseQuestion(msg []byte) (string, uint16, int, bool) {
	if len(msg) < 12 || binary.BigEndian.Uint16(msg[4:6]) != 1 {
		return "", 0, 0, false
	}
	var labels []string
	i := 12
	for i < len(msg) && msg[i] != 0 {
		l := int(msg[i])
		if l > 63 || i+1+l > len(msg) {
			return "", 0, 0, false
		}
		labels = append(labels, string(msg[i+1:i+1+l]))
		i += 1 + l
	}
	if i+5 > len(msg) {
		return "", 0, 0, false
	}
	return strings.Join(labels, "."), binary.BigEndian.Uint16(msg[i+1 : i+3]), i + 5, true
}

// dnsReply answers the query whose header and question are q with addrs of qtype.
func dnsReply(q []byte, qtype uint16, addrs []netip.Addr) []byte {
	out := append([]byte(nil), q...)
	binary.BigEndian.PutUint16(out[2:4], 0x8180) // response, recursion desired and available, NOERROR
	binary.BigEndian.PutUint16(out[10:12], 0)    // no additional records (the query's OPT is dropped)
	n := 0
	for _, a := range addrs {
		if (qtype == 1) != a.Is4() {
			continue
		}
		raw := a.AsSlice()
		out = append(out, 0xc0, 12) // the question's name
		out = binary.BigEndian.AppendUint16(out, qtype)
		out = binary.BigEndian.AppendUint16(out, 1) // IN
		out = binary.BigEndian.AppendUint32(out, 0) // TTL
		out = binary.BigEndian.AppendUint16(out, uint16(len(raw)))
		out = append(out, raw...)
		n++
	}
	binary.BigEndian.PutUint16(out[6:8], uint16(n))
	binary.BigEndian.PutUint16(out[8:10], 0)
	return out
}
