package main

import (
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"

	"github.com/xloud/xloud-image/storage"
)

// storeSpec is one --store NAME=URL.
type storeSpec struct {
	Name string
	URL  string
}

// storeList is the repeatable --store flag. From XLOUD_STORE or the YAML file the value is
// a comma-separated list of NAME=URL.
type storeList []storeSpec

var storeNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

func (l *storeList) String() string {
	if l == nil {
		return ""
	}
	var parts []string
	for _, s := range *l {
		parts = append(parts, s.Name+"="+redactStoreURL(s.URL))
	}
	return strings.Join(parts, ",")
}

func (l *storeList) Set(v string) error {
	for _, item := range strings.Split(v, ",") {
		name, raw, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok || !storeNameRE.MatchString(name) {
			return fmt.Errorf("%q: want NAME=URL, NAME of lower-case letters, digits, - and _", redactSpec(item))
		}
		for _, s := range *l {
			if s.Name == name {
				return fmt.Errorf("store %q given twice", name)
			}
		}
		u, err := url.Parse(raw)
		if err != nil {
			return fmt.Errorf("store %s: URL does not parse", name)
		}
		switch {
		case u.Scheme == "file" && u.Path != "" && u.Host == "":
		case u.Scheme == "s3" && u.Host != "":
		default:
			return fmt.Errorf("store %s: %q: want file:///DIR or s3://BUCKET[/PREFIX]?endpoint=…&region=…", name, redactStoreURL(raw))
		}
		*l = append(*l, storeSpec{Name: name, URL: raw})
	}
	return nil
}

// redactStoreURL hides credentials in a store URL.
func redactStoreURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// redactSpec hides credentials in NAME=URL.
func redactSpec(item string) string {
	name, raw, _ := strings.Cut(item, "=")
	return name + "=" + redactStoreURL(raw)
}

// openBlobStores opens the configured stores; without --store it is the filesystem store
// of the data directory, as it has always been.
func openBlobStores(c config) ([]storage.NamedStore, error) {
	if len(c.Stores) == 0 {
		if c.DefaultStore != "" && c.DefaultStore != storage.DefaultStoreName {
			return nil, fmt.Errorf("--default-store %s: no such --store", c.DefaultStore)
		}
		files, err := storage.OpenFiles(c.DataDir)
		if err != nil {
			return nil, err
		}
		return []storage.NamedStore{{Name: storage.DefaultStoreName, Store: files}}, nil
	}
	var out []storage.NamedStore
	for _, s := range c.Stores {
		var b storage.BlobStore
		var err error
		if strings.HasPrefix(s.URL, "file:") {
			u, _ := url.Parse(s.URL)
			b, err = storage.OpenFiles(u.Path)
		} else {
			b, err = storage.OpenS3(s.URL)
		}
		if err != nil {
			return nil, fmt.Errorf("store %s: %w", s.Name, err)
		}
		out = append(out, storage.NamedStore{Name: s.Name, Store: b})
	}
	return out, nil
}

// checkCache refuses cache flags that cannot work, before anything is created.
func (c config) checkCache() error {
	if c.CacheDir == "" {
		return nil
	}
	if c.CacheMaxSize <= 0 {
		return fmt.Errorf("--cache-max-size %d: want a positive number of bytes", c.CacheMaxSize)
	}
	if c.CachePrefetchDelay < 0 {
		return fmt.Errorf("--cache-prefetch-delay %v: want a duration of at least 0", c.CachePrefetchDelay)
	}
	remote := false
	for _, s := range c.Stores {
		remote = remote || strings.HasPrefix(s.URL, "s3:")
	}
	if !remote {
		slog.Warn("--cache-dir: no remote (s3) store is configured, so nothing will be cached")
	}
	return nil
}
