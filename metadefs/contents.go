package metadefs

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/storage/meta"
)

func protectedChild(kind, name string) error {
	return forbidden("Metadata definition %s %s is protected and cannot be deleted.", kind, name)
}

func objectNotFound(ns, name string) error {
	return notFound("The metadata definition object with name=%s was not found in namespace=%s.", name, ns)
}

func propertyNotFound(ns, name string) error {
	return notFound("The metadata definition property with name=%s was not found in namespace=%s.", name, ns)
}

func tagNotFound(ns, name string) error {
	return notFound("The metadata definition tag with name=%s was not found in namespace=%s.", name, ns)
}

func full(n int, what string) error {
	if n >= MaxChildren {
		return badRequest("A namespace holds at most %d %s.", MaxChildren, what)
	}
	return nil
}

// Objects lists a namespace's objects, oldest first.
func (s *Store) Objects(ctx context.Context, pr auth.Principal, ns string) ([]Object, error) {
	n, err := s.load(ctx, pr, ns, auth.MetadefGetObjects)
	if err != nil {
		return nil, err
	}
	return n.Objects, nil
}

// Object shows one object.
func (s *Store) Object(ctx context.Context, pr auth.Principal, ns, name string) (Object, error) {
	n, err := s.load(ctx, pr, ns, auth.MetadefGetObject)
	if err != nil {
		return Object{}, err
	}
	i := findObject(n.Objects, name)
	if i < 0 {
		return Object{}, objectNotFound(ns, name)
	}
	return n.Objects[i], nil
}

// CreateObject adds an object; its name must be free in the namespace (409).
func (s *Store) CreateObject(ctx context.Context, pr auth.Principal, ns string, obj Object) (Object, error) {
	var out Object
	_, err := s.change(ctx, pr, ns, auth.MetadefAddObject, func(_ meta.Tx, n *Namespace) error {
		if findObject(n.Objects, obj.Name) >= 0 {
			return conflict("A metadata definition object with name=%s already exists in namespace=%s.", obj.Name, ns)
		}
		if err := full(len(n.Objects), "objects"); err != nil {
			return err
		}
		out = obj
		out.CreatedAt, out.UpdatedAt = now(s.Now), now(s.Now)
		n.Objects = append(n.Objects, out)
		return nil
	})
	return out, err
}

// UpdateObject replaces an object (a new name must be free, 409).
func (s *Store) UpdateObject(ctx context.Context, pr auth.Principal, ns, name string, obj Object) (Object, error) {
	var out Object
	_, err := s.change(ctx, pr, ns, auth.MetadefModifyObject, func(_ meta.Tx, n *Namespace) error {
		i := findObject(n.Objects, name)
		if i < 0 {
			return objectNotFound(ns, name)
		}
		if j := findObject(n.Objects, obj.Name); j >= 0 && j != i {
			return conflict("A metadata definition object with name=%s already exists in namespace=%s.", obj.Name, ns)
		}
		out = obj
		out.CreatedAt, out.UpdatedAt = n.Objects[i].CreatedAt, now(s.Now)
		n.Objects = slices.Clone(n.Objects)
		n.Objects[i] = out
		return nil
	})
	return out, err
}

// DeleteObject removes an object; in a protected namespace 403.
func (s *Store) DeleteObject(ctx context.Context, pr auth.Principal, ns, name string) error {
	_, err := s.change(ctx, pr, ns, auth.MetadefDeleteObject, func(_ meta.Tx, n *Namespace) error {
		i := findObject(n.Objects, name)
		if i < 0 {
			return objectNotFound(ns, name)
		}
		if n.Protected {
			return protectedChild("object", name)
		}
		n.Objects = slices.Delete(slices.Clone(n.Objects), i, i+1)
		return nil
	})
	return err
}

// Properties lists a namespace's properties.
func (s *Store) Properties(ctx context.Context, pr auth.Principal, ns string) (map[string]Property, error) {
	n, err := s.load(ctx, pr, ns, auth.MetadefGetProperties)
	if err != nil {
		return nil, err
	}
	return n.Properties, nil
}

