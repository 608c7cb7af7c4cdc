package dashboard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/xloud/xloud-image/auth"
)

// parse reads the templates: each page is the layout with its own "content".
func (d *Dashboard) parse() error {
	funcs := template.FuncMap{
		"human": func(p *int64) string {
			if p == nil {
				return ""
			}
			return human(*p)
		},
		"size":   human,
		"deref":  deref,
		"time":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") },
		"eq":     func(a, b any) bool { return fmt.Sprint(a) == fmt.Sprint(b) },
		"prefix": func() string { return Prefix },
		"sortKeys": func() []string {
			return []string{"name", "status", "disk_format", "size", "updated_at", "id"}
		},
		"contains": func(list, v string) bool {
			return strings.Contains(","+list+",", ","+v+",")
		},
	}
	pages, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		return err
	}
	d.pages = map[string]*template.Template{}
	for _, p := range pages {
		name := strings.TrimSuffix(strings.TrimPrefix(p, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", p)
		if err != nil {
			return fmt.Errorf("dashboard template %s: %w", name, err)
		}
		d.pages[name] = t
	}
	return nil
}

// render writes a whole page; data gains the session's user, project, projects and CSRF
// token.
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, st int, page string, s *session, data map[string]any) {
	if strings.Contains(r.Header.Get("Accept"), "application/json") && st >= 400 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(st)
		json.NewEncoder(w).Encode(map[string]any{"message": data["Message"], "code": st})
		return
	}
	if s != nil {
		data["Session"] = s
		data["CSRF"] = s.CSRF
		data["Admin"] = s.pr.Admin // which tabs to offer; every access question is the catalog's
		// The cache link is offered when the policy would let the session list the cache.
		if acts, err := d.opt.Catalog.AllowedOnNode(r.Context(), s.pr, auth.ImageCacheList); err == nil {
			data["CacheNav"] = acts[auth.ImageCacheList]
		}
		if ps, err := d.opt.SignIn.UserProjects(r.Context(), s.UserID); err == nil {
			data["Projects"] = ps
		}
	}
	var buf bytes.Buffer
	if err := d.pages[page].ExecuteTemplate(&buf, "layout.html", data); err != nil {
		d.opt.Log.Error("dashboard: render", "page", page, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(st)
	w.Write(buf.Bytes())
}

// renderPart writes one named template of a page (an htmx fragment).
func (d *Dashboard) renderPart(w http.ResponseWriter, st int, page, part string, data map[string]any) error {
	var buf bytes.Buffer
	if err := d.pages[page].ExecuteTemplate(&buf, part, data); err != nil {
		return fmt.Errorf("render %s/%s: %w", page, part, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(st)
	w.Write(buf.Bytes())
	return nil
}
