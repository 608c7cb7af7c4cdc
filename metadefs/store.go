package metadefs

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/storage/meta"
)

// Metadata keys of the definitions (beside storage/layout.go's and the catalog's):
//
//	metadef:ns:<namespace>      Namespace, with all its contents (one read shows it whole)
//	set metadef:namespaces      every namespace name
//	metadef:rt:<name>           resourceTypeRecord
//	set metadef:resource_types  every resource type name
//	metadef:gen                 a counter bumped by every write (the property checker's cache key)
//	metadef:seeded              set once the shipped definitions were loaded on a first start
func keyNamespace(name string) string    { return "metadef:ns:" + name }
func keyResourceType(name string) string { return "metadef:rt:" + name }

const (
	setNamespaces    = "metadef:namespaces"
	setResourceTypes = "metadef:resource_types"
	keyGen           = "metadef:gen"
	keySeeded        = "metadef:seeded"
)

// SeededResourceTypes are the resource types that always exist and cannot be removed
// (Glance's migrations seed them, §2.4).
var SeededResourceTypes = []string{"OS::Glance::Image", "OS::Cinder::Volume", "OS::Nova::Flavor", "OS::Nova::Aggregate", "OS::Nova::Server"}

// Store keeps the definitions in the metadata store and answers every request through the
// one policy.
type Store struct {
	meta   meta.Store
	policy *auth.Policy
	// Now is replaceable in tests.
	Now func() time.Time

	mu    sync.Mutex
	rules *ruleIndex // the property checker's index, with the generation it was built at
	shown map[shownKey]shown
	// listed is every namespace's summary as of one generation (lists filter and page it).
	listed *summaries
}

type summaries struct {
	gen int64
	all []Namespace
}

// shownKey and shown are a namespace show as encoded for the wire, kept until the
// definitions' generation moves on (every write bumps it, on every node).
type shownKey struct{ name, resourceType string }

type shown struct {
	gen   int64
	facts auth.MetadefFacts
	body  []byte
}

// maxShown bounds the encoded shows kept (all are dropped when full).
const maxShown = 1024

// New returns the definitions over m, deciding access with policy.
func New(m meta.Store, policy *auth.Policy) *Store {
	return &Store{meta: m, policy: policy, Now: time.Now}
}

func facts(ns Namespace) auth.MetadefFacts {
	return auth.MetadefFacts{Owner: ns.Owner, Visibility: ns.Visibility}
}

func getNamespace(tx meta.Tx, name string) (Namespace, error) {
	var ns Namespace
	b, err := tx.Get(keyNamespace(name))
	if errors.Is(err, meta.ErrNotFound) {
		return ns, notFound("Metadata definition namespace=%s was not found.", name)
	}
	if err != nil {
		return ns, err
	}
	if err := json.Unmarshal(b, &ns); err != nil {
		return ns, fmt.Errorf("decode metadef namespace %s: %w", name, err)
	}
	return ns, nil
}

func putNamespace(tx meta.Tx, ns Namespace) error {
	b, err := json.Marshal(ns)
	if err != nil {
		return err
	}
	if err := tx.Put(keyNamespace(ns.Namespace), b); err != nil {
		return err
	}
	if err := tx.SetAdd(setNamespaces, ns.Namespace); err != nil {
		return err
	}
	return bumpGen(tx)
}

func deleteNamespace(tx meta.Tx, name string) error {
	if err := tx.Delete(keyNamespace(name)); err != nil {
		return err
	}
	if err := tx.SetRemove(setNamespaces, name); err != nil {
		return err
	}
	return bumpGen(tx)
}

func bumpGen(tx meta.Tx) error {
	n, err := readGen(tx)
	if err != nil {
		return err
	}
	return tx.Put(keyGen, []byte(strconv.FormatInt(n+1, 10)))
}

func readGen(tx meta.Tx) (int64, error) {
	b, err := tx.Get(keyGen)
	if errors.Is(err, meta.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(string(b), 10, 64)
}

// load reads one namespace as pr may see it: invisible ones are missing (404), and act must
// be allowed (403).
func (s *Store) load(ctx context.Context, pr auth.Principal, name string, act auth.MetadefAction) (Namespace, error) {
	var ns Namespace
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		var err error
		ns, err = getNamespace(tx, name)
		return err
	})
	if err != nil {
		return ns, err
	}
	if !s.policy.MetadefVisible(pr, facts(ns)) {
		return ns, notFound("Metadata definition namespace=%s was not found.", name)
	}
	return ns, s.allow(ctx, pr, &ns, act)
}

