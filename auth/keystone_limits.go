package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// KeystoneLimits reads a service's unified limits from Keystone as oslo.limit does: the
// project's own limit (GET /v3/limits), else the registered default (GET
// /v3/registered_limits), else 0. Answers are cached per project for a short while (TTL),
// so a changed limit applies within it. The service is found by type in Keystone's
// catalog (GET /v3/services?type=); region, when set, narrows limits to it.
type KeystoneLimits struct {
	Keystone    *Keystone
	ServiceType string
	Region      string
	TTL         time.Duration

	once      sync.Once
	cache     *ttlCache[keystoneLimits]
	serviceID *ttlCache[string]
}

type keystoneLimits struct {
	limits  map[string]int64
	enabled bool
}

func (kl *KeystoneLimits) init() {
	kl.once.Do(func() {
		ttl := kl.TTL
		if ttl <= 0 {
			ttl = 10 * time.Second
		}
		now := func() time.Time { return kl.Keystone.Now() }
		kl.cache = newTTLCache[keystoneLimits](ttl, ttl, 10000, now)
		kl.serviceID = newTTLCache[string](ttl, ttl, 4, now)
	})
}

// ProjectLimits implements catalog.LimitSource.
func (kl *KeystoneLimits) ProjectLimits(ctx context.Context, project string, resources []string) (map[string]int64, bool, error) {
	kl.init()
	ans, err := kl.cache.get(ctx, project, func(ctx context.Context) (keystoneLimits, time.Time, error) {
		l, err := kl.load(ctx, project, resources)
		return l, time.Time{}, err
	})
	if err != nil {
		return nil, false, err
	}
	out := make(map[string]int64, len(ans.limits))
	for k, v := range ans.limits {
		out[k] = v
	}
	return out, ans.enabled, nil
}

func (kl *KeystoneLimits) service(ctx context.Context) (string, error) {
	return kl.serviceID.get(ctx, kl.ServiceType, func(ctx context.Context) (string, time.Time, error) {
		var out struct {
			Services []struct {
				ID string `json:"id"`
			} `json:"services"`
		}
		if err := kl.list(ctx, "/services?type="+url.QueryEscape(kl.ServiceType), &out); err != nil {
			return "", time.Time{}, err
		}
		if len(out.Services) != 1 {
			return "", time.Time{}, fmt.Errorf("keystone: %d services of type %s, want one", len(out.Services), kl.ServiceType)
		}
		return out.Services[0].ID, time.Time{}, nil
	})
}

func (kl *KeystoneLimits) load(ctx context.Context, project string, resources []string) (keystoneLimits, error) {
	svc, err := kl.service(ctx)
	if err != nil {
		return keystoneLimits{}, err
	}
	q := "service_id=" + url.QueryEscape(svc)
	if kl.Region != "" {
		q += "&region_id=" + url.QueryEscape(kl.Region)
	}
	var reg struct {
		RegisteredLimits []struct {
			ResourceName string `json:"resource_name"`
			DefaultLimit int64  `json:"default_limit"`
		} `json:"registered_limits"`
	}
	if err := kl.list(ctx, "/registered_limits?"+q, &reg); err != nil {
		return keystoneLimits{}, err
	}
	var own struct {
		Limits []struct {
			ResourceName  string `json:"resource_name"`
			ResourceLimit int64  `json:"resource_limit"`
		} `json:"limits"`
	}
	if err := kl.list(ctx, "/limits?"+q+"&project_id="+url.QueryEscape(project), &own); err != nil {
		return keystoneLimits{}, err
	}
	out := keystoneLimits{limits: map[string]int64{}, enabled: len(reg.RegisteredLimits) > 0}
	for _, r := range resources {
		out.limits[r] = 0
	}
	for _, r := range reg.RegisteredLimits {
		out.limits[r.ResourceName] = r.DefaultLimit
	}
	for _, l := range own.Limits {
		out.limits[l.ResourceName] = l.ResourceLimit
	}
	return out, nil
}

// list GETs a Keystone collection as the service user.
func (kl *KeystoneLimits) list(ctx context.Context, path string, out any) error {
	r, err := kl.Keystone.serviceCall(ctx, http.MethodGet, path, nil)
	if err != nil {
		return fmt.Errorf("keystone: GET %s: %w", path, err)
	}
	if r.status != http.StatusOK {
		return r.unexpected("GET " + path)
	}
	if err := json.Unmarshal(r.body, out); err != nil {
		return fmt.Errorf("keystone: GET %s: malformed answer: %w", path, err)
	}
	return nil
}
