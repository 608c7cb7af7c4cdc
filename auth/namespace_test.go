package auth

import (
	"context"
	"testing"
)

// TestCanonicalRepository: a repository named by a project's id belongs under the project's
// name; names, unknown first components and projects whose name is no path component (their
// id is their namespace) stay as they are.
func TestCanonicalRepository(t *testing.T) {
	w := newPolicyWorld(t)
	ctx := context.Background()
	ops, err := w.id.CreateProject(ctx, Project{Name: "Ops Team", Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := RepositoryNamespace(ops); got != ops.ID {
		t.Fatalf("namespace of %q: %s, want its id", ops.Name, got)
	}
	p := w.policy(ImageFacts{})
	for repo, want := range map[string]string{
		w.project["a"] + "/x":   "a/x",
		w.project["a"] + "/x/y": "a/x/y",
		"a/x":                   "a/x",
		"nobody/x":              "nobody/x",
		ops.ID + "/x":           ops.ID + "/x",
	} {
		if got, err := p.CanonicalRepository(ctx, repo); err != nil || got != want {
			t.Errorf("CanonicalRepository(%s): %s %v, want %s", repo, got, err, want)
		}
	}
}