func (s *Store) allow(ctx context.Context, pr auth.Principal, ns *Namespace, act auth.MetadefAction) error {
	var f *auth.MetadefFacts
	if ns != nil {
		x := facts(*ns)
		f = &x
	}
	ok, err := s.policy.AllowMetadef(ctx, pr, f, act)
	if err != nil {
		return err
	}
	if !ok {
		return forbidden("Access was denied to this resource: policy does not allow %s to be performed.", act)
	}
	return nil
}

// change checks act on namespace name for pr, then runs fn on the stored namespace in one
// transaction and stores what fn leaves (fn may run more than once). It returns the
// namespace as stored.
func (s *Store) change(ctx context.Context, pr auth.Principal, name string, act auth.MetadefAction, fn func(tx meta.Tx, ns *Namespace) error) (Namespace, error) {
	if _, err := s.load(ctx, pr, name, act); err != nil {
		return Namespace{}, err
	}
	var out Namespace
	err := s.meta.Update(ctx, func(tx meta.Tx) error {
		ns, err := getNamespace(tx, name)
		if err != nil {
			return err
		}
		if err := fn(tx, &ns); err != nil {
			return err
		}
		ns.UpdatedAt = now(s.Now)
		out = ns
		return putNamespace(tx, ns)
	})
	return out, err
}

// ListOptions are a namespace list's query: Glance's limit, marker (a namespace name),
// sort_key, sort_dir, visibility and resource_types filters.
type ListOptions struct {
	Limit         int
	Marker        string
	SortKey       string // created_at (default), updated_at, namespace, display_name
	SortDir       string // desc (default) or asc
	Visibility    string // "", public or private
	ResourceTypes []string
}

// SortKeys are the namespace list's sort keys.
var SortKeys = []string{"created_at", "updated_at", "namespace", "display_name"}

// ListNamespaces lists the namespaces pr may see, with their resource type associations,
// one page: more is true when the page is full (Glance then links the next one).
func (s *Store) ListNamespaces(ctx context.Context, pr auth.Principal, opt ListOptions) (page []Namespace, more bool, err error) {
	if err := s.allow(ctx, pr, nil, auth.MetadefListNamespaces); err != nil {
		return nil, false, err
	}
	if opt.SortKey == "" {
		opt.SortKey = "created_at"
	}
	if !slices.Contains(SortKeys, opt.SortKey) {
		return nil, false, badRequest("Invalid sort key: %s. It must be one of the following: %s.", opt.SortKey, strings.Join(SortKeys, ", "))
	}
	all, err := s.summaries(ctx)
	if err != nil {
		return nil, false, err
	}
	var seen []Namespace
	for _, ns := range all {
		if !s.policy.MetadefVisible(pr, facts(ns)) || (opt.Visibility != "" && ns.Visibility != opt.Visibility) {
			continue
		}
		if len(opt.ResourceTypes) > 0 && !slices.ContainsFunc(ns.Associations, func(a Association) bool { return slices.Contains(opt.ResourceTypes, a.Name) }) {
			continue
		}
		seen = append(seen, ns)
	}
	sortNamespaces(seen, opt.SortKey, opt.SortDir != "asc")
	if opt.Marker != "" {
		i := slices.IndexFunc(seen, func(ns Namespace) bool { return ns.Namespace == opt.Marker })
		if i < 0 {
			return nil, false, notFound("Metadata definition namespace=%s was not found.", opt.Marker)
		}
		seen = seen[i+1:]
	}
	if opt.Limit > 0 && len(seen) >= opt.Limit {
		return seen[:opt.Limit], true, nil
	}
	return seen, false, nil
}

