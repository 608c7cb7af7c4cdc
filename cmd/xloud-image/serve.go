package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/imageapi"
	"github.com/xloud/xloud-image/internal/metrics"
	"github.com/xloud/xloud-image/internal/reqlog"
	"github.com/xloud/xloud-image/metadefs"
	"github.com/xloud/xloud-image/registry"
	"github.com/xloud/xloud-image/signing"
	"github.com/xloud/xloud-image/storage"
	"github.com/xloud/xloud-image/storage/meta"
)

func cmdServe(args []string) (err error) {
	var c config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfgFile := commonFlags(fs, &c)
	fs.StringVar(&c.RegistryAddr, "registry-addr", ":5000", "Registry API listen address")
	fs.StringVar(&c.APIAddr, "api-addr", ":9292", "Image and Identity API listen address")
	c.Auth = "embedded"
	fs.Var(choice(&c.Auth, "embedded", "keystone", "none"), "auth", "embedded (built-in identity), keystone (external), or none (open, for local trials only)")
	fs.StringVar(&c.KeystoneURL, "keystone-url", "", "with --auth keystone: the Keystone to validate tokens at")
	fs.StringVar(&c.KeystoneUser, "keystone-user", "", "with --auth keystone: the service user this server signs in to Keystone as")
	fs.StringVar(&c.KeystonePassword, "keystone-password", "", "with --auth keystone: the service user's password (better: XLOUD_KEYSTONE_PASSWORD)")
	fs.StringVar(&c.KeystoneProject, "keystone-project", "service", "with --auth keystone: the project of the service user's token")
	fs.StringVar(&c.KeystoneDomain, "keystone-domain", "Default", "with --auth keystone: the domain (name) of the service user, its project and of users signing in with a password")
	fs.DurationVar(&c.SignedURLMaxTTL, "signed-url-max-ttl", 12*time.Hour, "the longest life a signed blob URL may be asked for (the default life is 1h)")
	fs.DurationVar(&c.SignedURLRotate, "signed-url-key-rotation", 24*time.Hour, "how long one signed-URL key signs before a new one is made (old keys verify until their URLs expire)")
	fs.DurationVar(&c.KeystoneCacheTTL, "keystone-cache-ttl", 30*time.Second, "with --auth keystone: how long a token validation or role lookup is trusted (a revoked token works at most this long)")
	fs.StringVar(&c.AdminPassword, "admin-password", "", "bootstrap admin password; generated and written to DATA-DIR/admin-password if unset")
	fs.StringVar(&c.PublicURL, "public-url", "", "base URL the registry port advertises (Location headers, token realm)")
	fs.StringVar(&c.APIPublicURL, "api-public-url", "", "base URL the API port advertises (Image API version documents and Location headers, the identity catalog); default: the host each request came to")
	fs.StringVar(&c.CacheDir, "cache-dir", "", "keep a node-local image cache of blobs read from remote (S3) stores in this directory (Glance's image cache API, /v2/cache); default: no cache")
	fs.Int64Var(&c.CacheMaxSize, "cache-max-size", 10<<30, "with --cache-dir: the most bytes the cache keeps; least recently used blobs are evicted first")
	fs.DurationVar(&c.CachePrefetchDelay, "cache-prefetch-delay", time.Second, "with --cache-dir: how long an image queued with PUT /v2/cache/{id} waits before it is fetched (clients of Image API 2.14-2.16 expect to see it queued first)")
	webDownloadFlags(fs, &c.Web)
	fs.StringVar(&c.TLSCert, "tls-cert", "", "serve HTTPS on both ports with this certificate (PEM)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "private key of --tls-cert (PEM)")
	fs.BoolVar(&c.AnonymousPull, "anonymous-pull", false, "let anonymous callers pull public content")
	fs.BoolVar(&c.AccessLog, "access-log", true, "log one JSON line per request (method, path, status, bytes, duration, request id, user, project)")
	fs.StringVar(&c.DebugAddr, "debug-addr", "", "serve Go's pprof profiles (/debug/pprof/) on this address, e.g. 127.0.0.1:6060; unauthenticated, so keep it on loopback")
	fs.BoolVar(&c.MetricsAuth, "metrics-auth", false, "require admin credentials (Basic or a token) for /metrics")
	fs.StringVar(&c.PropertyProtections, "property-protections", "", "Glance's property protections file (roles format): who may create, read, update and delete which extra image properties")
	fs.BoolVar(&c.SparseManifests, "sparse-manifests", false, "accept image manifests whose blobs were not pushed (partial mirrors)")
	c.HashAlgo = "sha256"
	fs.Var(&c.HashAlgo, "hashing-algorithm", "os_hash_algo of new image data: sha256 (one computation with the OCI digest) or sha512 (Glance's default)")
	fs.BoolVar(&c.ValidateMetadefProperties, "validate-metadef-properties", false, "check image property values against the metadata definitions (types, enums, limits) on create and update")
	limitFlags(fs, &c.Limits)
	clusterFlags(fs, &c.Cluster)
	if err := parseFlags(fs, cfgFile, args); err != nil {
		return err
	}
	setupLogging(c.LogLevel)
	if err := c.Limits.check(); err != nil {
		return err
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together")
	}
	if err := c.checkCache(); err != nil {
		return err
	}
	web, err := webDownloader(c.Web)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// A start that fails before both listeners open takes back the data directory it made.
	before, started := dataDirBefore(c.DataDir), false
	defer func() {
		if !started {
			removeIfFailed(c.DataDir, before, err)
		}
	}()

	store, closeStore, err := openStore(ctx, c, 5*time.Second)
	if err != nil {
		return err
	}
	defer closeStore()
	if store.Cache != nil {
		store.PrefetchDelay = c.CachePrefetchDelay
		prefetchCtx, stopPrefetch := context.WithCancel(ctx)
		prefetched := make(chan struct{})
		go func() { defer close(prefetched); store.RunPrefetch(prefetchCtx, slog.Default()) }()
		defer func() { stopPrefetch(); <-prefetched }() // before the cache's index closes
	}
	store.UploadLimit = c.Limits.UploadLimit
	store.GCGrace = c.Cluster.GCGrace
	sec, err := setupAuth(ctx, c, store)
	if err != nil {
		return err
	}
	policy := sec.imagePolicy()
	if c.PropertyProtections != "" {
		// A fault in the file stops the start, as it stops glance-api.
		if policy.Protections, err = auth.LoadPropertyProtections(c.PropertyProtections); err != nil {
			return err
		}
	}
	cat := catalog.New(store, policy)
	cat.HashAlgo = string(c.HashAlgo)
	// Glance's multi-store API exists when stores are named, as with enabled_backends.
	cat.MultiStore = len(c.Stores) > 0
	cat.Limits = sec.limitSource()
	cat.Certificates = sec.certificates()
	serverKey, err := signing.LoadServerKey(ctx, store.Meta())
	if err != nil {
		return err
	}
	cat.Attester = serverKey
	if n, err := cat.Migrate(ctx); err != nil {
		return err
	} else if n > 0 {
		slog.Info("catalog indexes migrated", "images", n)
	}
	if err := cat.RebuildUsage(ctx); err != nil {
		return fmt.Errorf("rebuild quota usage: %w", err)
	}
	// Images a stopped server left mid-write go back to queued; on the embedded store no
	// other server can be writing, so at start every lease found is stale. The first pass
	// runs before the listeners open, so no request sees a dead writer's image.
	if n, err := cat.RecoverLeases(ctx, c.RedisURL == ""); err != nil {
		slog.Warn("recover leased images", "err", err)
	} else if n > 0 {
		slog.Info("images left mid-write by a stopped server returned to queued", "images", n)
	}
	md, err := setupMetadefs(ctx, c, store, sec, cat)
	if err != nil {
		return err
	}
	leaseCtx, stopLeases := context.WithCancel(ctx)
	leases := make(chan struct{})
	go func() { defer close(leases); cat.RunLeases(leaseCtx, c.RedisURL == "", slog.Default()) }()
	defer func() { stopLeases(); <-leases }()
	m := metrics.New()
	m.Observe(metricSources(cat, store))
	startChores(ctx, c, store, cat.Node(), sec, m)
	ready := &readiness{store: store}
	go ready.run(ctx)
	if store.Cache != nil {
		m.ObserveCache(func() metrics.CacheCounts { return metrics.CacheCounts(store.Cache.Stats()) })
	}
	signer := &auth.URLSigner{Meta: store.Meta(), MaxTTL: c.SignedURLMaxTTL, Rotate: c.SignedURLRotate}
	reg := registry.New(store, registry.Options{PublicURL: c.PublicURL, SparseManifests: c.SparseManifests,
		Access: sec.registryAccess(), Catalog: cat, Metrics: m, Signer: signer, Ready: ready.Ready,
		ManifestBudget: c.Limits.ManifestBudget, ManifestWait: c.Limits.ManifestWait})

	health := healthHandler(store, ready)
	metricsHandler, err := metricsEndpoint(c, sec, m)
	if err != nil {
		return err
	}
	regMux := http.NewServeMux()
	regMux.Handle("/metrics", metricsHandler)
	regMux.Handle("/v2/", reg)
	regMux.Handle("/v2", reg)
	regMux.Handle(registry.SignedPrefix, reg.SignedHandler())
	regMux.Handle("/healthz", health)
	regMux.Handle("GET "+serverKeyPath, serverKeyHandler(serverKey))
	regMux.Handle("/readyz", health)
	var authn *auth.Authenticator // nil with --auth none: every caller is an admin
	if sec != nil {
		authn = sec.authenticator
	}
	// The Image API on the API port, and under /image on the registry port, each advertising
	// its own base.
	regHost, regPort := registryHost(c)
	// glance-download asks the identity service the caller came with for other regions.
	identityURL := func(r *http.Request) string { return portURL(c.APIPublicURL, c.APIAddr)(r) + "/identity/v3" }
	if c.Auth == "keystone" {
		identityURL = func(*http.Request) string { return keystoneV3(c.KeystoneURL) }
	}
	apiURL, regURL := portURL(c.APIPublicURL, c.APIAddr), portURL(c.PublicURL, c.RegistryAddr)
	images := imageapi.New(cat, authn, imageapi.Options{Ready: ready.Ready, PublicURL: c.APIPublicURL, Web: web, RegistryHost: regHost, RegistryPort: regPort, Metrics: m,
		Metadefs: md, IdentityURL: identityURL, Signer: signer, RegistryURL: regURL})
	regImages := imageapi.New(cat, authn, imageapi.Options{Ready: ready.Ready, PublicURL: urlUnder(c.PublicURL, "/image"), Web: web, RegistryHost: regHost, RegistryPort: regPort, Metrics: m,
		Metadefs: md, IdentityURL: identityURL, Signer: signer, RegistryURL: regURL})
	regMux.Handle("/image/", http.StripPrefix("/image", regImages))
	if sec != nil {
		regMux.Handle("/token", reg.TokenHandler())
	}
	apiMux := http.NewServeMux()
	apiMux.Handle("/metrics", metricsHandler)
	apiMux.Handle("/healthz", health)
	apiMux.Handle("GET "+serverKeyPath, serverKeyHandler(serverKey))
	apiMux.Handle("/readyz", health)
	mountAPIPointers(regMux, c, apiURL, regURL)
	// Versions at /, the Image API under /v2/; registry requests are pointed to the registry.
	mountRegistryPointers(apiMux, images, regURL, m)
	sec.mountIdentity(apiMux, c)
	if err := sec.mountDashboard(apiMux, cat, store, md, web, regHost, regPort); err != nil {
		return err
	}
	sec.mountKeyManager(apiMux, c)

	admin, err := listenAdmin(c.DataDir, store, cat, md, m)
	if err != nil {
		return err
	}
	defer admin.Close()

	servers := []*namedServer{
		{name: "registry", addr: c.RegistryAddr, handler: reqlog.Middleware("registry", c.AccessLog, slog.Default(), idleBodies(m.Instrument("registry", countUploads(m, unavailableElsewhere(ready, regMux))), c.Limits.BodyIdleTimeout)), certFile: c.TLSCert, keyFile: c.TLSKey},
		{name: "api", addr: c.APIAddr, handler: reqlog.Middleware("api", c.AccessLog, slog.Default(), idleBodies(m.Instrument("api", unavailableElsewhere(ready, apiMux)), c.Limits.BodyIdleTimeout)), certFile: c.TLSCert, keyFile: c.TLSKey},
	}
	if c.DebugAddr != "" {
		stopDebug, err := serveDebug(c.DebugAddr)
		if err != nil {
			return err
		}
		defer stopDebug()
	}
	errc := make(chan error, len(servers))
	for _, s := range servers {
		if err := s.listen(); err != nil {
			return err
		}
		go func(s *namedServer) { errc <- s.serve() }(s)
	}
	started = true
	logURLs(c, servers[0].ln.Addr(), servers[1].ln.Addr())
	select {
	case <-ctx.Done():
		slog.Info("shutting down")
	case err = <-errc:
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range servers {
		s.srv.Shutdown(shutdownCtx)
	}
	return err
}

func setupLogging(level string) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	slog.SetDefault(slog.New(reqlog.Handler{Handler: slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l})}))
	// go-redis prints through its own logger; its lines go out as JSON like every other.
	redis.SetLogger(reqlog.Logf{Log: slog.Default()})
}

