package identityapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/xloud/xloud-image/auth"
)

// Wire forms of the Keystone v3 API (api-ref identity/v3). Lists render as [], never null.

// keystoneTime is Keystone's timestamp format: microseconds, UTC, "Z".
const keystoneTime = "2006-01-02T15:04:05.000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(keystoneTime) }

type links struct {
	Self string `json:"self"`
}

// listLinks are the links of a collection; Keystone sends previous and next as null.
type listLinks struct {
	Self     string  `json:"self"`
	Previous *string `json:"previous"`
	Next     *string `json:"next"`
}

func collectionLinks(r *http.Request, base string) listLinks {
	u := base + r.URL.Path[len("/identity/v3"):]
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	return listLinks{Self: u}
}

type domainRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

var defaultDomain = domainRef{ID: auth.DefaultDomainID, Name: auth.DefaultDomainName}

type projectJSON struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	DomainID    string          `json:"domain_id"`
	Description string          `json:"description"`
	Enabled     bool            `json:"enabled"`
	ParentID    string          `json:"parent_id"`
	IsDomain    bool            `json:"is_domain"`
	Tags        []string        `json:"tags"`
	Options     json.RawMessage `json:"options"`
	Links       links           `json:"links"`
}

var emptyObject = json.RawMessage(`{}`)

func projectOut(base string, p auth.Project) projectJSON {
	return projectJSON{ID: p.ID, Name: p.Name, DomainID: p.DomainID, Description: p.Description,
		Enabled: p.Enabled, ParentID: p.DomainID, Tags: []string{}, Options: emptyObject,
		Links: links{Self: base + "/projects/" + p.ID}}
}

type userJSON struct {
	ID                string          `json:"id"`
	Name              string          `json:"name"`
	DomainID          string          `json:"domain_id"`
	Enabled           bool            `json:"enabled"`
	DefaultProjectID  string          `json:"default_project_id,omitempty"`
	Email             string          `json:"email,omitempty"`
	Description       string          `json:"description,omitempty"`
	PasswordExpiresAt *string         `json:"password_expires_at"`
	Options           json.RawMessage `json:"options"`
	Links             links           `json:"links"`
}

// userOut is the public form of u: never its password hash.
func userOut(base string, u auth.User) userJSON {
	return userJSON{ID: u.ID, Name: u.Name, DomainID: u.DomainID, Enabled: u.Enabled,
		DefaultProjectID: u.DefaultProjectID, Email: u.Email, Description: u.Description,
		Options: emptyObject, Links: links{Self: base + "/users/" + u.ID}}
}

type roleJSON struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	DomainID    *string         `json:"domain_id"`
	Description *string         `json:"description"`
	Options     json.RawMessage `json:"options"`
	Links       links           `json:"links"`
}

func roleOut(base string, r auth.Role) roleJSON {
	return roleJSON{ID: auth.RoleID(r), Name: string(r), Options: emptyObject,
		Links: links{Self: base + "/roles/" + auth.RoleID(r)}}
}

// roleByID returns the role whose wire id is id.
func roleByID(id string) (auth.Role, bool) {
	for _, r := range auth.Roles {
		if auth.RoleID(r) == id {
			return r, true
		}
	}
	return "", false
}

// impliedRoles expands roles as Keystone's default implied roles do (admin and manager imply
// member, member implies reader), strongest first, without duplicates.
func impliedRoles(roles []auth.Role) []auth.Role {
	has := map[auth.Role]bool{}
	for _, r := range roles {
		has[r] = true
	}
	has[auth.RoleMember] = has[auth.RoleMember] || has[auth.RoleAdmin] || has[auth.RoleManager]
	has[auth.RoleReader] = has[auth.RoleReader] || has[auth.RoleMember]
	out := []auth.Role{}
	for _, r := range auth.Roles {
		if has[r] {
			out = append(out, r)
		}
	}
	return out
}

type domainJSON struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Enabled     bool            `json:"enabled"`
	Tags        []string        `json:"tags"`
	Options     json.RawMessage `json:"options"`
	Links       links           `json:"links"`
}

func domainOut(base string) domainJSON {
	return domainJSON{ID: auth.DefaultDomainID, Name: auth.DefaultDomainName,
		Description: "The default domain", Enabled: true, Tags: []string{}, Options: emptyObject,
		Links: links{Self: base + "/domains/" + auth.DefaultDomainID}}
}

// tokenJSON is the body of a token (POST and GET /v3/auth/tokens).
type tokenJSON struct {
	Methods   []string        `json:"methods"`
	User      tokenUser       `json:"user"`
	AuditIDs  []string        `json:"audit_ids"`
	ExpiresAt string          `json:"expires_at"`
	IssuedAt  string          `json:"issued_at"`
	Project   *tokenProject   `json:"project,omitempty"`
	System    map[string]bool `json:"system,omitempty"`
	IsDomain  *bool           `json:"is_domain,omitempty"`
	Roles     []tokenRole     `json:"roles,omitempty"`
	Catalog   []catalogEntry  `json:"catalog,omitempty"`
}

type tokenUser struct {
	ID                string    `json:"id"`
	Name              string    `json:"name"`
	Domain            domainRef `json:"domain"`
	PasswordExpiresAt *string   `json:"password_expires_at"`
}

type tokenProject struct {
	ID     string    `json:"id"`
	Name   string    `json:"name"`
	Domain domainRef `json:"domain"`
}

type tokenRole struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// tokenOut renders t; catalog is nil for an unscoped token or when not asked for.
func tokenOut(t auth.Token, catalog []catalogEntry) tokenJSON {
	methods := t.Methods
	if methods == nil {
		methods = []string{}
	}
	out := tokenJSON{Methods: methods, AuditIDs: []string{t.AuditID},
		User:      tokenUser{ID: t.User.ID, Name: t.User.Name, Domain: defaultDomain},
		ExpiresAt: formatTime(t.Expires), IssuedAt: formatTime(t.Issued)}
	switch {
	case t.System:
		out.System = map[string]bool{"all": true}
	case t.ProjectID != "":
		no := false
		out.IsDomain = &no
		out.Project = &tokenProject{ID: t.Project.ID, Name: t.Project.Name, Domain: defaultDomain}
	default:
		return out
	}
	for _, r := range impliedRoles(t.Roles) {
		out.Roles = append(out.Roles, tokenRole{ID: auth.RoleID(r), Name: string(r)})
	}
	out.Catalog = catalog
	return out
}

// assignmentJSON is one entry of GET /v3/role_assignments.
type assignmentJSON struct {
	Role  assignmentRef   `json:"role"`
	User  assignmentRef   `json:"user"`
	Scope assignmentScope `json:"scope"`
	Links struct {
		Assignment string `json:"assignment"`
	} `json:"links"`
}

type assignmentRef struct {
	ID     string     `json:"id"`
	Name   string     `json:"name,omitempty"`
	Domain *domainRef `json:"domain,omitempty"`
}

type assignmentScope struct {
	Project *assignmentRef  `json:"project,omitempty"`
	System  map[string]bool `json:"system,omitempty"`
}

// optString is a string field of a request that may be absent, null or a string.
type optString struct {
	Set   bool // present (null included)
	Value string
}

func (o *optString) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		o.Value = ""
		return nil
	}
	return json.Unmarshal(b, &o.Value)
}