// sortNamespaces orders by key, ties by name, all in one direction (as Glance's paginated
// query does).
func sortNamespaces(nss []Namespace, key string, desc bool) {
	slices.SortStableFunc(nss, func(a, b Namespace) int {
		c := 0
		switch key {
		case "created_at":
			c = a.CreatedAt.Compare(b.CreatedAt.Time)
		case "updated_at":
			c = a.UpdatedAt.Compare(b.UpdatedAt.Time)
		case "display_name":
			c = cmp.Compare(deref(a.DisplayName), deref(b.DisplayName))
		}
		if c == 0 {
			c = cmp.Compare(a.Namespace, b.Namespace)
		}
		if desc {
			return -c
		}
		return c
	})
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// summaries returns every namespace's summary, decoded again only when a write bumped the
// definitions' generation since the last list.
func (s *Store) summaries(ctx context.Context) ([]Namespace, error) {
	var gen int64
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		var err error
		gen, err = readGen(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	cur := s.listed
	s.mu.Unlock()
	if cur != nil && cur.gen == gen {
		return cur.all, nil
	}
	all, err := s.allNamespaces(ctx)
	if err != nil {
		return nil, err
	}
	for i := range all {
		all[i] = all[i].Summary()
	}
	s.mu.Lock()
	s.listed = &summaries{gen: gen, all: all} // gen was read first: never fresher than it says
	s.mu.Unlock()
	return all, nil
}

func (s *Store) allNamespaces(ctx context.Context) ([]Namespace, error) {
	var out []Namespace
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		out = out[:0]
		names, err := tx.SetRange(setNamespaces, "", 0)
		if err != nil {
			return err
		}
		for _, n := range names {
			ns, err := getNamespace(tx, n)
			if err != nil {
				return err
			}
			out = append(out, ns)
		}
		return nil
	})
	return out, err
}

// GetNamespace shows a namespace with all its contents. With resourceType naming one of its
// associations, property names carry that association's prefix (§2.1).
func (s *Store) GetNamespace(ctx context.Context, pr auth.Principal, name, resourceType string) (Namespace, error) {
	ns, err := s.load(ctx, pr, name, auth.MetadefGetNamespace)
	if err != nil || resourceType == "" {
		return ns, err
	}
	prefix := ns.prefix(resourceType)
	if prefix == "" {
		return ns, nil
	}
	ns.Properties = prefixed(ns.Properties, prefix)
	for i := range ns.Objects {
		o := &ns.Objects[i]
		o.Properties = prefixed(o.Properties, prefix)
		req := make([]string, len(o.Required))
		for j, r := range o.Required {
			req[j] = prefix + r
		}
		if o.Required != nil {
			o.Required = req
		}
	}
	return ns, nil
}

func (ns Namespace) prefix(resourceType string) string {
	if i := findAssociation(ns.Associations, resourceType); i >= 0 {
		return deref(ns.Associations[i].Prefix)
	}
	return ""
}

func prefixed(props map[string]Property, prefix string) map[string]Property {
	if props == nil {
		return nil
	}
	out := make(map[string]Property, len(props))
	for k, v := range props {
		out[prefix+k] = v
	}
	return out
}

