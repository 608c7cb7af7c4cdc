package main

import (
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/xloud/xloud-image/internal/metrics"
	"github.com/xloud/xloud-image/registry"
)

// portURL gives, for a request, the base URL of the listener at addr: public when set, else
// the request's scheme and host name with addr's port (the ports differ, the host does not).
func portURL(public, addr string) func(*http.Request) string {
	return func(r *http.Request) string {
		if public != "" {
			return strings.TrimRight(public, "/")
		}
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		host := r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
		_, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" {
			return scheme + "://" + r.Host
		}
		return scheme + "://" + net.JoinHostPort(strings.Trim(host, "[]"), port)
	}
}

// mountAPIPointers answers, on the registry port, what belongs to the API port: the identity
// paths (/v3, /identity/v3, as an OS_AUTH_URL pointed at the registry port reaches them) with
// a Keystone-style error naming the identity URL, and the root with a short document of where
// each API is, in the same error shape. Both are 404: keystoneauth's discovery gives up on it,
// then prints the error's message (`openstack` with OS_AUTH_URL at this port says where to go).
func mountAPIPointers(mux *http.ServeMux, c config, apiURL, registryURL func(*http.Request) string) {
	identity := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, keystoneError("This is the registry port; "+identityAt(c, apiURL(r))+
			" and the Image API at "+apiURL(r)))
	})
	for _, p := range []string{"/v3", "/v3/", "/identity", "/identity/"} {
		mux.Handle(p, identity)
	}
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		doc := keystoneError("This is the registry port (OCI Distribution at /v2/); the Image API is at " +
			apiURL(r) + "; " + identityAt(c, apiURL(r)))
		doc["registry"], doc["image_api"] = registryURL(r)+"/v2/", apiURL(r)+"/v2/"
		switch c.Auth {
		case "embedded":
			doc["identity_api"] = apiURL(r) + "/identity/v3"
		case "keystone":
			doc["identity_api"] = c.KeystoneURL
		}
		writeJSON(w, http.StatusNotFound, doc)
	})
}

// identityAt says where the Identity API is for --auth: this server's API port, the external
// Keystone, or nowhere.
func identityAt(c config, api string) string {
	switch c.Auth {
	case "keystone":
		return "the Identity API is the Keystone at " + c.KeystoneURL
	case "none":
		return "this server runs without authentication (--auth none), so it has no Identity API"
	}
	return "the Identity API (Keystone v3) is at " + api + "/identity/v3"
}

// keystoneError is Keystone's 404 error body with message.
func keystoneError(message string) map[string]any {
	return map[string]any{"error": map[string]any{"code": http.StatusNotFound, "title": "Not Found", "message": message}}
}

// mountRegistryPointers answers, on the API port, what an OCI client sends to a registry
// (registry.IsRegistryRequest, and the token endpoint) with the registry's OCI error naming
// the registry port; everything else goes to next, the Image API.
func mountRegistryPointers(mux *http.ServeMux, next http.Handler, registryURL func(*http.Request) string, m *metrics.Registry) {
	elsewhere := registry.Elsewhere(registryURL, registry.Options{Metrics: m})
	mux.Handle("/token", elsewhere)
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if registry.IsRegistryRequest(r) {
			elsewhere.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	}))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// logURLs prints, on every start, the URLs clients use and where the generated admin
// password is, so an operator who lost the first start's log still finds them.
func logURLs(c config, regAddr, apiAddr net.Addr) {
	scheme := "http"
	if c.TLSCert != "" {
		scheme = "https"
	}
	api := listenURL(c.APIPublicURL, scheme, apiAddr)
	attrs := []any{"image_api", api, "registry", listenURL(c.PublicURL, scheme, regAddr)}
	switch c.Auth {
	case "embedded":
		attrs = append(attrs, "os_auth_url", api+"/identity/v3")
		if path := filepath.Join(c.DataDir, "admin-password"); fileExists(path) {
			attrs = append(attrs, "admin_user", "admin", "admin_password_file", path)
		} else {
			attrs = append(attrs, "admin_user", "admin", "admin_password", "as given by --admin-password at first start")
		}
	case "keystone":
		attrs = append(attrs, "os_auth_url", c.KeystoneURL)
	}
	slog.Info("serving", attrs...)
}

// listenURL is public, or the URL of a listener at addr: a wildcard host is shown as
// localhost, as the server's own machine reaches it.
func listenURL(public, scheme string, addr net.Addr) string {
	if public != "" {
		return strings.TrimRight(public, "/")
	}
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return scheme + "://" + addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// keystoneV3 is the v3 URL of --keystone-url, which may name Keystone's root or its /v3.
func keystoneV3(u string) string {
	u = strings.TrimRight(u, "/")
	if !strings.HasSuffix(u, "/v3") {
		u += "/v3"
	}
	return u
}
