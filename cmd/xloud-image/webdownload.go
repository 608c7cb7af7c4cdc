package main

import (
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/xloud/xloud-image/catalog"
)

// webFilter is web-download's import filter, Glance's [import_filtering_opts]: each a
// comma-separated list.
type webFilter struct {
	AllowedSchemes, DisallowedSchemes string
	AllowedHosts, DisallowedHosts     string
	Ports, DisallowedPorts            string
}

func webDownloadFlags(fs *flag.FlagSet, w *webFilter) {
	fs.StringVar(&w.AllowedSchemes, "web-download-allowed-schemes", "http,https", "schemes web-download imports may fetch from (Glance's allowed_schemes; http and https only); empty: all but --web-download-disallowed-schemes")
	fs.StringVar(&w.DisallowedSchemes, "web-download-disallowed-schemes", "", "schemes web-download imports may not fetch from when --web-download-allowed-schemes is empty (Glance's disallowed_schemes)")
	fs.StringVar(&w.AllowedHosts, "web-download-allowed-hosts", "", "hosts web-download imports may fetch from: names, IPs and CIDRs (Glance's allowed_hosts); when set, only these; the only way to reach loopback, link-local or private addresses is an entry naming them")
	fs.StringVar(&w.DisallowedHosts, "web-download-disallowed-hosts", "", "hosts web-download imports may not fetch from when --web-download-allowed-hosts is empty: names, IPs and CIDRs (Glance's disallowed_hosts)")
	fs.StringVar(&w.Ports, "web-download-ports", "80,443", "ports web-download imports may fetch from, comma-separated; empty: any but --web-download-disallowed-ports (Glance's allowed_ports)")
	fs.StringVar(&w.DisallowedPorts, "web-download-disallowed-ports", "", "ports web-download imports may not fetch from when --web-download-ports is empty (Glance's disallowed_ports)")
}

// webDownloader is the web-download filter the flags describe.
func webDownloader(f webFilter) (*catalog.WebDownloader, error) {
	w := &catalog.WebDownloader{
		AllowedSchemes:    splitList(f.AllowedSchemes),
		DisallowedSchemes: splitList(f.DisallowedSchemes),
		AllowedHosts:      splitList(f.AllowedHosts),
		DisallowedHosts:   splitList(f.DisallowedHosts),
	}
	for _, s := range w.AllowedSchemes {
		if s != "http" && s != "https" {
			return nil, fmt.Errorf("--web-download-allowed-schemes: %q: web-download fetches http and https only", s)
		}
	}
	for _, h := range append(append([]string{}, w.AllowedHosts...), w.DisallowedHosts...) {
		if err := catalog.CheckHostEntry(h); err != nil {
			return nil, fmt.Errorf("--web-download-allowed-hosts/--web-download-disallowed-hosts: %w", err)
		}
	}
	var err error
	if w.Ports, err = parsePorts("--web-download-ports", f.Ports); err != nil {
		return nil, err
	}
	if w.DisallowedPorts, err = parsePorts("--web-download-disallowed-ports", f.DisallowedPorts); err != nil {
		return nil, err
	}
	warnIgnored(w)
	return w, nil
}

// warnIgnored says, as Glance does, when a disallowed list is set beside the allowed one that
// makes it moot.
func warnIgnored(w *catalog.WebDownloader) {
	for _, l := range []struct {
		name             string
		allowed, ignored bool
	}{
		{"schemes", len(w.AllowedSchemes) > 0, len(w.DisallowedSchemes) > 0},
		{"hosts", len(w.AllowedHosts) > 0, len(w.DisallowedHosts) > 0},
		{"ports", len(w.Ports) > 0, len(w.DisallowedPorts) > 0},
	} {
		if l.allowed && l.ignored {
			slog.Warn("web-download: both allowed and disallowed "+l.name+" are set; only the allowed list is obeyed", "list", l.name)
		}
	}
}

func splitList(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.ToLower(strings.TrimSpace(e)); e != "" {
			out = append(out, e)
		}
	}
	return out
}

func parsePorts(flagName, s string) ([]int, error) {
	var ports []int
	for _, p := range splitList(s) {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%s: %q is not a port", flagName, p)
		}
		ports = append(ports, n)
	}
	return ports, nil
}