// openStore opens the blob files and the configured metadata store.
func openStore(ctx context.Context, c config, lockWait time.Duration) (*storage.Store, func(), error) {
	if err := os.MkdirAll(c.DataDir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("create data dir: %w", err)
	}
	stores, err := openBlobStores(c)
	if err != nil {
		return nil, nil, err
	}
	var m meta.Store
	if c.RedisURL != "" {
		m, err = meta.OpenRedis(ctx, c.RedisURL, "xloud:")
	} else {
		m, err = meta.OpenBolt(filepath.Join(c.DataDir, "meta.db"), lockWait)
		err = inUseError(c.DataDir, err)
	}
	if err != nil {
		return nil, nil, err
	}
	var cache *storage.Cache
	if c.CacheDir != "" {
		if cache, err = storage.OpenCache(c.CacheDir, c.CacheMaxSize); err != nil {
			m.Close()
			return nil, nil, err
		}
		stores = cache.WrapAll(stores)
	}
	closeAll := func() {
		if cache != nil {
			cache.Close()
		}
		m.Close()
	}
	s, err := storage.NewStores(m, stores, c.DefaultStore)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	s.Cache = cache
	return s, closeAll, nil
}

// healthHandler answers liveness; readiness also asks the metadata and blob stores.
func healthHandler(store *storage.Store, ready *readiness) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			err := ready.check(r.Context())
			if err == nil {
				err = store.Ping(r.Context())
			} else {
				err = fmt.Errorf("metadata store: %w", err)
			}
			if err != nil {
				http.Error(w, err.Error()+"\n", http.StatusServiceUnavailable)
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok\n"))
	})
}