// Property shows one property (Name set). With resourceType naming an association that has
// a prefix, name is the prefixed name, as the resource carries it.
func (s *Store) Property(ctx context.Context, pr auth.Principal, ns, name, resourceType string) (Property, error) {
	n, err := s.load(ctx, pr, ns, auth.MetadefGetProperty)
	if err != nil {
		return Property{}, err
	}
	key := name
	if resourceType != "" {
		if p := n.prefix(resourceType); p != "" {
			var ok bool
			if key, ok = strings.CutPrefix(name, p); !ok {
				return Property{}, propertyNotFound(ns, name)
			}
		}
	}
	p, ok := n.Properties[key]
	if !ok {
		return Property{}, propertyNotFound(ns, name)
	}
	p.Name = name
	return p, nil
}

// CreateProperty adds a property; its name must be free in the namespace (409).
func (s *Store) CreateProperty(ctx context.Context, pr auth.Principal, ns, name string, p Property) (Property, error) {
	_, err := s.change(ctx, pr, ns, auth.MetadefAddProperty, func(_ meta.Tx, n *Namespace) error {
		if _, ok := n.Properties[name]; ok {
			return conflict("A metadata definition property with name=%s already exists in namespace=%s.", name, ns)
		}
		if err := full(len(n.Properties), "properties"); err != nil {
			return err
		}
		n.Properties = cloneProps(n.Properties)
		n.Properties[name] = p
		return nil
	})
	p.Name = name
	return p, err
}

// UpdateProperty replaces a property, renaming it to newName (which must be free, 409).
func (s *Store) UpdateProperty(ctx context.Context, pr auth.Principal, ns, name, newName string, p Property) (Property, error) {
	_, err := s.change(ctx, pr, ns, auth.MetadefModifyProperty, func(_ meta.Tx, n *Namespace) error {
		if _, ok := n.Properties[name]; !ok {
			return propertyNotFound(ns, name)
		}
		if _, ok := n.Properties[newName]; ok && newName != name {
			return conflict("A metadata definition property with name=%s already exists in namespace=%s.", newName, ns)
		}
		n.Properties = cloneProps(n.Properties)
		delete(n.Properties, name)
		n.Properties[newName] = p
		return nil
	})
	p.Name = newName
	return p, err
}

// DeleteProperty removes a property; in a protected namespace 403.
func (s *Store) DeleteProperty(ctx context.Context, pr auth.Principal, ns, name string) error {
	_, err := s.change(ctx, pr, ns, auth.MetadefRemoveProperty, func(_ meta.Tx, n *Namespace) error {
		if _, ok := n.Properties[name]; !ok {
			return propertyNotFound(ns, name)
		}
		if n.Protected {
			return protectedChild("property", name)
		}
		n.Properties = cloneProps(n.Properties)
		delete(n.Properties, name)
		return nil
	})
	return err
}

