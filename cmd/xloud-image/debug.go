package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// serveDebug serves Go's pprof handlers on addr, on a listener of their own so they are never
// reachable through the API ports; it returns a function that closes it. pprof's cmdline is
// left out: the command line holds --admin-password, --keystone-password and store URLs with
// their keys, and the debug listener asks for no credentials.
func serveDebug(addr string) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen debug on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	slog.Info("listening", "listener", "debug", "addr", ln.Addr().String(), "scheme", "http")
	go srv.Serve(ln)
	return func() { srv.Close() }, nil
}
