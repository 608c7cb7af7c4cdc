package identityapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/xloud/xloud-image/auth"
)

// userRequest is the body of POST and PATCH /v3/users.
type userRequest struct {
	User *struct {
		Name             optString `json:"name"`
		Password         optString `json:"password"`
		Enabled          *bool     `json:"enabled"`
		DomainID         optString `json:"domain_id"`
		DefaultProjectID optString `json:"default_project_id"`
		Email            optString `json:"email"`
		Description      optString `json:"description"`
	} `json:"user"`
}

// checkUser refuses other domains and a default project that does not exist.
func (h *Handler) checkUser(ctx context.Context, req *userRequest) error {
	if req.User == nil {
		return missing("user", "request body")
	}
	if d := req.User.DomainID.Value; d != "" && d != auth.DefaultDomainID {
		return notFound("domain", d)
	}
	if pid := req.User.DefaultProjectID.Value; pid != "" {
		if _, err := h.id.GetProject(ctx, pid); errors.Is(err, auth.ErrNotFound) {
			return badRequest("Invalid default_project_id: no project %s.", pid)
		} else if err != nil {
			return err
		}
	}
	return nil
}

// handleListUsers answers GET /v3/users, filtered by name, domain_id and enabled (admins
// only).
func (h *Handler) handleListUsers(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	if err := h.allow(r, caller, auth.IdentityListUsers, auth.IdentityTarget{}); err != nil {
		return err
	}
	us, err := h.id.ListUsers(r.Context())
	if err != nil {
		return err
	}
	q := r.URL.Query()
	out := []userJSON{}
	for _, u := range us {
		switch {
		case q.Has("name") && !strings.EqualFold(q.Get("name"), u.Name),
			q.Has("domain_id") && q.Get("domain_id") != u.DomainID,
			q.Has("enabled") && flag(r, "enabled") != u.Enabled:
			continue
		}
		out = append(out, userOut(h.v3(r), u))
	}
	return writeJSON(w, r, http.StatusOK, map[string]any{"users": out, "links": collectionLinks(r, h.v3(r))})
}

// handleCreateUser answers POST /v3/users (admins only): 201 with the user, 409 when the
// name is taken.
func (h *Handler) handleCreateUser(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	if err := h.allow(r, caller, auth.IdentityCreateUser, auth.IdentityTarget{}); err != nil {
		return err
	}
	var req userRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := h.checkUser(r.Context(), &req); err != nil {
		return err
	}
	in := req.User
	u := auth.User{Name: in.Name.Value, Enabled: in.Enabled == nil || *in.Enabled,
		DefaultProjectID: in.DefaultProjectID.Value, Email: in.Email.Value, Description: in.Description.Value}
	u, err := h.id.CreateUser(r.Context(), u, in.Password.Value)
	if errors.Is(err, auth.ErrConflict) {
		return conflict("user", u.Name)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, r, http.StatusCreated, map[string]any{"user": userOut(h.v3(r), u)})
}

// user returns the user with id, or Keystone's 404.
func (h *Handler) user(ctx context.Context, id string) (auth.User, error) {
	u, err := h.id.GetUser(ctx, id)
	if errors.Is(err, auth.ErrNotFound) {
		return u, notFound("user", id)
	}
	return u, err
}

// handleGetUser answers GET /v3/users/{id}: admins, and the user itself.
func (h *Handler) handleGetUser(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	uid := r.PathValue("user")
	if err := h.allow(r, caller, auth.IdentityGetUser, auth.IdentityTarget{UserID: uid}); err != nil {
		return err
	}
	u, err := h.user(r.Context(), uid)
	if err != nil {
		return err
	}
	return writeJSON(w, r, http.StatusOK, map[string]any{"user": userOut(h.v3(r), u)})
}

// handleUpdateUser answers PATCH /v3/users/{id} (admins only): name, password, enabled,
// default project, email, description.
func (h *Handler) handleUpdateUser(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	uid := r.PathValue("user")
	if err := h.allow(r, caller, auth.IdentityUpdateUser, auth.IdentityTarget{UserID: uid}); err != nil {
		return err
	}
	var req userRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := h.checkUser(r.Context(), &req); err != nil {
		return err
	}
	if _, err := h.user(r.Context(), uid); err != nil {
		return err
	}
	in := req.User
	u, err := h.id.UpdateUser(r.Context(), uid, in.Password.Value, func(u *auth.User) error {
		set(&u.Name, in.Name)
		set(&u.DefaultProjectID, in.DefaultProjectID)
		set(&u.Email, in.Email)
		set(&u.Description, in.Description)
		if in.Enabled != nil {
			u.Enabled = *in.Enabled
		}
		return nil
	})
	if errors.Is(err, auth.ErrConflict) {
		return conflict("user", in.Name.Value)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, r, http.StatusOK, map[string]any{"user": userOut(h.v3(r), u)})
}

func set(dst *string, o optString) {
	if o.Set {
		*dst = o.Value
	}
}

// handleDeleteUser answers DELETE /v3/users/{id} (admins only); its role assignments go with
// it and its tokens stop validating.
func (h *Handler) handleDeleteUser(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	uid := r.PathValue("user")
	if err := h.allow(r, caller, auth.IdentityDeleteUser, auth.IdentityTarget{UserID: uid}); err != nil {
		return err
	}
	if _, err := h.user(r.Context(), uid); err != nil {
		return err
	}
	if err := h.id.DeleteUser(r.Context(), uid); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// passwordRequest is the body of POST /v3/users/{id}/password.
type passwordRequest struct {
	User *struct {
		Password         string `json:"password"`
		OriginalPassword string `json:"original_password"`
	} `json:"user"`
}

// handleChangePassword answers POST /v3/users/{id}/password: users change their own password
// by giving the current one (`openstack user password set`); 204.
func (h *Handler) handleChangePassword(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	uid := r.PathValue("user")
	if err := h.allow(r, caller, auth.IdentityChangePassword, auth.IdentityTarget{UserID: uid}); err != nil {
		return err
	}
	var req passwordRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.User == nil || req.User.Password == "" {
		return missing("password", "user")
	}
	u, err := h.user(r.Context(), uid)
	if err != nil {
		return err
	}
	if _, err := h.id.Authenticate(r.Context(), u.Name, req.User.OriginalPassword); err != nil {
		return err
	}
	if _, err := h.id.UpdateUser(r.Context(), uid, req.User.Password, func(*auth.User) error { return nil }); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleListUserProjects answers GET /v3/users/{id}/projects: the projects the user holds a
// role on; admins, and the user itself.
func (h *Handler) handleListUserProjects(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	uid := r.PathValue("user")
	if err := h.allow(r, caller, auth.IdentityListUserProjects, auth.IdentityTarget{UserID: uid}); err != nil {
		return err
	}
	if _, err := h.user(r.Context(), uid); err != nil {
		return err
	}
	ps, err := h.userProjects(r.Context(), uid)
	if err != nil {
		return err
	}
	return h.writeProjects(w, r, filterProjects(r, ps))
}
