package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// WebDownloader fetches web-download URIs under Glance's import filter
// ([import_filtering_opts]: allowed and disallowed schemes, hosts and ports; when an allowed
// list is set its disallowed list is ignored, as in Glance), following at most a few
// redirects (each checked the same way), with connect, header and idle timeouts, and no more
// than MaxImageSize bytes.
//
// Whatever the lists say, a download never reaches an internal address (loopback,
// link-local, private, CGNAT, multicast, unspecified, reserved, and their IPv4-mapped, NAT64
// and 6to4 forms) unless an allowed host entry names it: an address or prefix containing
// it, or the host name that was dialed. The guard runs when the connection is made, on the
// address actually connected to, so redirects and DNS answers that change between the check
// and the fetch are covered; Check refuses what it can see early.
type WebDownloader struct {
	// AllowedSchemes (allowed_schemes); empty: http and https less DisallowedSchemes. Only
	// http and https are ever fetched.
	AllowedSchemes    []string
	DisallowedSchemes []string
	// AllowedHosts (allowed_hosts): host names, IP addresses and CIDR prefixes; when set,
	// only these. DisallowedHosts (disallowed_hosts) takes the same forms.
	AllowedHosts    []string
	DisallowedHosts []string
	// Ports allowed in URIs (allowed_ports); empty: any port but DisallowedPorts. Glance
	// allows 80 and 443 only.
	Ports           []int
	DisallowedPorts []int
	// IdleTimeout ends a download that makes no progress for this long (0: one minute).
	IdleTimeout time.Duration
	// Resolver looks host names up, for Check and for the connection; nil: the system's.
	Resolver *net.Resolver
}

// DefaultWebDownloader is Glance's default import filter: http and https on ports 80 and 443,
// to public addresses.
var DefaultWebDownloader = &WebDownloader{Ports: []int{80, 443}}

// maxRedirects bounds the redirects a web-download follows.
const maxRedirects = 5

// errFiltered is the start of every refusal, Glance's wording.
const errFiltered = "URI for web-download does not pass filtering"

// Check refuses URIs the filter does not pass (ErrInvalid): a scheme, port or host that is
// not allowed, credentials in the URI, or a host that is, or resolves to, an address the
// download may not reach. A host that does not resolve passes: the fetch fails later.
func (w *WebDownloader) Check(ctx context.Context, uri string) error {
	u, err := url.Parse(uri)
	if err != nil || uri == "" {
		return errorf(BadRequest, "web-download needs a valid 'uri'")
	}
	if err := w.checkURL(u); err != nil {
		return errorf(BadRequest, "%s: %v", errFiltered, err)
	}
	if err := w.checkResolved(ctx, canonicalHost(u.Hostname())); err != nil {
		return errorf(BadRequest, "%s: %v", errFiltered, err)
	}
	return nil
}

// checkURL applies the scheme, port and host lists to u, without looking anything up.
func (w *WebDownloader) checkURL(u *url.URL) error {
	if !w.schemeAllowed(u.Scheme) {
		return fmt.Errorf("scheme %q is not allowed", u.Scheme)
	}
	if u.Hostname() == "" || u.User != nil {
		return errors.New("it needs a host and no credentials")
	}
	port, err := urlPort(u)
	if err != nil {
		return err
	}
	if !w.portAllowed(port) {
		return fmt.Errorf("port %d is not allowed", port)
	}
	host := canonicalHost(u.Hostname())
	if ip, err := netip.ParseAddr(host); err == nil {
		return w.addrAllowed(host, ip)
	}
	if !w.nameAllowed(host) {
		return fmt.Errorf("host %q is not allowed", host)
	}
	return nil
}

// checkResolved refuses a host name any of whose addresses the download may not reach.
func (w *WebDownloader) checkResolved(ctx context.Context, host string) error {
	if _, err := netip.ParseAddr(host); err == nil {
		return nil // checked as a literal
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := w.resolver().LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if err := w.addrAllowed(host, a); err != nil {
			return fmt.Errorf("host %q resolves to %v", host, err)
		}
	}
	return nil
}

func (w *WebDownloader) schemeAllowed(scheme string) bool {
	if scheme != "http" && scheme != "https" {
		return false
	}
	if len(w.AllowedSchemes) > 0 {
		return slices.Contains(w.AllowedSchemes, scheme)
	}
	return !slices.Contains(w.DisallowedSchemes, scheme)
}

func (w *WebDownloader) portAllowed(port int) bool {
	if len(w.Ports) > 0 {
		return slices.Contains(w.Ports, port)
	}
	return !slices.Contains(w.DisallowedPorts, port)
}

