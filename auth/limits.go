package auth

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/xloud/xloud-image/storage/meta"
)

// RegisteredLimit is Keystone's registered limit: the default of one resource of one service
// for every project that has no limit of its own.
type RegisteredLimit struct {
	ID           string `json:"id"`
	ServiceID    string `json:"service_id"`
	RegionID     string `json:"region_id,omitempty"`
	ResourceName string `json:"resource_name"`
	DefaultLimit int64  `json:"default_limit"`
	Description  string `json:"description,omitempty"`
}

// ProjectLimit is Keystone's limit: one project's own limit of one resource, which wins over
// the registered default.
type ProjectLimit struct {
	ID            string `json:"id"`
	ProjectID     string `json:"project_id"`
	ServiceID     string `json:"service_id"`
	RegionID      string `json:"region_id,omitempty"`
	ResourceName  string `json:"resource_name"`
	ResourceLimit int64  `json:"resource_limit"`
	Description   string `json:"description,omitempty"`
}

// Limits keeps Keystone's unified limits (registered limits and project limits) in the
// metadata store, so every node sharing the store enforces the same numbers.
//
//	reglimit:<id>                          RegisteredLimit
//	set reglimits                          registered limit ids
//	reglimitname:<service>|<region>|<res>  the registered limit of a resource
//	limit:<id>                             ProjectLimit
//	set limits                             project limit ids
//	limitname:<project>|<service>|<region>|<res>  a project's limit of a resource
type Limits struct{ meta meta.Store }

// NewLimits returns the unified-limits store over m.
func NewLimits(m meta.Store) *Limits { return &Limits{meta: m} }

func keyRegLimit(id string) string { return "reglimit:" + id }
func keyLimit(id string) string    { return "limit:" + id }
func keyRegLimitName(service, region, res string) string {
	return "reglimitname:" + service + "|" + region + "|" + res
}
func keyLimitName(project, service, region, res string) string {
	return "limitname:" + project + "|" + service + "|" + region + "|" + res
}

const (
	setRegLimits = "reglimits"
	setLimits    = "limits"
)

func validLimit(res string, n int64) error {
	switch {
	case res == "" || len(res) > 255:
		return fmt.Errorf("%w: resource_name must be 1-255 characters", ErrInvalid)
	case n < -1:
		return fmt.Errorf("%w: a limit must be -1 (unlimited) or more", ErrInvalid)
	}
	return nil
}