func cloneProps(m map[string]Property) map[string]Property {
	out := make(map[string]Property, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TagOptions are a tag list's query.
type TagOptions struct {
	Limit   int
	Marker  string
	SortKey string // created_at (default) or name
	SortDir string // desc (default) or asc
}

// Tags lists a namespace's tags, one page.
func (s *Store) Tags(ctx context.Context, pr auth.Principal, ns string, opt TagOptions) ([]Tag, error) {
	n, err := s.load(ctx, pr, ns, auth.MetadefGetTags)
	if err != nil {
		return nil, err
	}
	if opt.SortKey == "" {
		opt.SortKey = "created_at"
	}
	if opt.SortKey != "created_at" && opt.SortKey != "name" && opt.SortKey != "updated_at" {
		return nil, badRequest("Invalid sort key: %s. It must be one of the following: created_at, updated_at, name.", opt.SortKey)
	}
	tags := slices.Clone(n.Tags)
	slices.SortStableFunc(tags, func(a, b Tag) int {
		c := 0
		switch opt.SortKey {
		case "created_at":
			c = a.CreatedAt.Compare(b.CreatedAt.Time)
		case "updated_at":
			c = a.UpdatedAt.Compare(b.UpdatedAt.Time)
		}
		if c == 0 {
			c = cmp.Compare(a.Name, b.Name)
		}
		if opt.SortDir != "asc" {
			return -c
		}
		return c
	})
	if opt.Marker != "" {
		i := findTag(tags, opt.Marker)
		if i < 0 {
			return nil, tagNotFound(ns, opt.Marker)
		}
		tags = tags[i+1:]
	}
	if opt.Limit > 0 && len(tags) > opt.Limit {
		tags = tags[:opt.Limit]
	}
	return tags, nil
}

// findTagFold finds a tag case-insensitively: Glance's tag names are unique regardless of
// case.
func findTagFold(ts []Tag, name string) int {
	return slices.IndexFunc(ts, func(t Tag) bool { return strings.EqualFold(t.Name, name) })
}

func duplicateTag(ns, name string) error {
	return conflict("A metadata tag with name=%s already exists in namespace=%s. (Please note that metadata tag names are case insensitive).", name, ns)
}

// Tag shows one tag.
func (s *Store) Tag(ctx context.Context, pr auth.Principal, ns, name string) (Tag, error) {
	n, err := s.load(ctx, pr, ns, auth.MetadefGetTag)
	if err != nil {
		return Tag{}, err
	}
	i := findTag(n.Tags, name)
	if i < 0 {
		return Tag{}, tagNotFound(ns, name)
	}
	return n.Tags[i], nil
}

// CreateTag adds one tag (409 if it exists, in any case).
func (s *Store) CreateTag(ctx context.Context, pr auth.Principal, ns, name string) (Tag, error) {
	var out Tag
	_, err := s.change(ctx, pr, ns, auth.MetadefAddTag, func(_ meta.Tx, n *Namespace) error {
		if findTagFold(n.Tags, name) >= 0 {
			return duplicateTag(ns, name)
		}
		if err := full(len(n.Tags), "tags"); err != nil {
			return err
		}
		out = Tag{Name: name, CreatedAt: now(s.Now), UpdatedAt: now(s.Now)}
		n.Tags = append(slices.Clone(n.Tags), out)
		return nil
	})
	return out, err
}

// CreateTags replaces a namespace's tags with names, or adds them to its tags when appending
// (Glance's X-Openstack-Append); a name that exists is 409 and nothing changes.
func (s *Store) CreateTags(ctx context.Context, pr auth.Principal, ns string, names []string, appending bool) ([]Tag, error) {
	var out []Tag
	_, err := s.change(ctx, pr, ns, auth.MetadefAddTags, func(_ meta.Tx, n *Namespace) error {
		out = nil
		seen := map[string]bool{}
		for _, name := range names {
			if seen[strings.ToLower(name)] {
				return duplicateTag(ns, name)
			}
			seen[strings.ToLower(name)] = true
		}
		tags := slices.Clone(n.Tags)
		if !appending {
			tags = nil
		}
		for _, name := range names {
			if findTagFold(tags, name) >= 0 {
				return duplicateTag(ns, name)
			}
			t := Tag{Name: name, CreatedAt: now(s.Now), UpdatedAt: now(s.Now)}
			tags = append(tags, t)
			out = append(out, t)
		}
		if err := full(len(tags)-1, "tags"); err != nil {
			return err
		}
		n.Tags = tags
		return nil
	})
	return out, err
}

// RenameTag renames a tag (the new name must be free, 409).
func (s *Store) RenameTag(ctx context.Context, pr auth.Principal, ns, name, newName string) (Tag, error) {
	var out Tag
	_, err := s.change(ctx, pr, ns, auth.MetadefModifyTag, func(_ meta.Tx, n *Namespace) error {
		i := findTag(n.Tags, name)
		if i < 0 {
			return tagNotFound(ns, name)
		}
		if j := findTagFold(n.Tags, newName); j >= 0 && j != i {
			return duplicateTag(ns, newName)
		}
		n.Tags = slices.Clone(n.Tags)
		n.Tags[i].Name, n.Tags[i].UpdatedAt = newName, now(s.Now)
		out = n.Tags[i]
		return nil
	})
	return out, err
}

// DeleteTag removes a tag; in a protected namespace 403.
func (s *Store) DeleteTag(ctx context.Context, pr auth.Principal, ns, name string) error {
	_, err := s.change(ctx, pr, ns, auth.MetadefDeleteTag, func(_ meta.Tx, n *Namespace) error {
		i := findTag(n.Tags, name)
		if i < 0 {
			return tagNotFound(ns, name)
		}
		if n.Protected {
			return protectedChild("tag", name)
		}
		n.Tags = slices.Delete(slices.Clone(n.Tags), i, i+1)
		return nil
	})
	return err
}

func getResourceType(tx meta.Tx, name string) (resourceTypeRecord, error) {
	var rt resourceTypeRecord
	b, err := tx.Get(keyResourceType(name))
	if errors.Is(err, meta.ErrNotFound) {
		return rt, notFound("The metadata definition resource-type with name=%s, was not found.", name)
	}
	if err != nil {
		return rt, err
	}
	if err := json.Unmarshal(b, &rt); err != nil {
		return rt, fmt.Errorf("decode metadef resource type %s: %w", name, err)
	}
	return rt, nil
}

// ensureResourceType creates a resource type if it does not exist (an association naming a
// new type creates it, as Glance does).
func (s *Store) ensureResourceType(tx meta.Tx, name string, protected bool) error {
	if _, err := getResourceType(tx, name); err == nil {
		return nil
	} else if !errors.Is(err, catalog.ErrNotFound) {
		return err
	}
	t := now(s.Now)
	b, err := json.Marshal(resourceTypeRecord{Name: name, Protected: protected, CreatedAt: t, UpdatedAt: t})
	if err != nil {
		return err
	}
	if err := tx.Put(keyResourceType(name), b); err != nil {
		return err
	}
	return tx.SetAdd(setResourceTypes, name)
}

// ResourceTypes lists every resource type, by name.
func (s *Store) ResourceTypes(ctx context.Context, pr auth.Principal) ([]ResourceType, error) {
	if err := s.allow(ctx, pr, nil, auth.MetadefListResourceTypes); err != nil {
		return nil, err
	}
	var out []ResourceType
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		out = out[:0]
		names, err := tx.SetRange(setResourceTypes, "", 0)
		if err != nil {
			return err
		}
		for _, n := range names {
			rt, err := getResourceType(tx, n)
			if err != nil {
				return err
			}
			out = append(out, ResourceType(rt))
		}
		return nil
	})
	return out, err
}

