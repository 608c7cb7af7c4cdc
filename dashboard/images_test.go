package dashboard

import (
	"net/url"
	"testing"
)

// TestListQueryVisibility: my project's and all projects' tabs narrow to one visibility as the
// Image API's ?visibility= does; the tabs of one visibility refuse another; unknown ones are
// refused.
func TestListQueryVisibility(t *testing.T) {
	s := &session{record: record{ProjectID: "p1"}}
	for _, c := range []struct {
		query, want string
		owner       string
		bad         bool
	}{
		{"", "all", "p1", false},
		{"tab=project&visibility=private", "private", "p1", false},
		{"tab=project&visibility=community", "community", "p1", false},
		{"tab=all&visibility=shared", "shared", "", false},
		{"tab=all", "all", "", false},
		{"tab=public", "public", "", false},
		{"tab=public&visibility=private", "", "", true},
		{"tab=shared&visibility=shared", "", "", true},
		{"tab=project&visibility=secret", "", "", true},
		{"tab=project&visibility=all", "", "", true},
	} {
		q, _ := url.ParseQuery(c.query)
		_, opt, err := parseListQuery(q, s)
		if c.bad {
			if err == nil {
				t.Errorf("%q: accepted (visibility %q), want refused", c.query, opt.Filter.Visibility)
			}
			continue
		}
		if err != nil || opt.Filter.Visibility != c.want || opt.Filter.Owner != c.owner {
			t.Errorf("%q: visibility %q owner %q (%v), want %q %q", c.query, opt.Filter.Visibility, opt.Filter.Owner, err, c.want, c.owner)
		}
	}
}
