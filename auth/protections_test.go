package auth

import (
	"strings"
	"testing"
)

// glanceSample is Glance's etc/property-protections-roles.conf.sample, in substance.
const glanceSample = `
# x_ properties: members; everything else: admins only
[^x_.*]
create = admin,member,_member_
read = admin,member,_member_
update = admin,member,_member_
delete = admin,member,_member_

[^x_owner_.*]
create = admin
read = admin,member
update = admin
delete = admin

[^spl_read_only_.*]
create: admin
read: @
update = !
delete = admin

[os_glance_try_to_lock_out]
create = !
read = !
update = !
delete = !

[.*]
create = admin
read = admin
update = admin
delete = admin
`

func TestPropertyProtections(t *testing.T) {
	prot, err := ParsePropertyProtections(strings.NewReader(glanceSample))
	if err != nil {
		t.Fatal(err)
	}
	p := &Policy{Protections: prot}
	admin := Principal{UserID: "a", Scoped: true, ScopedRoles: []Role{RoleAdmin}, Admin: true}
	member := Principal{UserID: "m", Scoped: true, ScopedRoles: []Role{RoleMember}}
	manager := Principal{UserID: "g", Scoped: true, ScopedRoles: []Role{RoleManager}}
	reader := Principal{UserID: "r", Scoped: true, ScopedRoles: []Role{RoleReader}}
	for _, c := range []struct {
		who  string
		pr   Principal
		key  string
		op   PropertyOp
		want bool
	}{
		{"member", member, "x_build", PropertyCreate, true},
		{"manager (implies member)", manager, "x_build", PropertyUpdate, true},
		{"reader", reader, "x_build", PropertyRead, false},
		{"member", member, "x_owner_foo", PropertyCreate, true}, // first match wins: ^x_.* comes first
		{"member", member, "hw_cpu_cores", PropertyCreate, false},
		{"member", member, "hw_cpu_cores", PropertyRead, false},
		{"admin", admin, "hw_cpu_cores", PropertyDelete, true},
		{"reader", reader, "spl_read_only_x", PropertyRead, true},  // @
		{"admin", admin, "spl_read_only_x", PropertyUpdate, false}, // !
		{"admin", admin, "spl_read_only_x", PropertyCreate, true},
		// os_glance sections of the file are dropped: the server's own properties stay open.
		{"member", member, "os_glance_try_to_lock_out", PropertyRead, true},
		{"anonymous", Principal{Anonymous: true}, "x_build", PropertyRead, false},
		{"anonymous", Principal{Anonymous: true}, "spl_read_only_x", PropertyRead, true},
	} {
		if got := p.AllowProperty(c.pr, c.key, c.op); got != c.want {
			t.Errorf("%s %s %s: %v, want %v", c.who, c.op, c.key, got, c.want)
		}
	}
	if !(&Policy{}).AllowProperty(reader, "anything", PropertyDelete) {
		t.Error("without protections every property is open")
	}
	// No section matches: no one.
	only, err := ParsePropertyProtections(strings.NewReader("[^x_]\ncreate=@\nread=@\nupdate=@\ndelete=@\n"))
	if err != nil {
		t.Fatal(err)
	}
	if (&Policy{Protections: only}).AllowProperty(admin, "y", PropertyRead) {
		t.Error("a property no section matches is open")
	}
}

// TestPropertyProtectionsFileFaults: every fault Glance refuses to start with is an error
// naming it.
func TestPropertyProtectionsFileFaults(t *testing.T) {
	for _, c := range []struct{ file, want string }{
		{"[.*]\ncreate = admin\nread = admin\nupdate = admin\n", "delete"},
		{"[.*]\ncreate = @,!\nread = admin\nupdate = admin\ndelete = admin\n", `"@" (anyone) and "!"`},
		{"[(unclosed]\ncreate = admin\n", "regular expression"},
		{"[.*]\ncreate = admin\nread = admin\nupdate = admin\ndelete = admin\npublish = admin\n", "unknown operation"},
		{"create = admin\n", "neither a section header"},
		{"[.*\ncreate = admin\n", "closing bracket"},
		{"[a]\ncreate=@\nread=@\nupdate=@\ndelete=@\n[a]\ncreate=@\nread=@\nupdate=@\ndelete=@\n", "twice"},
	} {
		_, err := ParsePropertyProtections(strings.NewReader(c.file))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("file %q: %v, want an error with %q", c.file, err, c.want)
		}
	}
	if _, err := LoadPropertyProtections("/nonexistent/protections.conf"); err == nil {
		t.Error("a missing file is accepted")
	}
}
