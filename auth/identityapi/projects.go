package identityapi

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/xloud/xloud-image/auth"
)

// projectRequest is the body of POST and PATCH /v3/projects.
type projectRequest struct {
	Project *struct {
		Name        optString `json:"name"`
		Description optString `json:"description"`
		Enabled     *bool     `json:"enabled"`
		DomainID    optString `json:"domain_id"`
		ParentID    optString `json:"parent_id"`
		IsDomain    *bool     `json:"is_domain"`
		Tags        []string  `json:"tags"`
	} `json:"project"`
}

// check refuses what this identity service does not model: other domains, nested projects,
// projects acting as domains, tags.
func (p *projectRequest) check() error {
	if p.Project == nil {
		return missing("project", "request body")
	}
	pr := p.Project
	switch {
	case pr.DomainID.Value != "" && pr.DomainID.Value != auth.DefaultDomainID:
		return notFound("domain", pr.DomainID.Value)
	case pr.ParentID.Value != "" && pr.ParentID.Value != auth.DefaultDomainID:
		return badRequest("Nested projects are not supported.")
	case pr.IsDomain != nil && *pr.IsDomain:
		return badRequest("Projects acting as domains are not supported.")
	case len(pr.Tags) > 0:
		return badRequest("Project tags are not supported.")
	}
	return nil
}

// handleListProjects answers GET /v3/projects, filtered by name, domain_id, enabled,
// is_domain and parent_id. Admins only (others list /v3/users/{me}/projects).
func (h *Handler) handleListProjects(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	if err := h.allow(r, caller, auth.IdentityListProjects, auth.IdentityTarget{}); err != nil {
		return err
	}
	ps, err := h.id.ListProjects(r.Context())
	if err != nil {
		return err
	}
	return h.writeProjects(w, r, filterProjects(r, ps))
}

func filterProjects(r *http.Request, ps []auth.Project) []auth.Project {
	q := r.URL.Query()
	if flag(r, "is_domain") {
		return nil
	}
	var out []auth.Project
	for _, p := range ps {
		switch {
		case q.Has("name") && !strings.EqualFold(q.Get("name"), p.Name),
			q.Has("domain_id") && q.Get("domain_id") != p.DomainID,
			q.Has("parent_id") && q.Get("parent_id") != p.DomainID,
			q.Has("enabled") && flag(r, "enabled") != p.Enabled:
			continue
		}
		out = append(out, p)
	}
	return out
}

func (h *Handler) writeProjects(w http.ResponseWriter, r *http.Request, ps []auth.Project) error {
	out := []projectJSON{}
	for _, p := range ps {
		out = append(out, projectOut(h.v3(r), p))
	}
	return writeJSON(w, r, http.StatusOK, map[string]any{"projects": out, "links": collectionLinks(r, h.v3(r))})
}

// handleCreateProject answers POST /v3/projects (admins only): 201 with the project, 409 when
// the name is taken.
func (h *Handler) handleCreateProject(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	if err := h.allow(r, caller, auth.IdentityCreateProject, auth.IdentityTarget{}); err != nil {
		return err
	}
	var req projectRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := req.check(); err != nil {
		return err
	}
	in := req.Project
	p := auth.Project{Name: in.Name.Value, Description: in.Description.Value, Enabled: in.Enabled == nil || *in.Enabled}
	p, err := h.id.CreateProject(r.Context(), p)
	if errors.Is(err, auth.ErrConflict) {
		return conflict("project", p.Name)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, r, http.StatusCreated, map[string]any{"project": projectOut(h.v3(r), p)})
}

// project returns the project with id, or Keystone's 404.
func (h *Handler) project(ctx context.Context, id string) (auth.Project, error) {
	p, err := h.id.GetProject(ctx, id)
	if errors.Is(err, auth.ErrNotFound) {
		return p, notFound("project", id)
	}
	return p, err
}

// handleGetProject answers GET /v3/projects/{id}: admins, and users holding a role on it.
func (h *Handler) handleGetProject(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	pid := r.PathValue("project")
	if err := h.allow(r, caller, auth.IdentityGetProject, auth.IdentityTarget{ProjectID: pid}); err != nil {
		return err
	}
	p, err := h.project(r.Context(), pid)
	if err != nil {
		return err
	}
	return writeJSON(w, r, http.StatusOK, map[string]any{"project": projectOut(h.v3(r), p)})
}

// handleUpdateProject answers PATCH /v3/projects/{id} (admins only): name, description,
// enabled.
func (h *Handler) handleUpdateProject(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	pid := r.PathValue("project")
	if err := h.allow(r, caller, auth.IdentityUpdateProject, auth.IdentityTarget{ProjectID: pid}); err != nil {
		return err
	}
	var req projectRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := req.check(); err != nil {
		return err
	}
	if _, err := h.project(r.Context(), pid); err != nil {
		return err
	}
	in := req.Project
	p, err := h.id.UpdateProject(r.Context(), pid, func(p *auth.Project) error {
		if in.Name.Set {
			p.Name = in.Name.Value
		}
		if in.Description.Set {
			p.Description = in.Description.Value
		}
		if in.Enabled != nil {
			p.Enabled = *in.Enabled
		}
		return nil
	})
	if errors.Is(err, auth.ErrConflict) {
		return conflict("project", in.Name.Value)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, r, http.StatusOK, map[string]any{"project": projectOut(h.v3(r), p)})
}

// handleDeleteProject answers DELETE /v3/projects/{id} (admins only); its role assignments go
// with it.
func (h *Handler) handleDeleteProject(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	pid := r.PathValue("project")
	if err := h.allow(r, caller, auth.IdentityDeleteProject, auth.IdentityTarget{ProjectID: pid}); err != nil {
		return err
	}
	if _, err := h.project(r.Context(), pid); err != nil {
		return err
	}
	if err := h.id.DeleteProject(r.Context(), pid); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// userProjects returns the projects user holds a role on, by name.
func (h *Handler) userProjects(ctx context.Context, userID string) ([]auth.Project, error) {
	as, err := h.id.Assignments(ctx, userID, "")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []auth.Project
	for _, a := range as {
		if seen[a.ProjectID] {
			continue
		}
		seen[a.ProjectID] = true
		p, err := h.id.GetProject(ctx, a.ProjectID)
		if errors.Is(err, auth.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	sortProjects(out)
	return out, nil
}

func sortProjects(ps []auth.Project) {
	slices.SortFunc(ps, func(a, b auth.Project) int { return strings.Compare(a.Name, b.Name) })
}
