package metadefs

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sort"
	"strings"

	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/storage/meta"
)

// Shipped holds Glance's definition files (openstack/glance etc/metadefs, Apache-2.0; see
// definitions/NOTICE), loaded on a first start.
//
//go:embed definitions/*.json definitions/NOTICE
var shipped embed.FS

// Shipped is the directory of the shipped definition files.
func Shipped() fs.FS {
	sub, err := fs.Sub(shipped, "definitions")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

// Mode says what a load does with a namespace that exists (glance-manage db_load_metadefs).
type Mode int

// Load modes.
const (
	// Skip leaves existing namespaces as they are (the default).
	Skip Mode = iota
	// Merge keeps an existing namespace and its contents, adding what the file has that it
	// lacks (--merge).
	Merge
	// PreferNew merges, the file's values winning where both have one (--merge --prefer-new).
	PreferNew
	// Overwrite replaces the namespace and its contents by the file's (--overwrite).
	Overwrite
)

// MaxFileSize bounds one definition file (the largest shipped one is about 30 KiB).
const MaxFileSize = 1 << 20

// LoadReport is what a load did, namespace names per outcome.
type LoadReport struct {
	Created     []string `json:"created"`
	Merged      []string `json:"merged"`
	Overwritten []string `json:"overwritten"`
	Skipped     []string `json:"skipped"`
}

// File is one definition file: its name (for errors) and its bytes.
type File struct {
	Name string          `json:"name"`
	Data json.RawMessage `json:"data"`
}

// ReadFiles reads every *.json file at the top of dir, in name order. A file that is not
// regular or is too large fails the read, naming it.
func ReadFiles(dir fs.FS) ([]File, error) {
	entries, err := fs.ReadDir(dir, ".")
	if err != nil {
		return nil, fmt.Errorf("read definitions: %w", err)
	}
	var out []File
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := readFile(dir, e)
		if err != nil {
			return nil, fmt.Errorf("definition file %s: %w", e.Name(), err)
		}
		out = append(out, File{Name: e.Name(), Data: b})
	}
	if len(out) == 0 {
		return nil, errors.New("read definitions: no *.json files")
	}
	return out, nil
}

func readFile(dir fs.FS, e fs.DirEntry) ([]byte, error) {
	if !e.Type().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	f, err := dir.Open(e.Name())
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", MaxFileSize)
	}
	return b, nil
}

// ParseDefinitions checks every file as a namespace definition (the checks of a namespace
// create). Any bad file, or a namespace defined twice, fails the whole parse, naming the
// file: a load changes nothing unless every file is good.
func ParseDefinitions(files []File) ([]Namespace, error) {
	var out []Namespace
	seen := map[string]string{}
	for _, f := range files {
		if len(f.Data) > MaxFileSize {
			return nil, fmt.Errorf("definition file %s: larger than %d bytes", f.Name, MaxFileSize)
		}
		ns, err := DecodeNamespace(f.Data)
		if err != nil {
			if _, msg := catalog.KindOf(err); msg != "" {
				err = errors.New(msg)
			}
			return nil, fmt.Errorf("definition file %s: %w", f.Name, err)
		}
		if other, dup := seen[ns.Namespace]; dup {
			return nil, fmt.Errorf("definition file %s: namespace %s is also defined in %s", f.Name, ns.Namespace, other)
		}
		seen[ns.Namespace] = f.Name
		out = append(out, ns)
	}
	if len(out) == 0 {
		return nil, errors.New("no definition files")
	}
	return out, nil
}

// ReadDefinitions reads and parses the definition files of dir.
func ReadDefinitions(dir fs.FS) ([]Namespace, error) {
	files, err := ReadFiles(dir)
	if err != nil {
		return nil, err
	}
	return ParseDefinitions(files)
}

// Load stores the definitions read from files, as an operator does (no policy): each
// namespace is created, or handled by mode when it exists. All of it commits at once.
func (s *Store) Load(ctx context.Context, defs []Namespace, mode Mode) (LoadReport, error) {
	var rep LoadReport
	err := s.meta.Update(ctx, func(tx meta.Tx) error {
		rep = LoadReport{}
		if err := s.seedResourceTypes(tx); err != nil {
			return err
		}
		for _, def := range defs {
			if err := s.loadOne(tx, def, mode, &rep); err != nil {
				return fmt.Errorf("load namespace %s: %w", def.Namespace, err)
			}
		}
		return nil
	})
	return rep, err
}

