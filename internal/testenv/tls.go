package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a throwaway certificate authority for one test: its certificate is written as PEM to
// CertFile, and Pool holds it for Go clients.
type CA struct {
	Dir      string // holds ca.pem and what Issue writes
	CertFile string // the CA certificate, PEM
	Pool     *x509.CertPool

	t    testing.TB
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA makes a CA valid for one day under a fresh temp dir.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "xloud-image test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{Dir: t.TempDir(), Pool: x509.NewCertPool(), t: t, cert: cert, key: key}
	ca.Pool.AddCert(cert)
	ca.CertFile = filepath.Join(ca.Dir, "ca.pem")
	writePEM(t, ca.CertFile, "CERTIFICATE", der)
	return ca
}

// Issue signs a server certificate for hosts (IP addresses or DNS names) and writes it and
// its key as PEM to <name>.pem and <name>-key.pem in the CA's directory.
func (ca *CA) Issue(name string, hosts ...string) (certFile, keyFile string) {
	t := ca.t
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(ca.Dir, name+".pem")
	keyFile = filepath.Join(ca.Dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	return certFile, keyFile
}

// Client returns an HTTP client that trusts only this CA.
func (ca *CA) Client() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// StartTLSServer is StartServer with a certificate for 127.0.0.1 issued by ca: both ports
// serve HTTPS (--tls-cert, --tls-key), and the server is healthy once /healthz answers over
// TLS verified against the CA. The server is killed when the test ends.
func StartTLSServer(t testing.TB, ca *CA, opt ServerOptions) *Server {
	t.Helper()
	certFile, keyFile := ca.Issue("server", "127.0.0.1")
	s := &Server{t: t, DataDir: opt.DataDir}
	if s.DataDir == "" {
		s.DataDir = filepath.Join(t.TempDir(), "data")
	}
	s.Args = append(append([]string{"--auth", "none"}, opt.Args...), "--tls-cert", certFile, "--tls-key", keyFile)
	if opt.RedisURL != "" {
		s.Args = append(s.Args, "--redis-url", opt.RedisURL)
	}
	s.health = ca.Client()
	s.scheme = "https"
	s.Start()
	t.Cleanup(func() { s.Stop() })
	return s
}

// HTTPSURL is the Registry API base URL of a server started with StartTLSServer.
func (s *Server) HTTPSURL() string { return "https://" + s.RegistryAddr }

// APIURL is the Image and Identity API base URL, with scheme "https" when https is set.
func (s *Server) APIURL(https bool) string {
	if https {
		return "https://" + s.APIAddr
	}
	return "http://" + s.APIAddr
}
