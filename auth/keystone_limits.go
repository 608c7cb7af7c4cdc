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

	mu      sync.Mutex // guards tok, renewAt
	tok     string
	renewAt time.Time
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
		if err := kl.list(ctx, "/services?type="+url.QueryEscape(kl.ServiceType), &out, false); err != nil {
			return "", time.Time{}, err
		}
		switch len(out.Services) {
		case 0:
			return "", time.Time{}, nil // no such service: no limits
		case 1:
			return out.Services[0].ID, time.Time{}, nil
		}
		return "", time.Time{}, fmt.Errorf("keystone: %d services of type %s, want one", len(out.Services), kl.ServiceType)
	})
}

func (kl *KeystoneLimits) load(ctx context.Context, project string, resources []string) (keystoneLimits, error) {
	svc, err := kl.service(ctx)
	if err != nil || svc == "" {
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
	if err := kl.list(ctx, "/registered_limits?"+q, &reg, false); err != nil {
		return keystoneLimits{}, err
	}
	if len(reg.RegisteredLimits) == 0 {
		return keystoneLimits{}, nil // quotas are off; no system scope needed
	}
	var own struct {
		Limits []struct {
			ResourceName  string `json:"resource_name"`
			ResourceLimit int64  `json:"resource_limit"`
		} `json:"limits"`
	}
	if err := kl.list(ctx, "/limits?"+q+"&project_id="+url.QueryEscape(project), &own, true); err != nil {
		return keystoneLimits{}, err
	}
	out := keystoneLimits{limits: map[string]int64{}, enabled: true}
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

// list GETs a Keystone collection as the service user: with its system-scoped token when
// system is set (a 401 means the token went bad: sign in again and retry once), else with
// its project-scoped one.
func (kl *KeystoneLimits) list(ctx context.Context, path string, out any, system bool) error {
	for attempt := 0; ; attempt++ {
		var r ksResponse
		var err error
		if system {
			var tok string
			if tok, err = kl.token(ctx); err != nil {
				return err
			}
			r, err = kl.Keystone.send(ctx, http.MethodGet, path, http.Header{"X-Auth-Token": {tok}}, nil)
		} else {
			r, err = kl.Keystone.serviceCall(ctx, http.MethodGet, path, nil)
		}
		if err != nil {
			return fmt.Errorf("keystone: GET %s: %w", path, err)
		}
		if r.status == http.StatusUnauthorized && system && attempt == 0 {
			kl.mu.Lock()
			kl.tok = ""
			kl.mu.Unlock()
			continue
		}
		if r.status != http.StatusOK {
			return r.unexpected("GET " + path)
		}
		if err := json.Unmarshal(r.body, out); err != nil {
			return fmt.Errorf("keystone: GET %s: malformed answer: %w", path, err)
		}
		return nil
	}
}

// token is the service user's system-scoped token. oslo.limit reads limits so (Glance's
// [oslo_limit] user has reader on system all): a project-scoped token would list only its
// own project's limits. It is renewed every ten minutes, well within Keystone's expiry.
func (kl *KeystoneLimits) token(ctx context.Context) (string, error) {
	kl.mu.Lock()
	defer kl.mu.Unlock()
	now := kl.Keystone.Now()
	if kl.tok != "" && now.Before(kl.renewAt) {
		return kl.tok, nil
	}
	cfg := kl.Keystone.cfg
	a := map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{"user": map[string]any{
			"name": cfg.User, "password": cfg.Password, "domain": map[string]string{"name": cfg.UserDomain}}}},
		"scope": map[string]any{"system": map[string]bool{"all": true}},
	}
	r, err := kl.Keystone.send(ctx, http.MethodPost, "/auth/tokens?nocatalog", nil, map[string]any{"auth": a})
	if err != nil {
		return "", fmt.Errorf("keystone: system-scoped token for reading limits: %w", err)
	}
	if r.status != http.StatusCreated && r.status != http.StatusOK {
		return "", fmt.Errorf("%w (the service user needs the reader role on system all to read unified limits)",
			r.unexpected("system-scoped token for reading limits"))
	}
	kl.tok, kl.renewAt = r.header.Get("X-Subject-Token"), now.Add(10*time.Minute)
	return kl.tok, nil
}
