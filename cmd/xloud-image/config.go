package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// config is the one configuration surface: flags, XLOUD_* environment variables and an
// optional YAML file, in that order of precedence.
type config struct {
	RegistryAddr  string
	APIAddr       string
	DataDir       string
	RedisURL      string
	Auth          string
	KeystoneURL   string
	AdminPassword string
	PublicURL     string
	APIPublicURL  string
	LogLevel      string
	TLSCert       string
	TLSKey        string
	AnonymousPull bool

	// The Image API and the registry's content rules.
	WebDownloadPorts string // comma-separated; empty: any (Glance's allowed_ports)
	SparseManifests  bool
	HashAlgo         hashAlgo

	// With --auth keystone: the service credentials and how long Keystone's answers count.
	KeystoneUser     string
	KeystonePassword string
	KeystoneProject  string
	KeystoneDomain   string
	KeystoneCacheTTL time.Duration
}

// commonFlags declares the flags every command shares (where the data is).
func commonFlags(fs *flag.FlagSet, c *config) *string {
	fs.StringVar(&c.DataDir, "data-dir", "./data", "blobs and the embedded store")
	fs.StringVar(&c.RedisURL, "redis-url", "", "use Redis as the metadata store (redis://HOST:PORT/DB); default: embedded")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
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
			if e := f.Value.Set(fmt.Sprint(v)); e != nil {
				err = fmt.Errorf("config %s: %w", f.Name, e)
			}
		}
	})
	return err
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
