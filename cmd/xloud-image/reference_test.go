package main

import "testing"

// TestRegistryHost: --public-url's host names the registry in references; without it the
// port of --registry-addr is joined to each request's host by the Image API.
func TestRegistryHost(t *testing.T) {
	for _, c := range []struct {
		cfg              config
		wantHost, wantPt string
	}{
		{config{PublicURL: "https://registry.example.com:8443/", RegistryAddr: ":5000"}, "registry.example.com:8443", ""},
		{config{PublicURL: "https://registry.example.com"}, "registry.example.com", ""},
		{config{RegistryAddr: ":5000"}, "", "5000"},
		{config{RegistryAddr: "127.0.0.1:5001"}, "", "5001"},
		{config{RegistryAddr: "nonsense"}, "", ""},
	} {
		if h, p := registryHost(c.cfg); h != c.wantHost || p != c.wantPt {
			t.Errorf("registryHost(%+v): %q %q, want %q %q", c.cfg, h, p, c.wantHost, c.wantPt)
		}
	}
}
