package identityapi

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"

	"github.com/xloud/xloud-image/auth"
)

// catalogEntry is one service of the service catalog.
type catalogEntry struct {
	ID        string     `json:"id"`
	Type      string     `json:"type"`
	Name      string     `json:"name"`
	Endpoints []endpoint `json:"endpoints"`
}

type endpoint struct {
	ID        string `json:"id"`
	Interface string `json:"interface"`
	Region    string `json:"region"`
	RegionID  string `json:"region_id"`
	URL       string `json:"url"`
}

// interfaces are the endpoint interfaces clients may ask for; every one has the same URL.
var interfaces = []string{"public", "internal", "admin"}

// stableID is a Keystone-looking id (32 hex) that stays the same across restarts and nodes.
func stableID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func (h *Handler) service(typ, name, url string) catalogEntry {
	e := catalogEntry{ID: ServiceID(typ), Type: typ, Name: name, Endpoints: []endpoint{}}
	for _, i := range interfaces {
		e.Endpoints = append(e.Endpoints, endpoint{ID: stableID("endpoint", typ, i),
			Interface: i, Region: h.opt.Region, RegionID: h.opt.Region, URL: url})
	}
	return e
}

// catalog is the service catalog: the Image API (unversioned, as clients discover /v2 from
// it), this identity service (unversioned: clients discover /v3 from it), the key manager
// and the registry.
func (h *Handler) catalog(r *http.Request) []catalogEntry {
	base := h.apiBase(r)
	out := []catalogEntry{
		h.service("image", "glance", base),
		h.service("identity", "keystone", base+"/identity"),
	}
	if h.opt.KeyManager {
		out = append(out, h.service("key-manager", "barbican", base+"/key-manager"))
	}
	if reg := h.registryBase(r); reg != "" {
		out = append(out, h.service("registry", "xloud-registry", reg))
	}
	return out
}

// catalogFor is the catalog a token carries: project- and system-scoped tokens only, unless
// nocatalog is asked.
func (h *Handler) catalogFor(r *http.Request, t auth.Token) []catalogEntry {
	if (t.ProjectID == "" && !t.System) || flag(r, "nocatalog") {
		return nil
	}
	return h.catalog(r)
}

// ServiceID is the id the catalog gives the service of a type ("image"): limits name it.
func ServiceID(typ string) string { return stableID("service", typ) }
