// Package auth is who may do what: identity (projects, users, role assignments), tokens
// (Keystone-style tokens and short-lived registry bearer tokens), external Keystone, and the
// one policy decision both APIs call.
package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/xloud/xloud-image/storage/meta"
)

// Domain errors of the identity store.
var (
	ErrNotFound       = errors.New("not found")
	ErrConflict       = errors.New("already exists")
	ErrUnauthorized   = errors.New("authentication failed")
	ErrInvalid        = errors.New("invalid request")
	ErrForbidden      = errors.New("forbidden")
	ErrTokenExpired   = errors.New("token expired")
	ErrTokenMalformed = errors.New("token malformed")
)

// Role is a Keystone default role.
type Role string

// The roles every deployment has (Keystone's defaults since 2024.1); admin implies manager
// implies member implies reader.
const (
	RoleAdmin   Role = "admin"
	RoleManager Role = "manager"
	RoleMember  Role = "member"
	RoleReader  Role = "reader"
)

// Roles lists the known roles, strongest first.
var Roles = []Role{RoleAdmin, RoleManager, RoleMember, RoleReader}

// RoleID is the stable id a role has on the wire.
func RoleID(r Role) string { return "role-" + string(r) }

// DefaultDomainID is the only domain: Keystone's "default" (name "Default").
const (
	DefaultDomainID   = "default"
	DefaultDomainName = "Default"
)

// Project is a tenant: it owns repositories and images.
type Project struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	DomainID    string `json:"domain_id"`
	Description string `json:"description"`
	Enabled     bool   `json:"enabled"`
}

// User is someone who authenticates.
type User struct {
	ID               string `json:"id"`
	Name             string `json:"name"`
	DomainID         string `json:"domain_id"`
	DefaultProjectID string `json:"default_project_id,omitempty"`
	Email            string `json:"email,omitempty"`
	Description      string `json:"description,omitempty"`
	Enabled          bool   `json:"enabled"`
	PasswordHash     string `json:"password_hash,omitempty"`
}

// Assignment is one role of one user on one project.
type Assignment struct {
	UserID    string `json:"user_id"`
	ProjectID string `json:"project_id"`
	Role      Role   `json:"role"`
}

// Identity keeps projects, users and role assignments in the metadata store, so every server
// node sharing the store shares them.
type Identity struct {
	meta meta.Store
	// Now is the clock; tests replace it.
	Now       func() time.Time
	passwords *passwordCache
}

// NewIdentity returns the identity store over m.
func NewIdentity(m meta.Store) *Identity {
	return &Identity{meta: m, Now: time.Now, passwords: newPasswordCache()}
}

// Metadata keys of the identity store (see storage/layout.go for the registry's).
//
//	project:<id>                 Project
//	projectname:<lower name>     project id
//	set projects                 project ids
//	user:<id>                    User
//	username:<lower name>        user id
//	set users                    user ids
//	set roles:<user>:<project>   role names of a user on a project
//	set userprojects:<user>      projects where the user has a role
//	set projectusers:<project>   users with a role on the project
//	set systemroles:<user>       role names of a user on the system (Keystone's system scope)
//	set systemusers              users with a role on the system
//	token:<sha256 of token>      Token
//	set tokens                   <expiry>|<sha256 of token>, for purging expired ones
//	set usertokens:<user>        the same entries per user, revoked with a password change
//	authkey                      registry token signing key
//	lockout:user:<lower name>    recent failed sign-ins of a user name (throttle.go)
//	lockout:addr:<client ip>     recent failed sign-ins from an address
//	set lockouts                 the lockout keys, for sweeping stale ones
func keyProject(id string) string           { return "project:" + id }
func keyProjectName(name string) string     { return "projectname:" + strings.ToLower(name) }
func keyUser(id string) string              { return "user:" + id }
func keyUserName(name string) string        { return "username:" + strings.ToLower(name) }
func keyRoles(user, project string) string  { return "roles:" + user + ":" + project }
func keyUserProjects(user string) string    { return "userprojects:" + user }
func keyProjectUsers(project string) string { return "projectusers:" + project }
func keySystemRoles(user string) string     { return "systemroles:" + user }

