// Package dashboard is the web dashboard at /dashboard/ on the API port: server-rendered
// html/template pages (htmx for partial updates), signed in with the server's identity and
// acting through the same catalog calls, with the same principal, as the Image API. It makes
// no access decisions of its own: what it shows and does is what the catalog (and so
// auth's one policy) allows, and a refusal is shown with the catalog's message.
package dashboard

import (
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/metadefs"
	"github.com/xloud/xloud-image/storage/meta"
)

// Prefix is where the dashboard is mounted.
const Prefix = "/dashboard"

//go:embed static templates
var files embed.FS

// csp is the Content-Security-Policy of every dashboard answer: nothing inline, nothing
// from elsewhere.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"

// Options configure the dashboard.
type Options struct {
	Catalog *catalog.Catalog
	// SignIn issues tokens for a user name and password; Tokens validates them, as for
	// every API request.
	SignIn auth.SignIn
	Tokens auth.TokenValidator
	// Meta holds the sessions, so that any server node serves any session.
	Meta meta.Store
	// Metadefs drives the property editor; nil: custom keys only.
	Metadefs *metadefs.Store
	// Web fetches web-download imports; nil: catalog.DefaultWebDownloader.
	Web *catalog.WebDownloader
	// RegistryHost is the registry's host for a request, shown in pull commands.
	RegistryHost func(*http.Request) string
	Log          *slog.Logger
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Dashboard serves the pages.
type Dashboard struct {
	opt   Options
	mux   *http.ServeMux
	pages map[string]*template.Template
}

// New returns the dashboard handler, to be mounted at Prefix+"/".
func New(opt Options) (*Dashboard, error) {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	d := &Dashboard{opt: opt, mux: http.NewServeMux()}
	if err := d.parse(); err != nil {
		return nil, err
	}
	d.routes()
	return d, nil
}

// handlerFunc serves one page for a signed-in session; it returns its error instead of
// writing it.
type handlerFunc func(w http.ResponseWriter, r *http.Request, s *session) error

// routes lists every page and action. Every POST needs the session's CSRF token.
func (d *Dashboard) routes() {
	static, _ := fs.Sub(files, "static")
	d.mux.Handle("GET "+Prefix+"/static/", http.StripPrefix(Prefix+"/static/", http.FileServerFS(static)))
	d.mux.HandleFunc("GET "+Prefix+"/{$}", d.root)
	d.mux.HandleFunc("GET "+Prefix+"/login", d.loginPage)
	d.mux.HandleFunc("POST "+Prefix+"/login", d.login)
	d.authed("POST /logout", d.logout)
	d.authed("POST /project", d.switchProject)
	d.authed("GET /images", d.listImages)
	d.authed("GET /images/new", d.newImage)
	d.authed("POST /images", d.createImage)
	d.authed("GET /images/{id}", d.showImage)
	d.authed("POST /images/{id}/edit", d.editImage)
	d.authed("GET /images/{id}/property-input", d.propertyInput)
	d.authed("POST /images/{id}/properties", d.setProperty)
	d.authed("POST /images/{id}/properties/remove", d.removeProperty)
	d.authed("POST /images/{id}/members", d.addMember)
	d.authed("POST /images/{id}/members/remove", d.removeMember)
	d.authed("POST /images/{id}/members/status", d.memberStatus)
	d.authed("POST /images/{id}/deactivate", d.deactivate)
	d.authed("POST /images/{id}/reactivate", d.reactivate)
	d.authed("POST /images/{id}/delete", d.deleteImage)
	d.authed("GET /signing", d.signingPolicy)
	d.authed("GET /cache", d.cachePage)
	d.authed("POST /cache/queue", d.queueCache)
	d.authed("POST /cache/{id}/delete", d.uncache)
}

// authed adds a page for signed-in sessions; a POST also needs the session's CSRF token.
func (d *Dashboard) authed(pattern string, h handlerFunc) {
	method, path, _ := strings.Cut(pattern, " ")
	d.mux.HandleFunc(method+" "+Prefix+path, func(w http.ResponseWriter, r *http.Request) {
		s, err := d.session(r)
		if err != nil {
			d.fail(w, r, nil, err)
			return
		}
		if method == http.MethodPost && !s.checkCSRF(r) {
			d.fail(w, r, s, errCSRF)
			return
		}
		if err := h(w, r, s); err != nil {
			d.fail(w, r, s, err)
		}
	})
}

// ServeHTTP sets the security headers every page carries and routes.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	if !strings.HasPrefix(r.URL.Path, Prefix+"/static/") {
		h.Set("Cache-Control", "no-store")
	}
	d.mux.ServeHTTP(w, r)
}

