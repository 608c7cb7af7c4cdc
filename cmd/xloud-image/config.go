package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// config is the one configuration surface: flags, XLOUD_* environment variables and an
// optional YAML file, in that order of precedence.
type config struct {
	RegistryAddr string
	APIAddr      string
	DataDir      string
	RedisURL     string
	// Stores are the named blob stores (--store NAME=URL, repeatable); DefaultStore is where
	// pushes and uploads go (default: the first).
	Stores       storeList
	DefaultStore string
	// CacheDir holds the node's image cache of remote blobs ("": no cache), bounded to
	// CacheMaxSize bytes; a queued image waits CachePrefetchDelay before it is fetched.
	CacheDir           string
	CacheMaxSize       int64
	CachePrefetchDelay time.Duration
	Auth               string
	KeystoneURL        string
	AdminPassword      string
	PublicURL          string
	APIPublicURL       string
	LogLevel           string
	TLSCert            string
	TLSKey             string
	AnonymousPull      bool
	AccessLog          bool
	MetricsAuth        bool
	// DebugAddr serves Go's pprof profiles there when set (a loopback address, for profiling).
	DebugAddr string

	// The Image API and the registry's content rules.
	SparseManifests     bool
	PropertyProtections string // path of a roles-format property protections file; empty: off
	HashAlgo            hashAlgo
	// ValidateMetadefProperties checks image properties against the metadata definitions.
	ValidateMetadefProperties bool

	// With --auth keystone: the service credentials and how long Keystone's answers count.
	KeystoneUser     string
	KeystonePassword string
	KeystoneProject  string
	KeystoneDomain   string
	KeystoneCacheTTL time.Duration

	// Signed blob URLs (POST /v2/images/{id}/actions/url): the longest life a URL may be
	// given, and how long one key signs before the next is made.
	SignedURLMaxTTL time.Duration
	SignedURLRotate time.Duration

	// web-download's import filter (webdownload.go).
	Web webFilter

	Limits limits

	// Many nodes: the background GC and the rotation of token keys (cluster.go).
	Cluster clusterConfig
}

// limits are what one member may take of the server: memory, sessions, connections and
// password guesses.
type limits struct {
	ManifestBudget  int64         // manifest bytes in memory at once, server-wide
	ManifestWait    time.Duration // how long a manifest PUT waits for budget before 429
	BodyIdleTimeout time.Duration // a request body silent this long is dropped
	UploadLimit     int           // open upload sessions per project
	UploadExpiry    time.Duration // an upload session untouched this long is removed
	LockoutUser     int           // failed sign-ins of one user name before a lockout
	LockoutAddress  int           // failed sign-ins from one address before a lockout
	LockoutDuration time.Duration
}

// limitFlags declares the flags of limits.
func limitFlags(fs *flag.FlagSet, l *limits) {
	fs.Int64Var(&l.ManifestBudget, "manifest-budget", 64<<20, "bytes of manifests being received held in memory at once, server-wide (at least one largest manifest, 32 MiB, fits)")
	fs.DurationVar(&l.ManifestWait, "manifest-wait", 5*time.Second, "how long a manifest push waits for --manifest-budget before it is refused with 429 TOOMANYREQUESTS")
	fs.DurationVar(&l.BodyIdleTimeout, "body-idle-timeout", time.Minute, "drop a request whose body sends nothing for this long (0: never)")
	fs.IntVar(&l.UploadLimit, "upload-limit", 1000, "open blob upload sessions per project (first path component of the repository); 0: no cap")
	fs.DurationVar(&l.UploadExpiry, "upload-expiry", time.Hour, "remove a blob upload session untouched for this long, with its data (0: never)")
	fs.IntVar(&l.LockoutUser, "lockout-failure-attempts", 5, "failed password sign-ins of one user name before it is locked out (Keystone's lockout_failure_attempts); 0: never")
	fs.IntVar(&l.LockoutAddress, "lockout-address-attempts", 50, "failed password sign-ins from one client address before it is locked out; 0: never")
	fs.DurationVar(&l.LockoutDuration, "lockout-duration", 30*time.Minute, "how long a lockout lasts after the last failure (Keystone's lockout_duration)")
}