// nameAllowed applies the host lists to a host name. With allowed prefixes listed, a name
// that is not listed itself is left to its addresses.
func (w *WebDownloader) nameAllowed(host string) bool {
	if len(w.AllowedHosts) > 0 {
		return hostList(w.AllowedHosts).hasName(host) || hostList(w.AllowedHosts).hasPrefixes()
	}
	return !hostList(w.DisallowedHosts).hasName(host)
}

// addrAllowed decides whether a download to host may connect to ip.
func (w *WebDownloader) addrAllowed(host string, ip netip.Addr) error {
	ip = ip.Unmap()
	if allowed := hostList(w.AllowedHosts); len(allowed) > 0 {
		if allowed.hasName(host) || allowed.hasAddr(ip) {
			return nil
		}
		return fmt.Errorf("address %s is not an allowed host", ip)
	}
	if disallowed := hostList(w.DisallowedHosts); disallowed.hasName(host) || disallowed.hasAddr(ip) {
		return fmt.Errorf("address %s is a disallowed host", ip)
	}
	if kind := internalKind(ip); kind != "" {
		return fmt.Errorf("address %s is %s", ip, kind)
	}
	return nil
}

// dialAllowed is the connection-time guard: address is the IP and port about to be
// connected to for host.
func (w *WebDownloader) dialAllowed(host, address string) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("web-download: unexpected address %q", address)
	}
	if !w.portAllowed(int(ap.Port())) {
		return fmt.Errorf("web-download: port %d is not allowed", ap.Port())
	}
	if err := w.addrAllowed(host, ap.Addr()); err != nil {
		return fmt.Errorf("web-download: %v", err)
	}
	return nil
}

func (w *WebDownloader) resolver() *net.Resolver {
	if w.Resolver != nil {
		return w.Resolver
	}
	return net.DefaultResolver
}

// urlPort is u's port, or its scheme's default.
func urlPort(u *url.URL) (int, error) {
	p := u.Port()
	if p == "" {
		if u.Scheme == "https" {
			return 443, nil
		}
		return 80, nil
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return 0, errors.New("bad port")
	}
	return n, nil
}

// canonicalHost is a host as the lists compare it: lower case, without a final dot or a
// zone.
func canonicalHost(h string) string {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if ip, err := netip.ParseAddr(h); err == nil {
		return ip.WithZone("").Unmap().String()
	}
	return h
}

// hostList is an allowed or disallowed host list: names, addresses and CIDR prefixes.
type hostList []string

func (l hostList) hasName(host string) bool {
	return slices.ContainsFunc(l, func(e string) bool { return canonicalHost(e) == host })
}

func (l hostList) hasPrefixes() bool {
	return slices.ContainsFunc(l, func(e string) bool { _, ok := parseHostEntry(e); return ok })
}

func (l hostList) hasAddr(ip netip.Addr) bool {
	ip = ip.WithZone("").Unmap()
	return slices.ContainsFunc(l, func(e string) bool {
		p, ok := parseHostEntry(e)
		return ok && p.Contains(ip)
	})
}

// parseHostEntry reads a list entry that is an address or a CIDR prefix (IPv4-mapped forms
// as their IPv4), false for a host name.
func parseHostEntry(e string) (netip.Prefix, bool) {
	e = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(e), "["), "]")
	if ip, err := netip.ParseAddr(e); err == nil {
		ip = ip.WithZone("").Unmap()
		return netip.PrefixFrom(ip, ip.BitLen()), true
	}
	p, err := netip.ParsePrefix(e)
	if err != nil {
		return netip.Prefix{}, false
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), true
}

// CheckHostEntry reports whether e is a valid allowed or disallowed host entry: an IP
// address, a CIDR prefix or a DNS name.
func CheckHostEntry(e string) error {
	if _, ok := parseHostEntry(e); ok {
		return nil
	}
	if strings.Contains(e, "/") {
		return fmt.Errorf("%q is not a CIDR prefix", e)
	}
	h := strings.TrimSuffix(e, ".")
	if h == "" || len(h) > 253 || strings.ContainsFunc(h, func(r rune) bool {
		return !(r == '-' || r == '.' || r == '_' || '0' <= r && r <= '9' || 'a' <= r|0x20 && r|0x20 <= 'z')
	}) {
		return fmt.Errorf("%q is not a host name, address or CIDR prefix", e)
	}
	return nil
}