func (d *Dashboard) root(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, Prefix+"/images", http.StatusSeeOther)
}

// Errors of the dashboard itself.
var (
	errCSRF      = errors.New("the form is stale or did not come from this dashboard: reload the page and try again")
	errNoSession = errors.New("not signed in")
)

// status is the HTTP status of a refusal: the catalog's kinds, as the Image API maps them.
func status(err error) int {
	switch {
	case errors.Is(err, errNoSession), auth.IsAuthError(err):
		return http.StatusUnauthorized
	case errors.Is(err, errCSRF):
		return http.StatusForbidden
	case errors.As(err, new(badInput)):
		return http.StatusBadRequest
	}
	kind, _ := catalog.KindOf(err)
	switch kind {
	case catalog.NotFound:
		return http.StatusNotFound
	case catalog.Forbidden:
		return http.StatusForbidden
	case catalog.Conflict, catalog.BadState:
		return http.StatusConflict
	case catalog.BadRequest, catalog.BadData:
		return http.StatusBadRequest
	case catalog.TooMany, catalog.OverLimit:
		return http.StatusRequestEntityTooLarge
	case catalog.Gone:
		return http.StatusGone
	case catalog.NoData:
		return http.StatusNoContent
	}
	return http.StatusInternalServerError
}

// message is what the user is told: the catalog's message for a refusal, nothing of a
// fault's internals.
func message(err error) string {
	var bi badInput
	_, msg := catalog.KindOf(err)
	switch {
	case errors.As(err, &bi):
		return string(bi)
	case msg != "":
		return msg
	case errors.Is(err, errCSRF):
		return err.Error()
	case status(err) == http.StatusNotFound:
		return "No such image, or you may not see it."
	case status(err) == http.StatusForbidden:
		return "You are not allowed to do this."
	}
	return "Something went wrong on the server; the request changed nothing it reports as done."
}

// badInput is a form value the dashboard cannot use; its text names it.
type badInput string

func (b badInput) Error() string { return string(b) }

// fail answers an error: no session goes to the sign-in page (htmx requests are told to
// go there), anything else is the error page with the refusal's status and message.
func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	st := status(err)
	if st == http.StatusUnauthorized {
		d.clearSession(w, r)
		if r.Method == http.MethodGet && r.Header.Get("HX-Request") == "" {
			http.Redirect(w, r, Prefix+"/login", http.StatusSeeOther)
			return
		}
		w.Header().Set("HX-Redirect", Prefix+"/login")
	}
	if st == http.StatusInternalServerError {
		d.opt.Log.Error("dashboard", "path", r.URL.Path, "err", err)
	}
	data := map[string]any{"Status": st, "StatusText": http.StatusText(st), "Message": message(err)}
	if r.Header.Get("HX-Request") != "" && st != http.StatusUnauthorized {
		// htmx swaps refusals in place of the part it asked for (htmx-config in the layout).
		if err := d.renderPart(w, st, "error", "content", data); err != nil {
			d.opt.Log.Error("dashboard: render", "err", err)
		}
		return
	}
	d.render(w, r, st, "error", s, data)
}
