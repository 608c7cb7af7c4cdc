//go:build linux

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
)

// tcpRelayCmd is the hidden sub-command that runs the bare TCP relay: this same binary, in
// its own process like the registries.
const tcpRelayCmd = "tcp-relay"

// startTCPRelay runs a bare TCP relay in front of target (versitygw). A GET through it is the
// least any server standing between a client and S3 can cost: no HTTP, no buffer of its own,
// each direction one io.Copy between two TCP connections, which Go turns into the kernel's
// splice. Its speed against a GET straight from versitygw shows what one more hop costs on
// this machine, whoever makes it.
func startTCPRelay(ctx context.Context, dir, target string) (*server, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s, err := startProcess(ctx, "tcp relay", filepath.Join(dir, "tcprelay.log"), "http://"+addr+"/health", nil, self,
		tcpRelayCmd, "-addr", addr, "-to", target)
	if err != nil {
		return nil, "", err
	}
	return s, addr, nil
}

// tcpRelay accepts connections on -addr and relays each to -to.
func tcpRelay(args []string) error {
	fs := flag.NewFlagSet(tcpRelayCmd, flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	to := fs.String("to", "", "address to relay to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go relayConn(c.(*net.TCPConn), *to)
	}
}

func relayConn(c *net.TCPConn, to string) {
	defer c.Close()
	u, err := net.Dial("tcp", to)
	if err != nil {
		return
	}
	up := u.(*net.TCPConn)
	defer up.Close()
	go func() {
		io.Copy(up, c) // splice: client to S3
		up.CloseWrite()
	}()
	io.Copy(c, up) // splice: S3 to client
}