// internalPrefixes are special-purpose ranges (RFC 6890 and successors) a download may not
// reach, beyond what netip's predicates name.
var internalPrefixes = []struct {
	prefix netip.Prefix
	kind   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "a this-network address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a shared (CGNAT) address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "an IETF protocol address"},
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address"},
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved or broadcast address"},
	{netip.MustParsePrefix("::/96"), "an IPv4-compatible address"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a local NAT64 address"},
	{netip.MustParsePrefix("100::/64"), "a discard address"},
	{netip.MustParsePrefix("2001::/23"), "an IETF protocol (Teredo, ORCHID) address"},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
	{netip.MustParsePrefix("fec0::/10"), "a site-local address"},
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// internalKind says what kind of internal address ip is, "" for a public one.
func internalKind(ip netip.Addr) string {
	ip = ip.WithZone("").Unmap()
	switch {
	case !ip.IsValid():
		return "not an address"
	case ip.IsLoopback():
		return "a loopback address"
	case ip.IsUnspecified():
		return "an unspecified address"
	case ip.IsLinkLocalUnicast():
		return "a link-local address"
	case ip.IsMulticast():
		return "a multicast address"
	case ip.IsPrivate():
		return "a private address"
	}
	// NAT64 and 6to4 carry an IPv4 address, which decides.
	b := ip.As16()
	if nat64.Contains(ip) {
		return embeddedKind(netip.AddrFrom4([4]byte(b[12:16])))
	}
	if sixToFour.Contains(ip) {
		return embeddedKind(netip.AddrFrom4([4]byte(b[2:6])))
	}
	for _, p := range internalPrefixes {
		if p.prefix.Contains(ip) {
			return p.kind
		}
	}
	return ""
}

func embeddedKind(v4 netip.Addr) string {
	if k := internalKind(v4); k != "" {
		return k + " (embedded " + v4.String() + ")"
	}
	return ""
}

// Fetch GETs uri and returns its body and length (-1 when the server does not say). The
// body is read under the idle timeout; the caller closes it. Errors name the URI without
// its credentials or query.
func (w *WebDownloader) Fetch(ctx context.Context, uri string) (io.ReadCloser, int64, error) {
	if err := w.Check(ctx, uri); err != nil {
		return nil, 0, err
	}
	idle := w.IdleTimeout
	if idle <= 0 {
		idle = time.Minute
	}
	shown := RedactURL(uri)
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		cancel()
		return nil, 0, errorf(BadRequest, "web-download %s: bad request", shown)
	}
	resp, err := w.client().Do(req)
	if err != nil {
		cancel()
		return nil, 0, fmt.Errorf("web-download %s: %w", shown, unwrapURLError(err))
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, 0, fmt.Errorf("web-download %s: %s", shown, resp.Status)
	}
	if resp.ContentLength > MaxImageSize {
		resp.Body.Close()
		cancel()
		return nil, 0, errorf(TooMany, "web-download %s: %d bytes is over the %d byte limit", shown, resp.ContentLength, int64(MaxImageSize))
	}
	r := &idleReader{rc: resp.Body, idle: idle, cancel: cancel, timer: time.AfterFunc(idle, cancel)}
	return r, resp.ContentLength, nil
}

// client is an HTTP client whose every connection passes dialAllowed. It uses no proxy: a
// proxy would connect on our behalf where the guard cannot see.
func (w *WebDownloader) client() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:           w.dial,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			DisableKeepAlives:     true, // one download per client
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return fmt.Errorf("more than %d redirects", maxRedirects)
			}
			if err := w.Check(req.Context(), req.URL.String()); err != nil {
				return fmt.Errorf("redirect to %s: %w", RedactURL(req.URL.String()), err)
			}
			return nil
		},
	}
}

// dial connects to addr (host:port), refusing in the dialer's Control, per address tried,
// what dialAllowed refuses.
func (w *WebDownloader) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	host = canonicalHost(host)
	d := &net.Dialer{
		Timeout:   10 * time.Second,
		KeepAlive: 30 * time.Second,
		Resolver:  w.Resolver,
		Control: func(_, address string, _ syscall.RawConn) error {
			return w.dialAllowed(host, address)
		},
	}
	return d.DialContext(ctx, network, addr)
}

// unwrapURLError drops net/http's *url.Error, which names the URL with its user name.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// RedactURL is uri fit for logs and error messages: user information and the query (where
// signed URLs carry their credentials) replaced, the fragment dropped.
func RedactURL(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	if u.RawQuery != "" {
		u.RawQuery = "REDACTED"
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// idleReader cancels a download when no byte arrives for idle.
type idleReader struct {
	rc     io.ReadCloser
	idle   time.Duration
	cancel context.CancelFunc
	timer  *time.Timer
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if n > 0 {
		r.timer.Reset(r.idle)
	}
	return n, err
}

func (r *idleReader) Close() error {
	r.timer.Stop()
	r.cancel()
	return r.rc.Close()
}