// Associations lists a namespace's resource type associations.
func (s *Store) Associations(ctx context.Context, pr auth.Principal, ns string) ([]Association, error) {
	n, err := s.load(ctx, pr, ns, auth.MetadefListResourceAssocs)
	if err != nil {
		return nil, err
	}
	return n.Associations, nil
}

// Associate associates a namespace with a resource type (created if new); an existing
// association is 409.
func (s *Store) Associate(ctx context.Context, pr auth.Principal, ns string, a Association) (Association, error) {
	_, err := s.change(ctx, pr, ns, auth.MetadefAddAssociation, func(tx meta.Tx, n *Namespace) error {
		if findAssociation(n.Associations, a.Name) >= 0 {
			return conflict("The metadata definition resource-type association of resource-type=%s to namespace=%s already exists.", a.Name, ns)
		}
		if err := full(len(n.Associations), "resource type associations"); err != nil {
			return err
		}
		if err := s.ensureResourceType(tx, a.Name, false); err != nil {
			return err
		}
		a.CreatedAt, a.UpdatedAt = now(s.Now), now(s.Now)
		n.Associations = append(slices.Clone(n.Associations), a)
		return nil
	})
	return a, err
}

// Dissociate removes an association; in a protected namespace 403.
func (s *Store) Dissociate(ctx context.Context, pr auth.Principal, ns, rt string) error {
	_, err := s.change(ctx, pr, ns, auth.MetadefRemoveAssociation, func(tx meta.Tx, n *Namespace) error {
		if _, err := getResourceType(tx, rt); err != nil {
			return err
		}
		i := findAssociation(n.Associations, rt)
		if i < 0 {
			return notFound("The metadata definition resource-type association of resource-type=%s to namespace=%s, was not found.", rt, ns)
		}
		if n.Protected {
			return protectedChild("resource-type-association", rt)
		}
		n.Associations = slices.Delete(slices.Clone(n.Associations), i, i+1)
		return nil
	})
	return err
}
