package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/storage/meta"
)

// Cookie names: the session, and the CSRF token of the sign-in form (before any session).
const (
	cookieSession = "xloud_dashboard"
	cookieLogin   = "xloud_dashboard_login"
)

// record is a session as stored: the token it acts with and the CSRF token of its forms.
// The cookie holds only a random id; the store keys the record by the id's hash, so the
// store alone does not give a cookie.
type record struct {
	Token       string    `json:"token"`
	CSRF        string    `json:"csrf"`
	UserID      string    `json:"user_id"`
	UserName    string    `json:"user_name"`
	ProjectID   string    `json:"project_id"`
	ProjectName string    `json:"project_name"`
	Expires     time.Time `json:"expires"`
}

// session is a request's signed-in session: its record and the principal its token
// stands for now (roles as they are at this request).
type session struct {
	id string
	record
	pr auth.Principal
}

// Metadata keys of sessions:
//
//	dashboard:session:<sha256 of the cookie's id>  record
//	set dashboard:sessions                          "<expiry, unix seconds, 12 digits>|<hash>", to purge
const setSessions = "dashboard:sessions"

func sessionHash(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:])
}

func keySession(id string) string { return "dashboard:session:" + sessionHash(id) }

func sessionMember(id string, expires time.Time) string {
	return fmt.Sprintf("%012d|%s", expires.Unix(), sessionHash(id))
}

// purgeLimit bounds the expired sessions one sign-in removes.
const purgeLimit = 100

// purgeSessions removes sessions expired before now, oldest first, at most purgeLimit: every
// sign-in does it, so records of sessions nobody signed out of do not pile up.
func (d *Dashboard) purgeSessions(ctx context.Context) error {
	cutoff := fmt.Sprintf("%012d|", d.opt.Now().Unix())
	return d.opt.Meta.Update(ctx, func(tx meta.Tx) error {
		members, err := tx.SetRange(setSessions, "", purgeLimit)
		if err != nil {
			return err
		}
		for _, m := range members {
			if m >= cutoff {
				break
			}
			_, hash, _ := strings.Cut(m, "|")
			if err := tx.Delete("dashboard:session:" + hash); err != nil {
				return err
			}
			if err := tx.SetRemove(setSessions, m); err != nil {
				return err
			}
		}
		return nil
	})
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// session loads the request's session and validates its token as every API request's
// token is validated. No cookie, an unknown or expired session, or a token no longer
// valid is errNoSession (or the token's error).
func (d *Dashboard) session(r *http.Request) (*session, error) {
	c, err := r.Cookie(cookieSession)
	if err != nil || c.Value == "" || len(c.Value) > 128 {
		return nil, errNoSession
	}
	var rec record
	err = d.opt.Meta.View(r.Context(), func(tx meta.Tx) error {
		b, err := tx.Get(keySession(c.Value))
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &rec)
	})
	if errors.Is(err, meta.ErrNotFound) || (err == nil && !d.opt.Now().Before(rec.Expires)) {
		return nil, errNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	t, err := d.opt.Tokens.ValidateToken(r.Context(), rec.Token)
	if err != nil {
		return nil, err
	}
	return &session{id: c.Value, record: rec, pr: t.Principal()}, nil
}

// startSession stores a new session for a token and sets its cookie.
func (d *Dashboard) startSession(ctx context.Context, w http.ResponseWriter, r *http.Request, secret string, t auth.Token) error {
	id := randomToken()
	rec := record{Token: secret, CSRF: randomToken(), UserID: t.UserID, UserName: t.User.Name,
		ProjectID: t.ProjectID, ProjectName: t.Project.Name, Expires: t.Expires}
	if rec.Expires.IsZero() {
		rec.Expires = d.opt.Now().Add(auth.DefaultTokenTTL)
	}
	if err := d.putSession(ctx, id, rec, time.Time{}); err != nil {
		return err
	}
	if err := d.purgeSessions(ctx); err != nil {
		d.opt.Log.Warn("dashboard: purge expired sessions", "err", err)
	}
	http.SetCookie(w, &http.Cookie{Name: cookieSession, Value: id, Path: Prefix + "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, Expires: rec.Expires})
	return nil
}

// putSession stores a session's record; old is the expiry it was stored with before (zero
// for a new session).
func (d *Dashboard) putSession(ctx context.Context, id string, rec record, old time.Time) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	err = d.opt.Meta.Update(ctx, func(tx meta.Tx) error {
		if !old.IsZero() {
			if err := tx.SetRemove(setSessions, sessionMember(id, old)); err != nil {
				return err
			}
		}
		if err := tx.SetAdd(setSessions, sessionMember(id, rec.Expires)); err != nil {
			return err
		}
		return tx.Put(keySession(id), b)
	})
	if err != nil {
		return fmt.Errorf("store session: %w", err)
	}
	return nil
}

// endSession forgets a session.
func (d *Dashboard) endSession(ctx context.Context, s *session) error {
	return d.opt.Meta.Update(ctx, func(tx meta.Tx) error {
		if err := tx.SetRemove(setSessions, sessionMember(s.id, s.Expires)); err != nil {
			return err
		}
		return tx.Delete(keySession(s.id))
	})
}

// clearSession drops the session cookie from the browser.
func (d *Dashboard) clearSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieSession, Value: "", Path: Prefix + "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: -1})
}

// checkCSRF compares the request's CSRF token (form field csrf or header X-CSRF-Token) with
// the session's.
func (s *session) checkCSRF(r *http.Request) bool {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.CSRF)) == 1
}
