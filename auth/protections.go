package auth

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
)

// PropertyOp is an operation on an image's extra property, as Glance's property protections
// name them.
type PropertyOp string

// The four operations every protection section must rule on.
const (
	PropertyCreate PropertyOp = "create"
	PropertyRead   PropertyOp = "read"
	PropertyUpdate PropertyOp = "update"
	PropertyDelete PropertyOp = "delete"
)

var propertyOps = []PropertyOp{PropertyCreate, PropertyRead, PropertyUpdate, PropertyDelete}

// PropertyProtections are Glance's property protections in its "roles" format
// (property_protection_file with property_protection_rule_format = roles): INI sections whose
// names are regular expressions searched in a property name, first match wins, each giving
// the roles that may create, read, update and delete the properties it matches ("@" anyone,
// "!" no one). A property no section matches may be touched by no one.
type PropertyProtections struct {
	rules []protectionRule
}

type protectionRule struct {
	section string
	re      *regexp.Regexp
	ops     map[PropertyOp]protectionRoles
}

// protectionRoles is one operation's value: anyone, or these roles (none: no one).
type protectionRoles struct {
	anyone bool
	roles  []string // lower case
}

// LoadPropertyProtections reads a property protections file; any fault in it is an error, as
// it stops glance-api from starting.
func LoadPropertyProtections(path string) (*PropertyProtections, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("property protections: %w", err)
	}
	defer f.Close()
	p, err := ParsePropertyProtections(f)
	if err != nil {
		return nil, fmt.Errorf("property protections %s: %w", path, err)
	}
	return p, nil
}

// ParsePropertyProtections parses the roles format. Sections naming os_glance properties are
// dropped and one letting anyone touch them comes first, as Glance does since bug 2085321:
// the server's own bookkeeping properties are reserved by other rules, never by this file.
func ParsePropertyProtections(r io.Reader) (*PropertyProtections, error) {
	p := &PropertyProtections{rules: []protectionRule{{
		section: "os_glance.*", re: regexp.MustCompile("os_glance.*"),
		ops: map[PropertyOp]protectionRoles{
			PropertyCreate: {anyone: true}, PropertyRead: {anyone: true},
			PropertyUpdate: {anyone: true}, PropertyDelete: {anyone: true}},
	}}}
	var cur *protectionRule
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
			continue
		case strings.HasPrefix(line, "["):
			end := strings.LastIndexByte(line, ']')
			if end < 1 {
				return nil, fmt.Errorf("line %d: section header %q has no closing bracket", n, line)
			}
			name := line[1:end]
			re, err := regexp.Compile(name)
			if err != nil {
				return nil, fmt.Errorf("line %d: section %q is not a valid regular expression: %v", n, name, err)
			}
			for _, r := range p.rules[1:] {
				if r.section == name {
					return nil, fmt.Errorf("line %d: section %q appears twice", n, name)
				}
			}
			p.rules = append(p.rules, protectionRule{section: name, re: re, ops: map[PropertyOp]protectionRoles{}})
			cur = &p.rules[len(p.rules)-1]
		default:
			key, value, ok := strings.Cut(line, "=")
			if k, v, colon := strings.Cut(line, ":"); colon && (!ok || len(k) < len(key)) {
				key, value, ok = k, v, true
			}
			if !ok || cur == nil {
				return nil, fmt.Errorf("line %d: %q is neither a section header nor an operation of one", n, line)
			}
			op := PropertyOp(strings.ToLower(strings.TrimSpace(key)))
			if !slices.Contains(propertyOps, op) {
				return nil, fmt.Errorf("line %d: section %q: unknown operation %q (create, read, update, delete)", n, cur.section, op)
			}
			roles, err := parseProtectionRoles(value)
			if err != nil {
				return nil, fmt.Errorf("line %d: section %q, %s: %v", n, cur.section, op, err)
			}
			cur.ops[op] = roles
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	kept := p.rules[:1]
	for _, r := range p.rules[1:] {
		for _, op := range propertyOps {
			if _, ok := r.ops[op]; !ok {
				return nil, fmt.Errorf("section %q does not say who may %s", r.section, op)
			}
		}
		if !strings.HasPrefix(r.section, "os_glance") {
			kept = append(kept, r)
		}
	}
	p.rules = kept
	return p, nil
}

func parseProtectionRoles(value string) (protectionRoles, error) {
	var out protectionRoles
	none := false
	for _, f := range strings.Split(value, ",") {
		switch f = strings.ToLower(strings.TrimSpace(f)); f {
		case "":
		case "@":
			out.anyone = true
		case "!":
			none = true
		default:
			out.roles = append(out.roles, f)
		}
	}
	if out.anyone && none {
		return out, fmt.Errorf(`"@" (anyone) and "!" (no one) together`)
	}
	return out, nil
}

// allows reports whether a caller with roles may do op on key.
func (p *PropertyProtections) allows(roles []string, key string, op PropertyOp) bool {
	for _, r := range p.rules {
		if !r.re.MatchString(key) {
			continue
		}
		rule := r.ops[op]
		if rule.anyone {
			return true
		}
		for _, role := range roles {
			if slices.Contains(rule.roles, role) {
				return true
			}
		}
		return false
	}
	return false
}

// AllowProperty decides whether pr may do op on the extra property key of an image. Without
// property protections everyone may; with them, the caller's roles in its token (with the
// roles they imply, as Keystone puts them in a token) must be listed for op in the first
// section matching key.
func (p *Policy) AllowProperty(pr Principal, key string, op PropertyOp) bool {
	if p.Protections == nil {
		return true
	}
	var roles []string
	for _, r := range pr.ScopedRoles {
		roles = append(roles, string(r))
	}
	if pr.Admin {
		roles = append(roles, string(RoleAdmin))
	}
	for _, r := range slices.Clone(roles) {
		switch Role(r) {
		case RoleAdmin, RoleManager:
			roles = append(roles, string(RoleMember), string(RoleReader))
		case RoleMember:
			roles = append(roles, string(RoleReader))
		}
	}
	return p.Protections.allows(roles, key, op)
}