// ShowNamespace is GetNamespace encoded by encode, kept until the definitions change: a
// repeated show costs one small read and the policy's answer, not the decoding and encoding
// of the namespace with all its contents. encode must give the same bytes for the same
// namespace.
func (s *Store) ShowNamespace(ctx context.Context, pr auth.Principal, name, resourceType string, encode func(Namespace) ([]byte, error)) ([]byte, error) {
	var gen int64
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		var err error
		gen, err = readGen(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	key := shownKey{name, resourceType}
	s.mu.Lock()
	c, ok := s.shown[key]
	s.mu.Unlock()
	if ok && c.gen == gen {
		if !s.policy.MetadefVisible(pr, c.facts) {
			return nil, notFound("Metadata definition namespace=%s was not found.", name)
		}
		return c.body, s.allow(ctx, pr, &Namespace{Owner: c.facts.Owner, Visibility: c.facts.Visibility}, auth.MetadefGetNamespace)
	}
	ns, err := s.GetNamespace(ctx, pr, name, resourceType)
	if err != nil {
		return nil, err
	}
	body, err := encode(ns)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.shown == nil || len(s.shown) >= maxShown {
		s.shown = map[shownKey]shown{}
	}
	// gen was read before the namespace: a write in between leaves an entry that is
	// already stale, never a stale entry that looks fresh.
	s.shown[key] = shown{gen: gen, facts: facts(ns), body: body}
	s.mu.Unlock()
	return body, nil
}

// CreateNamespace adds a namespace, with whatever contents it carries, owned by the
// caller's project unless an owner is given. Names are unique across all projects (409).
func (s *Store) CreateNamespace(ctx context.Context, pr auth.Principal, ns Namespace) (Namespace, error) {
	if err := s.allow(ctx, pr, nil, auth.MetadefAddNamespace); err != nil {
		return ns, err
	}
	if ns.Owner == "" {
		ns.Owner = pr.ProjectID
	}
	var out Namespace
	err := s.meta.Update(ctx, func(tx meta.Tx) error {
		if _, err := tx.Get(keyNamespace(ns.Namespace)); err == nil {
			return conflict("The metadata definition namespace=%s already exists.", ns.Namespace)
		} else if !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		n := ns.clone()
		if err := s.stamp(tx, &n); err != nil {
			return err
		}
		out = n
		return putNamespace(tx, n)
	})
	return out, err
}

// stamp timestamps a new namespace and everything in it, and creates the resource types
// its associations name.
func (s *Store) stamp(tx meta.Tx, ns *Namespace) error {
	t := now(s.Now)
	ns.CreatedAt, ns.UpdatedAt = t, t
	for i := range ns.Objects {
		ns.Objects[i].CreatedAt, ns.Objects[i].UpdatedAt = t, t
	}
	for i := range ns.Tags {
		ns.Tags[i].CreatedAt, ns.Tags[i].UpdatedAt = t, t
	}
	for i := range ns.Associations {
		ns.Associations[i].CreatedAt, ns.Associations[i].UpdatedAt = t, t
		if err := s.ensureResourceType(tx, ns.Associations[i].Name, false); err != nil {
			return err
		}
	}
	return nil
}

// UpdateNamespace replaces a namespace's own fields with in's (what in leaves unset is
// reset, as Glance's PUT does); its contents stay. A new name must be free (409).
func (s *Store) UpdateNamespace(ctx context.Context, pr auth.Principal, name string, in Namespace) (Namespace, error) {
	if _, err := s.load(ctx, pr, name, auth.MetadefModifyNamespace); err != nil {
		return Namespace{}, err
	}
	var out Namespace
	err := s.meta.Update(ctx, func(tx meta.Tx) error {
		ns, err := getNamespace(tx, name)
		if err != nil {
			return err
		}
		if in.Namespace != name {
			if _, err := tx.Get(keyNamespace(in.Namespace)); err == nil {
				return conflict("The metadata definition namespace=%s already exists.", in.Namespace)
			}
			if err := deleteNamespace(tx, name); err != nil {
				return err
			}
		}
		ns.Namespace, ns.DisplayName, ns.Description = in.Namespace, in.DisplayName, in.Description
		ns.Visibility, ns.Protected = in.Visibility, in.Protected
		if in.Owner != "" {
			ns.Owner = in.Owner
		}
		ns.UpdatedAt = now(s.Now)
		out = ns
		return putNamespace(tx, ns)
	})
	return out, err
}

// DeleteNamespace removes a namespace and its contents; a protected one is 403.
func (s *Store) DeleteNamespace(ctx context.Context, pr auth.Principal, name string) error {
	ns, err := s.load(ctx, pr, name, auth.MetadefDeleteNamespace)
	if err != nil {
		return err
	}
	if ns.Protected {
		return forbidden("Metadata definition namespace %s is protected and cannot be deleted.", name)
	}
	return s.meta.Update(ctx, func(tx meta.Tx) error {
		cur, err := getNamespace(tx, name)
		if err != nil {
			return err
		}
		if cur.Protected {
			return forbidden("Metadata definition namespace %s is protected and cannot be deleted.", name)
		}
		return deleteNamespace(tx, name)
	})
}

// What a bulk delete removes.
const (
	AllObjects    = "objects"
	AllProperties = "properties"
	AllTags       = "tags"
)

// DeleteAll removes all objects, properties or tags of a namespace (what); protected is 403.
func (s *Store) DeleteAll(ctx context.Context, pr auth.Principal, name, what string) error {
	if what == AllTags {
		if _, err := s.load(ctx, pr, name, auth.MetadefDeleteTags); err != nil {
			return err
		}
	}
	_, err := s.change(ctx, pr, name, auth.MetadefDeleteNamespace, func(_ meta.Tx, ns *Namespace) error {
		if ns.Protected {
			return forbidden("Metadata definition namespace %s is protected and cannot be deleted.", name)
		}
		switch what {
		case AllObjects:
			ns.Objects = nil
		case AllProperties:
			ns.Properties = nil
		case AllTags:
			ns.Tags = nil
		default:
			return fmt.Errorf("delete all %q: no such contents", what)
		}
		return nil
	})
	return err
}