// namedServer is one listener of the service.
type namedServer struct {
	name, addr        string
	handler           http.Handler
	certFile, keyFile string // HTTPS when set
	srv               *http.Server
	ln                net.Listener
}

func (s *namedServer) listen() error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listen %s on %s: %w", s.name, s.addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 30 * time.Second,
		MaxHeaderBytes:    64 << 10,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if s.certFile != "" {
		scheme = "https"
	}
	slog.Info("listening", "listener", s.name, "addr", ln.Addr().String(), "scheme", scheme)
	return nil
}

func (s *namedServer) serve() error {
	var err error
	if s.certFile != "" {
		err = s.srv.ServeTLS(s.ln, s.certFile, s.keyFile)
	} else {
		err = s.srv.Serve(s.ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// setupMetadefs opens the metadata definitions (the shipped ones loaded on a first start)
// and, with --validate-metadef-properties, has the catalog check image properties by them.
func setupMetadefs(ctx context.Context, c config, store *storage.Store, sec *security, cat *catalog.Catalog) (*metadefs.Store, error) {
	md := metadefs.New(store.Meta(), sec.imagePolicy())
	n, err := md.Init(ctx)
	if err != nil {
		return nil, fmt.Errorf("metadata definitions: %w", err)
	}
	if n > 0 {
		slog.Info("shipped metadata definitions loaded", "namespaces", n)
	}
	if c.ValidateMetadefProperties {
		cat.Properties = md
	}
	return md, nil
}

// adminSocket is where `xloud-image gc` and `purge` reach a running server: a unix socket in the data
// directory, reachable only by whoever may read the data.
func adminSocket(dataDir string) string { return filepath.Join(dataDir, "admin.sock") }

// listenAdmin serves the admin commands on the unix socket: gc, purge, and the server's pid
// (which a second serve on the data directory names).
func listenAdmin(dataDir string, store *storage.Store, cat *catalog.Catalog, md *metadefs.Store, m *metrics.Registry) (net.Listener, error) {
	path := adminSocket(dataDir)
	os.Remove(path) // a leftover from a killed server
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /gc", func(w http.ResponseWriter, r *http.Request) {
		opt, err := gcOptionsFromQuery(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rep, err := collectExclusive(r.Context(), store, cat.Node(), func(ctx context.Context) (storage.GCReport, error) {
			return store.CollectGarbage(ctx, opt)
		})
		if errors.Is(err, errGCBusy) {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		if err != nil {
			slog.Error("garbage collection failed", "err", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		slog.Info("garbage collected", "dry_run", rep.DryRun, "blobs", len(rep.Blobs), "bytes_freed", rep.BytesFreed,
			"uploads", len(rep.Uploads), "orphan_files", rep.OrphanFiles, "blobs_checked", rep.BlobsChecked)
		if !rep.DryRun {
			m.GCRun(rep.BytesFreed)
		}
		json.NewEncoder(w).Encode(rep)
	})
	mux.HandleFunc("POST /purge", func(w http.ResponseWriter, r *http.Request) {
		olderThan, err := time.ParseDuration(r.URL.Query().Get("older-than"))
		if err != nil || olderThan < 0 {
			http.Error(w, fmt.Sprintf("older-than %q: want a duration of at least 0", r.URL.Query().Get("older-than")), http.StatusBadRequest)
			return
		}
		rep, err := purgeWith(r.Context(), cat, olderThan)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		json.NewEncoder(w).Encode(rep)
	})
	mux.HandleFunc("POST /metadefs/load", serveMetadefsLoad(md))
	mux.HandleFunc("GET /pid", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, os.Getpid()) })
	go (&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}).Serve(ln)
	return ln, nil
}

func gcOptionsFromQuery(r *http.Request) (storage.GCOptions, error) {
	q := r.URL.Query()
	opt := storage.GCOptions{DryRun: strings.EqualFold(q.Get("dry-run"), "true")}
	var err error
	if opt.Grace, err = time.ParseDuration(q.Get("grace")); err != nil {
		return opt, fmt.Errorf("grace: %w", err)
	}
	if opt.UploadMaxAge, err = time.ParseDuration(q.Get("upload-max-age")); err != nil {
		return opt, fmt.Errorf("upload-max-age: %w", err)
	}
	return opt, nil
}

// urlUnder is base with path appended, or "" when base is.
func urlUnder(base, path string) string {
	if base == "" {
		return ""
	}
	return strings.TrimRight(base, "/") + path
}