// check refuses settings that cannot work.
func (l limits) check() error {
	switch {
	case l.ManifestBudget < 0 || l.ManifestWait < 0 || l.BodyIdleTimeout < 0 || l.UploadLimit < 0 ||
		l.UploadExpiry < 0 || l.LockoutUser < 0 || l.LockoutAddress < 0 || l.LockoutDuration < 0:
		return fmt.Errorf("limits cannot be negative")
	case (l.LockoutUser > 0 || l.LockoutAddress > 0) && l.LockoutDuration == 0:
		return fmt.Errorf("--lockout-duration must be positive while lockouts are on")
	}
	return nil
}

// commonFlags declares the flags every command shares (where the data is).
func commonFlags(fs *flag.FlagSet, c *config) *string {
	fs.StringVar(&c.DataDir, "data-dir", "./data", "blobs and the embedded store")
	fs.StringVar(&c.RedisURL, "redis-url", "", "use Redis as the metadata store (redis://HOST:PORT/DB); default: embedded")
	fs.Var(&c.Stores, "store", "a blob store, NAME=URL, repeatable: file:///DIR or s3://BUCKET[/PREFIX]?endpoint=http://HOST:PORT&region=R[&redirect=5m] (credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ACCESS:SECRET@ in the URL); default: DATA-DIR")
	fs.StringVar(&c.DefaultStore, "default-store", "", "the --store new blobs go to (default: the first)")
	c.LogLevel = "info"
	fs.Var(choice(&c.LogLevel, "debug", "info", "warn", "error"), "log-level", "debug, info, warn or error")
	return fs.String("config", "", "optional YAML file of flag values (keys are flag names)")
}

// parseFlags parses args, then fills every flag not given on the command line from
// XLOUD_<FLAG> or, failing that, the YAML file.
func parseFlags(fs *flag.FlagSet, configFile *string, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	file := map[string]any{}
	path := *configFile
	if path == "" {
		path = os.Getenv("XLOUD_CONFIG")
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read config: %w", err)
		}
		if err := yaml.Unmarshal(b, &file); err != nil {
			return fmt.Errorf("parse config %s: %w", path, err)
		}
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil || f.Name == "config" {
			return
		}
		env := "XLOUD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s: %w", env, e)
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			if e := f.Value.Set(yamlValue(v)); e != nil {
				err = fmt.Errorf("config %s: %w", f.Name, e)
			}
		}
	})
	return err
}

// yamlValue is a YAML value as a flag reads it: a list comma-separated.
func yamlValue(v any) string {
	list, ok := v.([]any)
	if !ok {
		return fmt.Sprint(v)
	}
	parts := make([]string, len(list))
	for i, e := range list {
		parts[i] = fmt.Sprint(e)
	}
	return strings.Join(parts, ",")
}

// hashAlgo is os_hash_algo of new image data; Set refuses anything but sha256 and sha512, so
// a flag, XLOUD_HASHING_ALGORITHM and the YAML key are checked alike.
type hashAlgo string

func (h *hashAlgo) String() string { return string(*h) }

func (h *hashAlgo) Set(v string) error {
	if v != "sha256" && v != "sha512" {
		return fmt.Errorf("%q: want sha256 or sha512", v)
	}
	*h = hashAlgo(v)
	return nil
}

// choiceValue is a flag that takes one of a closed set of values; Set refuses any other, so a
// flag, its XLOUD_* variable and its YAML key are checked alike.
type choiceValue struct {
	p       *string
	allowed []string
}

// choice is a flag.Value over *p, which holds the default, accepting only allowed.
func choice(p *string, allowed ...string) *choiceValue { return &choiceValue{p, allowed} }

func (c *choiceValue) String() string {
	if c == nil || c.p == nil {
		return ""
	}
	return *c.p
}

func (c *choiceValue) Set(v string) error {
	if !slices.Contains(c.allowed, v) {
		return fmt.Errorf("%q: want one of %s", v, strings.Join(c.allowed, ", "))
	}
	*c.p = v
	return nil
}