func (s *Store) loadOne(tx meta.Tx, def Namespace, mode Mode, rep *LoadReport) error {
	def = def.clone()
	cur, err := getNamespace(tx, def.Namespace)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		if err := s.stamp(tx, &def); err != nil {
			return err
		}
		rep.Created = append(rep.Created, def.Namespace)
		return putNamespace(tx, def)
	case err != nil:
		return err
	case mode == Skip:
		rep.Skipped = append(rep.Skipped, def.Namespace)
		return nil
	case mode == Overwrite:
		if err := s.stamp(tx, &def); err != nil {
			return err
		}
		def.CreatedAt = cur.CreatedAt
		rep.Overwritten = append(rep.Overwritten, def.Namespace)
		return putNamespace(tx, def)
	}
	merged, err := s.merge(tx, cur, def, mode == PreferNew)
	if err != nil {
		return err
	}
	rep.Merged = append(rep.Merged, def.Namespace)
	return putNamespace(tx, merged)
}

// merge adds def's contents that cur lacks; with preferNew def's values also replace cur's
// (its own fields, and contents both have).
func (s *Store) merge(tx meta.Tx, cur, def Namespace, preferNew bool) (Namespace, error) {
	t := now(s.Now)
	if preferNew {
		cur.DisplayName, cur.Description, cur.Visibility, cur.Protected = def.DisplayName, def.Description, def.Visibility, def.Protected
	}
	if cur.Properties == nil && len(def.Properties) > 0 {
		cur.Properties = map[string]Property{}
	}
	for name, p := range def.Properties {
		if _, ok := cur.Properties[name]; !ok || preferNew {
			cur.Properties[name] = p
		}
	}
	for _, o := range def.Objects {
		o.CreatedAt, o.UpdatedAt = t, t
		switch i := findObject(cur.Objects, o.Name); {
		case i < 0:
			cur.Objects = append(cur.Objects, o)
		case preferNew:
			o.CreatedAt = cur.Objects[i].CreatedAt
			cur.Objects[i] = o
		}
	}
	for _, tag := range def.Tags {
		if findTagFold(cur.Tags, tag.Name) < 0 {
			cur.Tags = append(cur.Tags, Tag{Name: tag.Name, CreatedAt: t, UpdatedAt: t})
		}
	}
	for _, a := range def.Associations {
		a.CreatedAt, a.UpdatedAt = t, t
		if err := s.ensureResourceType(tx, a.Name, false); err != nil {
			return cur, err
		}
		switch i := findAssociation(cur.Associations, a.Name); {
		case i < 0:
			cur.Associations = append(cur.Associations, a)
		case preferNew:
			a.CreatedAt = cur.Associations[i].CreatedAt
			cur.Associations[i] = a
		}
	}
	cur.UpdatedAt = t
	return cur, nil
}

func (s *Store) seedResourceTypes(tx meta.Tx) error {
	for _, rt := range SeededResourceTypes {
		if err := s.ensureResourceType(tx, rt, true); err != nil {
			return err
		}
	}
	return nil
}

// Init prepares the definitions at a server's start: the seeded resource types always
// exist, and on a first start (no namespace, never seeded) the shipped definitions are
// loaded. It reports how many namespaces it loaded.
func (s *Store) Init(ctx context.Context) (int, error) {
	defs, err := ReadDefinitions(Shipped())
	if err != nil {
		return 0, err
	}
	loaded := 0
	err = s.meta.Update(ctx, func(tx meta.Tx) error {
		loaded = 0
		if err := s.seedResourceTypes(tx); err != nil {
			return err
		}
		if _, err := tx.Get(keySeeded); err == nil {
			return nil
		} else if !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		if n, err := tx.SetLen(setNamespaces); err != nil || n > 0 {
			if err == nil {
				err = tx.Put(keySeeded, []byte("1"))
			}
			return err
		}
		var rep LoadReport
		for _, def := range defs {
			if err := s.loadOne(tx, def, Skip, &rep); err != nil {
				return fmt.Errorf("load namespace %s: %w", def.Namespace, err)
			}
		}
		loaded = len(rep.Created)
		return tx.Put(keySeeded, []byte("1"))
	})
	return loaded, err
}

// Export returns every namespace whole, by name (for a backup or a diff).
func (s *Store) Export(ctx context.Context) ([]Namespace, error) {
	all, err := s.allNamespaces(ctx)
	sort.Slice(all, func(i, j int) bool { return all[i].Namespace < all[j].Namespace })
	return all, err
}

// ShippedNames lists the namespaces of the shipped definitions.
func ShippedNames() []string {
	defs, err := ReadDefinitions(Shipped())
	if err != nil {
		panic(err)
	}
	var out []string
	for _, d := range defs {
		out = append(out, d.Namespace)
	}
	slices.Sort(out)
	return out
}