const setSystemUsers = "systemusers"

const (
	setProjects = "projects"
	setUsers    = "users"
)

// newID returns a Keystone-style id: 32 lowercase hex characters.
func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func getJSON(tx meta.Tx, key string, v any) error {
	b, err := tx.Get(key)
	if errors.Is(err, meta.ErrNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func putJSON(tx meta.Tx, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Put(key, b)
}

// Name limits are Keystone's: projects 64 characters, users 255 (tempest's dynamic user
// names pass 64).
const (
	maxProjectName = 64
	maxUserName    = 255
)

// validName: names are what users type; keep them printable and bounded.
func validName(name string, limit int) error {
	if name == "" || len(name) > limit || strings.ContainsAny(name, "\x00\n\r\t/:") {
		return fmt.Errorf("%w: name must be 1-%d printable characters without '/' or ':'", ErrInvalid, limit)
	}
	return nil
}

// CreateProject adds a project; names are unique, case-insensitively.
func (id *Identity) CreateProject(ctx context.Context, p Project) (Project, error) {
	if err := validName(p.Name, maxProjectName); err != nil {
		return p, err
	}
	if p.ID == "" {
		p.ID = newID()
	}
	if p.DomainID == "" {
		p.DomainID = DefaultDomainID
	}
	err := id.meta.Update(ctx, func(tx meta.Tx) error {
		if _, err := tx.Get(keyProjectName(p.Name)); err == nil {
			return fmt.Errorf("%w: project %q", ErrConflict, p.Name)
		}
		if err := putJSON(tx, keyProject(p.ID), p); err != nil {
			return err
		}
		if err := tx.Put(keyProjectName(p.Name), []byte(p.ID)); err != nil {
			return err
		}
		return tx.SetAdd(setProjects, p.ID)
	})
	return p, err
}

// GetProject returns the project with id.
func (id *Identity) GetProject(ctx context.Context, pid string) (Project, error) {
	var p Project
	err := id.meta.View(ctx, func(tx meta.Tx) error { return getJSON(tx, keyProject(pid), &p) })
	return p, err
}

// ProjectByName returns the project named name (case-insensitive).
func (id *Identity) ProjectByName(ctx context.Context, name string) (Project, error) {
	var p Project
	err := id.meta.View(ctx, func(tx meta.Tx) error {
		v, err := tx.Get(keyProjectName(name))
		if errors.Is(err, meta.ErrNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		return getJSON(tx, keyProject(string(v)), &p)
	})
	return p, err
}

// ListProjects returns every project, by name.
func (id *Identity) ListProjects(ctx context.Context) ([]Project, error) {
	var out []Project
	err := id.meta.View(ctx, func(tx meta.Tx) error {
		ids, err := tx.SetRange(setProjects, "", 0)
		if err != nil {
			return err
		}
		for _, pid := range ids {
			var p Project
			if err := getJSON(tx, keyProject(pid), &p); err == nil {
				out = append(out, p)
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// UpdateProject changes a project's name, description or enabled flag.
func (id *Identity) UpdateProject(ctx context.Context, pid string, fn func(*Project) error) (Project, error) {
	var p Project
	err := id.meta.Update(ctx, func(tx meta.Tx) error {
		if err := getJSON(tx, keyProject(pid), &p); err != nil {
			return err
		}
		old := p.Name
		if err := fn(&p); err != nil {
			return err
		}
		p.ID = pid
		if p.Name != old {
			if err := validName(p.Name, maxProjectName); err != nil {
				return err
			}
			if v, err := tx.Get(keyProjectName(p.Name)); err == nil && string(v) != pid {
				return fmt.Errorf("%w: project %q", ErrConflict, p.Name)
			}
			if err := tx.Delete(keyProjectName(old)); err != nil {
				return err
			}
			if err := tx.Put(keyProjectName(p.Name), []byte(pid)); err != nil {
				return err
			}
		}
		return putJSON(tx, keyProject(pid), p)
	})
	return p, err
}

// DeleteProject removes a project and every role assignment on it.
func (id *Identity) DeleteProject(ctx context.Context, pid string) error {
	return id.meta.Update(ctx, func(tx meta.Tx) error {
		var p Project
		if err := getJSON(tx, keyProject(pid), &p); err != nil {
			return err
		}
		users, err := tx.SetRange(keyProjectUsers(pid), "", 0)
		if err != nil {
			return err
		}
		for _, u := range users {
			if err := dropAssignments(tx, u, pid); err != nil {
				return err
			}
		}
		tx.Delete(keyProjectName(p.Name))
		tx.SetRemove(setProjects, pid)
		return tx.Delete(keyProject(pid))
	})
}

func dropAssignments(tx meta.Tx, user, project string) error {
	roles, err := tx.SetRange(keyRoles(user, project), "", 0)
	if err != nil {
		return err
	}
	for _, r := range roles {
		tx.SetRemove(keyRoles(user, project), r)
	}
	tx.SetRemove(keyUserProjects(user), project)
	return tx.SetRemove(keyProjectUsers(project), user)
}

// CreateUser adds a user with a password (stored as a salted slow hash).
func (id *Identity) CreateUser(ctx context.Context, u User, password string) (User, error) {
	if err := validName(u.Name, maxUserName); err != nil {
		return u, err
	}
	if u.ID == "" {
		u.ID = newID()
	}
	if u.DomainID == "" {
		u.DomainID = DefaultDomainID
	}
	if password != "" {
		h, err := hashPassword(password)
		if err != nil {
			return u, err
		}
		u.PasswordHash = h
	}
	err := id.meta.Update(ctx, func(tx meta.Tx) error {
		if _, err := tx.Get(keyUserName(u.Name)); err == nil {
			return fmt.Errorf("%w: user %q", ErrConflict, u.Name)
		}
		if err := putJSON(tx, keyUser(u.ID), u); err != nil {
			return err
		}
		if err := tx.Put(keyUserName(u.Name), []byte(u.ID)); err != nil {
			return err
		}
		return tx.SetAdd(setUsers, u.ID)
	})
	return u, err
}

// GetUser returns the user with id.
func (id *Identity) GetUser(ctx context.Context, uid string) (User, error) {
	var u User
	err := id.meta.View(ctx, func(tx meta.Tx) error { return getJSON(tx, keyUser(uid), &u) })
	return u, err
}

// UserByName returns the user named name (case-insensitive).
func (id *Identity) UserByName(ctx context.Context, name string) (User, error) {
	var u User
	err := id.meta.View(ctx, func(tx meta.Tx) error {
		v, err := tx.Get(keyUserName(name))
		if errors.Is(err, meta.ErrNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		return getJSON(tx, keyUser(string(v)), &u)
	})
	return u, err
}

// ListUsers returns every user, by name.
func (id *Identity) ListUsers(ctx context.Context) ([]User, error) {
	var out []User
	err := id.meta.View(ctx, func(tx meta.Tx) error {
		ids, err := tx.SetRange(setUsers, "", 0)
		if err != nil {
			return err
		}
		for _, uid := range ids {
			var u User
			if err := getJSON(tx, keyUser(uid), &u); err == nil {
				out = append(out, u)
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// UpdateUser changes a user; a non-empty password replaces the old one.
func (id *Identity) UpdateUser(ctx context.Context, uid string, password string, fn func(*User) error) (User, error) {
	var hash string
	if password != "" {
		h, err := hashPassword(password)
		if err != nil {
			return User{}, err
		}
		hash = h
	}
	var u User
	err := id.meta.Update(ctx, func(tx meta.Tx) error {
		if err := getJSON(tx, keyUser(uid), &u); err != nil {
			return err
		}
		old := u.Name
		if err := fn(&u); err != nil {
			return err
		}
		u.ID = uid
		if hash != "" {
			u.PasswordHash = hash
		}
		if hash != "" || !u.Enabled {
			if err := revokeUserTokens(tx, uid); err != nil {
				return err
			}
		}
		if u.Name != old {
			if err := validName(u.Name, maxUserName); err != nil {
				return err
			}
			if v, err := tx.Get(keyUserName(u.Name)); err == nil && string(v) != uid {
				return fmt.Errorf("%w: user %q", ErrConflict, u.Name)
			}
			tx.Delete(keyUserName(old))
			if err := tx.Put(keyUserName(u.Name), []byte(uid)); err != nil {
				return err
			}
		}
		return putJSON(tx, keyUser(uid), u)
	})
	if err == nil {
		id.passwords.forget(uid)
	}
	return u, err
}

// DeleteUser removes a user and its role assignments.
func (id *Identity) DeleteUser(ctx context.Context, uid string) error {
	err := id.meta.Update(ctx, func(tx meta.Tx) error {
		var u User
		if err := getJSON(tx, keyUser(uid), &u); err != nil {
			return err
		}
		projects, err := tx.SetRange(keyUserProjects(uid), "", 0)
		if err != nil {
			return err
		}
		for _, p := range projects {
			if err := dropAssignments(tx, uid, p); err != nil {
				return err
			}
		}
		if err := tx.Delete(keySystemRoles(uid)); err != nil {
			return err
		}
		if err := tx.SetRemove(setSystemUsers, uid); err != nil {
			return err
		}
		if err := revokeUserTokens(tx, uid); err != nil {
			return err
		}
		tx.Delete(keyUserName(u.Name))
		tx.SetRemove(setUsers, uid)
		return tx.Delete(keyUser(uid))
	})
	id.passwords.forget(uid)
	return err
}

// ValidRole reports whether r is a known role.
func ValidRole(r Role) bool { return slices.Contains(Roles, r) }

// Grant gives user the role on project.
func (id *Identity) Grant(ctx context.Context, userID, projectID string, r Role) error {
	if !ValidRole(r) {
		return fmt.Errorf("%w: role %q", ErrNotFound, r)
	}
	return id.meta.Update(ctx, func(tx meta.Tx) error {
		var u User
		if err := getJSON(tx, keyUser(userID), &u); err != nil {
			return fmt.Errorf("user %s: %w", userID, err)
		}
		var p Project
		if err := getJSON(tx, keyProject(projectID), &p); err != nil {
			return fmt.Errorf("project %s: %w", projectID, err)
		}
		if err := tx.SetAdd(keyRoles(userID, projectID), string(r)); err != nil {
			return err
		}
		if err := tx.SetAdd(keyUserProjects(userID), projectID); err != nil {
			return err
		}
		return tx.SetAdd(keyProjectUsers(projectID), userID)
	})
}

// Revoke takes the role away; a role the user does not have is ErrNotFound.
func (id *Identity) Revoke(ctx context.Context, userID, projectID string, r Role) error {
	return id.meta.Update(ctx, func(tx meta.Tx) error {
		ok, err := tx.SetHas(keyRoles(userID, projectID), string(r))
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotFound
		}
		if err := tx.SetRemove(keyRoles(userID, projectID), string(r)); err != nil {
			return err
		}
		n, err := tx.SetLen(keyRoles(userID, projectID))
		if err != nil || n > 0 {
			return err
		}
		tx.SetRemove(keyUserProjects(userID), projectID)
		return tx.SetRemove(keyProjectUsers(projectID), userID)
	})
}

// RolesOn returns the roles user holds on project.
func (id *Identity) RolesOn(ctx context.Context, userID, projectID string) ([]Role, error) {
	var out []Role
	err := id.meta.View(ctx, func(tx meta.Tx) error {
		rs, err := tx.SetRange(keyRoles(userID, projectID), "", 0)
		for _, r := range rs {
			out = append(out, Role(r))
		}
		return err
	})
	return out, err
}

// Assignments lists role assignments, optionally only of one user and/or one project.
func (id *Identity) Assignments(ctx context.Context, userID, projectID string) ([]Assignment, error) {
	var out []Assignment
	err := id.meta.View(ctx, func(tx meta.Tx) error {
		var users []string
		switch {
		case userID != "":
			users = []string{userID}
		case projectID != "":
			var err error
			if users, err = tx.SetRange(keyProjectUsers(projectID), "", 0); err != nil {
				return err
			}
		default:
			var err error
			if users, err = tx.SetRange(setUsers, "", 0); err != nil {
				return err
			}
		}
		for _, u := range users {
			projects := []string{projectID}
			if projectID == "" {
				var err error
				if projects, err = tx.SetRange(keyUserProjects(u), "", 0); err != nil {
					return err
				}
			}
			for _, p := range projects {
				rs, err := tx.SetRange(keyRoles(u, p), "", 0)
				if err != nil {
					return err
				}
				for _, r := range rs {
					out = append(out, Assignment{UserID: u, ProjectID: p, Role: Role(r)})
				}
			}
		}
		return nil
	})
	return out, err
}

// GrantSystem gives user the role on the system: Keystone's system scope, which a token can
// be scoped to instead of a project (tempest's system_admin, operators' cloud-wide tools).
func (id *Identity) GrantSystem(ctx context.Context, userID string, r Role) error {
	if !ValidRole(r) {
		return fmt.Errorf("%w: role %q", ErrNotFound, r)
	}
	return id.meta.Update(ctx, func(tx meta.Tx) error {
		var u User
		if err := getJSON(tx, keyUser(userID), &u); err != nil {
			return fmt.Errorf("user %s: %w", userID, err)
		}
		if err := tx.SetAdd(keySystemRoles(userID), string(r)); err != nil {
			return err
		}
		return tx.SetAdd(setSystemUsers, userID)
	})
}

// RevokeSystem takes a system role away; one the user does not have is ErrNotFound.
func (id *Identity) RevokeSystem(ctx context.Context, userID string, r Role) error {
	return id.meta.Update(ctx, func(tx meta.Tx) error {
		ok, err := tx.SetHas(keySystemRoles(userID), string(r))
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotFound
		}
		if err := tx.SetRemove(keySystemRoles(userID), string(r)); err != nil {
			return err
		}
		if n, err := tx.SetLen(keySystemRoles(userID)); err != nil || n > 0 {
			return err
		}
		return tx.SetRemove(setSystemUsers, userID)
	})
}

// SystemRoles returns the roles user holds on the system.
func (id *Identity) SystemRoles(ctx context.Context, userID string) ([]Role, error) {
	var out []Role
	err := id.meta.View(ctx, func(tx meta.Tx) error {
		rs, err := tx.SetRange(keySystemRoles(userID), "", 0)
		for _, r := range rs {
			out = append(out, Role(r))
		}
		return err
	})
	return out, err
}

// SystemAssignments lists the system role assignments, of one user when userID is set; their
// ProjectID is empty.
func (id *Identity) SystemAssignments(ctx context.Context, userID string) ([]Assignment, error) {
	var out []Assignment
	err := id.meta.View(ctx, func(tx meta.Tx) error {
		users := []string{userID}
		if userID == "" {
			var err error
			if users, err = tx.SetRange(setSystemUsers, "", 0); err != nil {
				return err
			}
		}
		for _, u := range users {
			rs, err := tx.SetRange(keySystemRoles(u), "", 0)
			if err != nil {
				return err
			}
			for _, r := range rs {
				out = append(out, Assignment{UserID: u, Role: Role(r)})
			}
		}
		return nil
	})
	return out, err
}

// IsAdmin reports whether the user holds the admin role on any project or on the system:
// under the default policies of Keystone and Glance, the admin role is cloud-wide.
func (id *Identity) IsAdmin(ctx context.Context, userID string) (bool, error) {
	sys, err := id.SystemRoles(ctx, userID)
	if err != nil || slices.Contains(sys, RoleAdmin) {
		return err == nil, err
	}
	as, err := id.Assignments(ctx, userID, "")
	if err != nil {
		return false, err
	}
	for _, a := range as {
		if a.Role == RoleAdmin {
			return true, nil
		}
	}
	return false, nil
}
