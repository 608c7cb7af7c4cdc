package auth_test

import (
	"context"
	"errors"
	"testing"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/internal/testenv"
)

// TestLimitsStore: registered limits and project limits on both metadata backends: unique
// per service, region and resource; a project limit needs its registered default; a
// registered limit refined by project limits cannot go; Effective reads as oslo.limit
// (project limit, else default, else 0) and says whether the service has limits at all.
func TestLimitsStore(t *testing.T) {
	redisURL := testenv.StartRedis(t)
	for _, backend := range []string{"", redisURL} {
		testLimitsStore(t, auth.NewLimits(testenv.OpenStore(t, backend).Meta()))
	}
}

func testLimitsStore(t *testing.T, l *auth.Limits) {
	ctx := context.Background()
	res := []string{"image_size_total", "image_count_total", "image_stage_total"}
	if got, on, err := l.Effective(ctx, "p1", "svc", "RegionOne", res); err != nil || on || got["image_size_total"] != 0 {
		t.Fatalf("no limits: %v %v %v", got, on, err)
	}
	if _, err := l.CreateProjectLimits(ctx, []auth.ProjectLimit{{ProjectID: "p1", ServiceID: "svc", ResourceName: "image_size_total", ResourceLimit: 5}}); !errors.Is(err, auth.ErrInvalid) {
		t.Fatalf("project limit without a default: %v", err)
	}
	regs, err := l.CreateRegistered(ctx, []auth.RegisteredLimit{
		{ServiceID: "svc", ResourceName: "image_size_total", DefaultLimit: 10},
		{ServiceID: "svc", RegionID: "RegionOne", ResourceName: "image_count_total", DefaultLimit: 3},
		{ServiceID: "other", ResourceName: "image_stage_total", DefaultLimit: 7},
	})
	if err != nil || len(regs) != 3 || regs[0].ID == "" {
		t.Fatalf("create registered: %v %v", regs, err)
	}
	// All or none: one duplicate in a batch adds nothing.
	if _, err := l.CreateRegistered(ctx, []auth.RegisteredLimit{{ServiceID: "svc", ResourceName: "new", DefaultLimit: 1},
		{ServiceID: "svc", ResourceName: "image_size_total", DefaultLimit: 1}}); !errors.Is(err, auth.ErrConflict) {
		t.Fatalf("duplicate registered limit: %v", err)
	}
	if all, _ := l.ListRegistered(ctx); len(all) != 3 {
		t.Fatalf("after the refused batch: %v", all)
	}
	if _, err := l.CreateRegistered(ctx, []auth.RegisteredLimit{{ServiceID: "svc", ResourceName: "x", DefaultLimit: -2}}); !errors.Is(err, auth.ErrInvalid) {
		t.Fatalf("limit -2: %v", err)
	}
	pls, err := l.CreateProjectLimits(ctx, []auth.ProjectLimit{{ProjectID: "p1", ServiceID: "svc", ResourceName: "image_size_total", ResourceLimit: 20}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreateProjectLimits(ctx, []auth.ProjectLimit{{ProjectID: "p1", ServiceID: "svc", ResourceName: "image_size_total", ResourceLimit: 2}}); !errors.Is(err, auth.ErrConflict) {
		t.Fatalf("duplicate project limit: %v", err)
	}
	got, on, err := l.Effective(ctx, "p1", "svc", "RegionOne", res)
	if err != nil || !on || got["image_size_total"] != 20 || got["image_count_total"] != 3 || got["image_stage_total"] != 0 {
		t.Fatalf("p1: %v %v %v", got, on, err)
	}
	if got, _, _ := l.Effective(ctx, "p2", "svc", "RegionOne", res); got["image_size_total"] != 10 {
		t.Fatalf("p2 (default): %v", got)
	}
	if got, _, _ := l.Effective(ctx, "p2", "svc", "RegionTwo", res); got["image_count_total"] != 0 {
		t.Fatalf("another region does not get RegionOne's default: %v", got)
	}
	// Updates: a project limit's number changes, its resource never.
	if p, err := l.UpdateProjectLimit(ctx, pls[0].ID, func(p *auth.ProjectLimit) error {
		p.ResourceLimit, p.ResourceName = 30, "sneaky"
		return nil
	}); err != nil || p.ResourceLimit != 30 || p.ResourceName != "image_size_total" {
		t.Fatalf("update project limit: %v %v", p, err)
	}
	if _, err := l.UpdateRegistered(ctx, regs[0].ID, func(r *auth.RegisteredLimit) error {
		r.ResourceName = "image_count_total"
		r.RegionID = "RegionOne"
		return nil
	}); !errors.Is(err, auth.ErrConflict) {
		t.Fatalf("update onto another registered limit: %v", err)
	}
	if err := l.DeleteRegistered(ctx, regs[0].ID); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("delete a refined registered limit: %v", err)
	}
	if err := l.DeleteProjectLimit(ctx, pls[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteRegistered(ctx, regs[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := l.GetRegistered(ctx, regs[0].ID); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("deleted registered limit: %v", err)
	}
	if got, _, _ := l.Effective(ctx, "p1", "svc", "RegionOne", res); got["image_size_total"] != 0 {
		t.Fatalf("after deletes: %v", got)
	}
}
