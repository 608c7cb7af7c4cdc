package main

import (
	"net"
	"net/url"
)

// registryHost is how images' xloud_oci_reference names the registry: the host of
// --public-url when set (what clients were told to use), else the port of --registry-addr,
// which the Image API joins to the host each request came to (both ports usually share it).
func registryHost(c config) (host, port string) {
	if u, err := url.Parse(c.PublicURL); err == nil && u.Host != "" {
		return u.Host, ""
	}
	_, port, err := net.SplitHostPort(c.RegistryAddr)
	if err != nil {
		return "", ""
	}
	return "", port
}
