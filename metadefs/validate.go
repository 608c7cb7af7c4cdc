package metadefs

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/xloud/xloud-image/storage/meta"
)

// ImageResourceType is the resource type whose associations name image properties.
const ImageResourceType = "OS::Glance::Image"

// rule is one definition an image property key must satisfy.
type rule struct {
	namespace, owner, visibility string
	prop                         Property
	pattern                      *regexp.Regexp
}

// ruleIndex maps image property keys (prefix applied) to their definitions, as of one
// generation of the definitions.
type ruleIndex struct {
	gen   int64
	rules map[string][]rule
}

// index returns the rules of the current definitions, rebuilt only when a write bumped
// their generation since the last build (one small read per check otherwise).
func (s *Store) index(ctx context.Context) (*ruleIndex, error) {
	var gen int64
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		var err error
		gen, err = readGen(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	cur := s.rules
	s.mu.Unlock()
	if cur != nil && cur.gen == gen {
		return cur, nil
	}
	all, err := s.allNamespaces(ctx)
	if err != nil {
		return nil, err
	}
	idx := &ruleIndex{gen: gen, rules: map[string][]rule{}}
	for _, ns := range all {
		i := findAssociation(ns.Associations, ImageResourceType)
		if i < 0 {
			continue
		}
		prefix := deref(ns.Associations[i].Prefix)
		add := func(name string, p Property) {
			r := rule{namespace: ns.Namespace, owner: ns.Owner, visibility: ns.Visibility, prop: p}
			if p.Pattern != nil {
				r.pattern, _ = regexp.Compile(*p.Pattern) // checked when stored
			}
			idx.rules[prefix+name] = append(idx.rules[prefix+name], r)
		}
		for name, p := range ns.Properties {
			add(name, p)
		}
		for _, o := range ns.Objects {
			for name, p := range o.Properties {
				add(name, p)
			}
		}
	}
	s.mu.Lock()
	s.rules = idx
	s.mu.Unlock()
	return idx, nil
}

// CheckImageProperties checks the values of an image's properties named by keys (all of
// props when keys is nil) against the definitions associated with images that apply to
// the image's owner: public ones, ones without owner, and the owner's own. A value that
// does not fit its definition's type, enum or limits is a 400 naming the property.
func (s *Store) CheckImageProperties(ctx context.Context, owner string, props map[string]string, keys []string) error {
	if keys == nil {
		for k := range props {
			keys = append(keys, k)
		}
		slices.Sort(keys)
	}
	idx, err := s.index(ctx)
	if err != nil {
		return fmt.Errorf("check image properties: %w", err)
	}
	for _, k := range keys {
		v, ok := props[k]
		if !ok {
			continue
		}
		for _, r := range idx.rules[k] {
			if r.owner != "" && r.visibility != Public && r.owner != owner {
				continue
			}
			if why := r.check(v); why != "" {
				return badRequest("Invalid value '%s' for property %s: %s (metadata definition namespace %s).", v, k, why, r.namespace)
			}
		}
	}
	return nil
}

// check says why v does not fit the rule ("" when it does).
func (r rule) check(v string) string {
	p := r.prop
	typ := deref(p.Type)
	switch typ {
	case "array":
		return checkArray(p, v)
	case "object", "":
		return ""
	}
	return checkScalar(typ, p.Enum, p, r.pattern, v)
}

func checkScalar(typ string, enum []any, p Property, pattern *regexp.Regexp, v string) string {
	switch typ {
	case "integer":
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return "not an integer"
		}
		if why := checkRange(float64(n), p); why != "" {
			return why
		}
	case "number":
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return "not a number"
		}
		if why := checkRange(f, p); why != "" {
			return why
		}
	case "boolean":
		if _, ok := parseBool(v); !ok {
			return "not a boolean (true or false)"
		}
	case "string":
		n := int64(utf8.RuneCountInString(v))
		if p.MinLength != nil && n < *p.MinLength {
			return fmt.Sprintf("shorter than %d characters", *p.MinLength)
		}
		if p.MaxLength != nil && n > *p.MaxLength {
			return fmt.Sprintf("longer than %d characters", *p.MaxLength)
		}
		if pattern != nil && !pattern.MatchString(v) {
			return fmt.Sprintf("does not match the pattern %s", pattern)
		}
	}
	if len(enum) > 0 && !inEnum(typ, enum, v) {
		return "must be one of " + enumWords(enum)
	}
	return ""
}

func checkRange(f float64, p Property) string {
	if p.Minimum != nil && f < *p.Minimum {
		return fmt.Sprintf("less than the minimum of %v", *p.Minimum)
	}
	if p.Maximum != nil && f > *p.Maximum {
		return fmt.Sprintf("greater than the maximum of %v", *p.Maximum)
	}
	return ""
}

// parseBool reads a boolean as Nova's strutils.bool_from_string does.
func parseBool(v string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "t", "true", "on", "y", "yes":
		return true, true
	case "0", "f", "false", "off", "n", "no":
		return false, true
	}
	return false, false
}

func inEnum(typ string, enum []any, v string) bool {
	for _, e := range enum {
		switch e := e.(type) {
		case string:
			if e == v {
				return true
			}
		case float64:
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && f == e {
				return true
			}
		case bool:
			if b, ok := parseBool(v); ok && b == e && typ == "boolean" {
				return true
			}
		}
	}
	return false
}

func enumWords(enum []any) string {
	words := make([]string, len(enum))
	for i, e := range enum {
		words[i] = fmt.Sprint(e)
	}
	return strings.Join(words, ", ")
}

// checkArray checks an array value as Nova writes one on an image: items separated by
// spaces or commas, optionally led by an operator ("<or> a <or> b", "<all-in> a b").
func checkArray(p Property, v string) string {
	var items []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' }) {
		if strings.HasPrefix(f, "<") && strings.HasSuffix(f, ">") {
			if len(p.Operators) > 0 && !slices.Contains(p.Operators, f) {
				return fmt.Sprintf("operator %s is not one of %s", f, strings.Join(p.Operators, ", "))
			}
			continue
		}
		items = append(items, f)
	}
	n := int64(len(items))
	if p.MinItems != nil && n < *p.MinItems {
		return fmt.Sprintf("fewer than %d items", *p.MinItems)
	}
	if p.MaxItems != nil && n > *p.MaxItems {
		return fmt.Sprintf("more than %d items", *p.MaxItems)
	}
	if p.UniqueItems != nil && *p.UniqueItems && !uniqueStrings(items) {
		return "has duplicate items"
	}
	if p.Items == nil {
		return ""
	}
	for _, it := range items {
		if why := checkScalar(deref(p.Items.Type), p.Items.Enum, Property{}, nil, it); why != "" {
			return fmt.Sprintf("item '%s' %s", it, why)
		}
	}
	return ""
}