// CreateRegistered adds registered limits, all or none; a second one for the same service,
// region and resource is ErrConflict.
func (l *Limits) CreateRegistered(ctx context.Context, in []RegisteredLimit) ([]RegisteredLimit, error) {
	out := make([]RegisteredLimit, len(in))
	for i, r := range in {
		if err := validLimit(r.ResourceName, r.DefaultLimit); err != nil {
			return nil, err
		}
		r.ID = newID()
		out[i] = r
	}
	err := l.meta.Update(ctx, func(tx meta.Tx) error {
		for _, r := range out {
			name := keyRegLimitName(r.ServiceID, r.RegionID, r.ResourceName)
			if _, err := tx.Get(name); err == nil {
				return fmt.Errorf("%w: registered limit for %s", ErrConflict, r.ResourceName)
			}
			if err := putJSON(tx, keyRegLimit(r.ID), r); err != nil {
				return err
			}
			if err := tx.Put(name, []byte(r.ID)); err != nil {
				return err
			}
			if err := tx.SetAdd(setRegLimits, r.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListRegistered returns every registered limit, in id order.
func (l *Limits) ListRegistered(ctx context.Context) ([]RegisteredLimit, error) {
	return listLimits[RegisteredLimit](ctx, l.meta, setRegLimits, keyRegLimit)
}

// GetRegistered returns one registered limit, or ErrNotFound.
func (l *Limits) GetRegistered(ctx context.Context, id string) (RegisteredLimit, error) {
	var r RegisteredLimit
	err := l.meta.View(ctx, func(tx meta.Tx) error { return getJSON(tx, keyRegLimit(id), &r) })
	return r, err
}

// UpdateRegistered applies fn to a registered limit; a change of service, region or
// resource that collides with another is ErrConflict.
func (l *Limits) UpdateRegistered(ctx context.Context, id string, fn func(*RegisteredLimit) error) (RegisteredLimit, error) {
	var r RegisteredLimit
	err := l.meta.Update(ctx, func(tx meta.Tx) error {
		r = RegisteredLimit{}
		if err := getJSON(tx, keyRegLimit(id), &r); err != nil {
			return err
		}
		oldName := keyRegLimitName(r.ServiceID, r.RegionID, r.ResourceName)
		if err := fn(&r); err != nil {
			return err
		}
		if err := validLimit(r.ResourceName, r.DefaultLimit); err != nil {
			return err
		}
		r.ID = id
		if err := rename(tx, oldName, keyRegLimitName(r.ServiceID, r.RegionID, r.ResourceName), id); err != nil {
			return err
		}
		return putJSON(tx, keyRegLimit(id), r)
	})
	return r, err
}

// DeleteRegistered removes a registered limit; one that project limits still refine is
// ErrForbidden, as Keystone refuses it.
func (l *Limits) DeleteRegistered(ctx context.Context, id string) error {
	projectLimits, err := l.ListProjectLimits(ctx)
	if err != nil {
		return err
	}
	return l.meta.Update(ctx, func(tx meta.Tx) error {
		var r RegisteredLimit
		if err := getJSON(tx, keyRegLimit(id), &r); err != nil {
			return err
		}
		for _, p := range projectLimits {
			if p.ServiceID == r.ServiceID && p.RegionID == r.RegionID && p.ResourceName == r.ResourceName {
				return fmt.Errorf("%w: project limits of %s still refer to this registered limit", ErrForbidden, r.ResourceName)
			}
		}
		if err := tx.Delete(keyRegLimitName(r.ServiceID, r.RegionID, r.ResourceName)); err != nil {
			return err
		}
		if err := tx.Delete(keyRegLimit(id)); err != nil {
			return err
		}
		return tx.SetRemove(setRegLimits, id)
	})
}

// CreateProjectLimits adds project limits, all or none. Each needs the registered limit of
// its resource (Keystone's rule) and is unique per project, service, region and resource.
func (l *Limits) CreateProjectLimits(ctx context.Context, in []ProjectLimit) ([]ProjectLimit, error) {
	out := make([]ProjectLimit, len(in))
	for i, p := range in {
		if err := validLimit(p.ResourceName, p.ResourceLimit); err != nil {
			return nil, err
		}
		p.ID = newID()
		out[i] = p
	}
	err := l.meta.Update(ctx, func(tx meta.Tx) error {
		for _, p := range out {
			if _, err := tx.Get(keyRegLimitName(p.ServiceID, p.RegionID, p.ResourceName)); errors.Is(err, meta.ErrNotFound) {
				return fmt.Errorf("%w: no registered limit of %s for service %s: register its default first",
					ErrInvalid, p.ResourceName, p.ServiceID)
			} else if err != nil {
				return err
			}
			name := keyLimitName(p.ProjectID, p.ServiceID, p.RegionID, p.ResourceName)
			if _, err := tx.Get(name); err == nil {
				return fmt.Errorf("%w: limit of %s for project %s", ErrConflict, p.ResourceName, p.ProjectID)
			}
			if err := putJSON(tx, keyLimit(p.ID), p); err != nil {
				return err
			}
			if err := tx.Put(name, []byte(p.ID)); err != nil {
				return err
			}
			if err := tx.SetAdd(setLimits, p.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListProjectLimits returns every project limit, in id order.
func (l *Limits) ListProjectLimits(ctx context.Context) ([]ProjectLimit, error) {
	return listLimits[ProjectLimit](ctx, l.meta, setLimits, keyLimit)
}

// GetProjectLimit returns one project limit, or ErrNotFound.
func (l *Limits) GetProjectLimit(ctx context.Context, id string) (ProjectLimit, error) {
	var p ProjectLimit
	err := l.meta.View(ctx, func(tx meta.Tx) error { return getJSON(tx, keyLimit(id), &p) })
	return p, err
}

// UpdateProjectLimit applies fn to a project limit (Keystone lets only the limit and the
// description change).
func (l *Limits) UpdateProjectLimit(ctx context.Context, id string, fn func(*ProjectLimit) error) (ProjectLimit, error) {
	var p ProjectLimit
	err := l.meta.Update(ctx, func(tx meta.Tx) error {
		p = ProjectLimit{}
		if err := getJSON(tx, keyLimit(id), &p); err != nil {
			return err
		}
		old := p
		if err := fn(&p); err != nil {
			return err
		}
		if err := validLimit(p.ResourceName, p.ResourceLimit); err != nil {
			return err
		}
		p.ID, p.ProjectID, p.ServiceID, p.RegionID, p.ResourceName = id, old.ProjectID, old.ServiceID, old.RegionID, old.ResourceName
		return putJSON(tx, keyLimit(id), p)
	})
	return p, err
}

// DeleteProjectLimit removes a project limit.
func (l *Limits) DeleteProjectLimit(ctx context.Context, id string) error {
	return l.meta.Update(ctx, func(tx meta.Tx) error {
		var p ProjectLimit
		if err := getJSON(tx, keyLimit(id), &p); err != nil {
			return err
		}
		if err := tx.Delete(keyLimitName(p.ProjectID, p.ServiceID, p.RegionID, p.ResourceName)); err != nil {
			return err
		}
		if err := tx.Delete(keyLimit(id)); err != nil {
			return err
		}
		return tx.SetRemove(setLimits, id)
	})
}

// Effective returns a project's limits of a service as oslo.limit reads them: the project's
// own limit, else the registered default. enabled is false when the service has no
// registered limit at all (quotas are off); a resource named by neither is limit 0 then, as
// oslo.limit fails the check "as if we defaulted to a limit of zero". -1 is unlimited.
func (l *Limits) Effective(ctx context.Context, project, service, region string, resources []string) (limits map[string]int64, enabled bool, err error) {
	err = l.meta.View(ctx, func(tx meta.Tx) error {
		limits, enabled = map[string]int64{}, false
		ids, err := tx.SetRange(setRegLimits, "", 0)
		if err != nil {
			return err
		}
		for _, id := range ids {
			var r RegisteredLimit
			if err := getJSON(tx, keyRegLimit(id), &r); err != nil {
				return err
			}
			if r.ServiceID == service && (r.RegionID == "" || r.RegionID == region) {
				enabled = true
				limits[r.ResourceName] = r.DefaultLimit
			}
		}
		for _, res := range resources {
			if _, ok := limits[res]; !ok {
				limits[res] = 0
			}
			for _, reg := range []string{"", region} {
				b, err := tx.Get(keyLimitName(project, service, reg, res))
				if errors.Is(err, meta.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				var p ProjectLimit
				if err := getJSON(tx, keyLimit(string(b)), &p); err != nil {
					return err
				}
				limits[res] = p.ResourceLimit
			}
		}
		return nil
	})
	return limits, enabled, err
}

// rename moves a unique-name key to a new name; a taken new name is ErrConflict.
func rename(tx meta.Tx, oldName, newName, id string) error {
	if oldName == newName {
		return nil
	}
	if _, err := tx.Get(newName); err == nil {
		return fmt.Errorf("%w: another limit has this service, region and resource", ErrConflict)
	}
	if err := tx.Delete(oldName); err != nil {
		return err
	}
	return tx.Put(newName, []byte(id))
}

func listLimits[T any](ctx context.Context, m meta.Store, set string, key func(string) string) ([]T, error) {
	var out []T
	err := m.View(ctx, func(tx meta.Tx) error {
		out = nil
		ids, err := tx.SetRange(set, "", 0)
		if err != nil {
			return err
		}
		sort.Strings(ids)
		for _, id := range ids {
			var v T
			if err := getJSON(tx, key(id), &v); err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	return out, err
}

// Limits returns the unified-limits store sharing the identity's metadata store.
func (id *Identity) Limits() *Limits { return NewLimits(id.meta) }

// ServiceLimits reads one service's limits in one region from the embedded store: what
// the service enforces (catalog.LimitSource).
type ServiceLimits struct {
	Limits            *Limits
	ServiceID, Region string
}

// ProjectLimits returns project's limits of resources; enabled is false when the service
// has no registered limit.
func (s ServiceLimits) ProjectLimits(ctx context.Context, project string, resources []string) (map[string]int64, bool, error) {
	return s.Limits.Effective(ctx, project, s.ServiceID, s.Region, resources)
}
