package auth_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/internal/testenv"
	"github.com/xloud/xloud-image/storage/meta"
)

// TestBootstrapRace: nodes of a cluster starting together over one empty store each try to
// make the admin; exactly one does, none fails, and the store ends with one admin user and
// one admin project, the user holding the admin role, its password the winner's. On Redis
// (the store nodes share), many rounds; and once on bbolt.
func TestBootstrapRace(t *testing.T) {
	ctx := context.Background()
	addr := testenv.StartRedis(t)
	for round := range 3 {
		m, err := meta.OpenRedis(ctx, addr, fmt.Sprintf("boot%d:", round))
		if err != nil {
			t.Fatal(err)
		}
		checkBootstrapRace(t, m, 4, round == 0)
		m.Close()
	}
	bolt, err := meta.OpenBolt(filepath.Join(t.TempDir(), "meta.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	checkBootstrapRace(t, bolt, 4, false)
}

// Each password check costs a password hash (slow under the race detector): the losers'
// are checked when checkLosers.
func checkBootstrapRace(t *testing.T, m meta.Store, nodes int, checkLosers bool) {
	t.Helper()
	ctx := context.Background()
	created := make([]bool, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range nodes {
		wg.Go(func() {
			id := auth.NewIdentity(m) // a node of its own over the shared store
			<-start
			created[i], errs[i] = id.Bootstrap(ctx, fmt.Sprintf("password-of-node-%d", i))
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i := range nodes {
		if errs[i] != nil {
			t.Fatalf("node %d: bootstrap: %v", i, errs[i])
		}
		if created[i] {
			if winner >= 0 {
				t.Fatalf("nodes %d and %d both report creating the admin", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatal("no node created the admin")
	}
	id := auth.NewIdentity(m)
	users, err := id.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	projects, err := id.ListProjects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 1 || users[0].Name != auth.AdminName || len(projects) != 1 || projects[0].Name != auth.AdminName {
		t.Fatalf("after the race: users %+v, projects %+v; want one admin of each", users, projects)
	}
	roles, err := id.RolesOn(ctx, users[0].ID, projects[0].ID)
	if err != nil || !slices.Contains(roles, auth.RoleAdmin) {
		t.Fatalf("the admin's roles on its project: %v, %v", roles, err)
	}
	if _, err := id.Authenticate(ctx, auth.AdminName, fmt.Sprintf("password-of-node-%d", winner)); err != nil {
		t.Fatalf("the winner's password: %v", err)
	}
	for i := range nodes {
		if i != winner && checkLosers {
			if _, err := id.Authenticate(ctx, auth.AdminName, fmt.Sprintf("password-of-node-%d", i)); err == nil {
				t.Fatalf("node %d's password, which lost, authenticates", i)
			}
		}
	}
}
