package dashboard

import (
	"crypto/subtle"
	"errors"
	"net/http"

	"github.com/xloud/xloud-image/auth"
)

// wrongPassword is the one answer to every refused sign-in: it never says whether the user
// exists, the password was wrong or the project is not theirs.
const wrongPassword = "The user name, password or project is not right."

// loginPage shows the sign-in form with a fresh CSRF token (a cookie the form must echo:
// there is no session yet to hold it).
func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	d.showLogin(w, r, http.StatusOK, "", "")
}

func (d *Dashboard) showLogin(w http.ResponseWriter, r *http.Request, st int, msg, user string) {
	tok := randomToken()
	http.SetCookie(w, &http.Cookie{Name: cookieLogin, Value: tok, Path: Prefix + "/login", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	d.render(w, r, st, "login", nil, map[string]any{"CSRF": tok, "Error": msg, "User": user,
		"Project": r.FormValue("project")})
}

// login signs in with a user name, password and project, through the same identity the
// APIs validate tokens with.
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(cookieLogin)
	form := r.PostFormValue("csrf")
	if err != nil || form == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(form)) != 1 {
		d.fail(w, r, nil, errCSRF)
		return
	}
	user, pass, project := r.PostFormValue("username"), r.PostFormValue("password"), r.PostFormValue("project")
	if user == "" || pass == "" {
		d.showLogin(w, r, http.StatusBadRequest, "Enter a user name and a password.", user)
		return
	}
	secret, t, err := d.opt.SignIn.PasswordToken(r.Context(), r.RemoteAddr, user, pass, project)
	if err != nil {
		if auth.IsAuthError(err) || errors.Is(err, auth.ErrLockedOut) {
			d.showLogin(w, r, http.StatusUnauthorized, wrongPassword, user)
			return
		}
		d.fail(w, r, nil, err)
		return
	}
	if err := d.startSession(r.Context(), w, r, secret, t); err != nil {
		d.fail(w, r, nil, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieLogin, Path: Prefix + "/login", MaxAge: -1})
	http.Redirect(w, r, Prefix+"/images", http.StatusSeeOther)
}

// logout revokes the session's token and forgets the session.
func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := d.opt.SignIn.RevokeToken(r.Context(), s.Token); err != nil && !errors.Is(err, auth.ErrNotFound) {
		return err
	}
	if err := d.endSession(r.Context(), s); err != nil {
		return err
	}
	d.clearSession(w, r)
	http.Redirect(w, r, Prefix+"/login", http.StatusSeeOther)
	return nil
}

// switchProject rescopes the session to another of the user's projects: a new token, the
// old one revoked.
func (d *Dashboard) switchProject(w http.ResponseWriter, r *http.Request, s *session) error {
	secret, t, err := d.opt.SignIn.Rescope(r.Context(), s.Token, r.PostFormValue("project"))
	if auth.IsAuthError(err) {
		return badInput("You hold no role on that project.")
	}
	if err != nil {
		return err
	}
	old, oldExpiry := s.Token, s.Expires
	s.Token, s.ProjectID, s.ProjectName, s.Expires = secret, t.ProjectID, t.Project.Name, t.Expires
	if err := d.putSession(r.Context(), s.id, s.record, oldExpiry); err != nil {
		return err
	}
	if err := d.opt.SignIn.RevokeToken(r.Context(), old); err != nil && !errors.Is(err, auth.ErrNotFound) {
		d.opt.Log.Warn("dashboard: revoke the token of a switched session", "err", err)
	}
	http.Redirect(w, r, Prefix+"/images", http.StatusSeeOther)
	return nil
}
