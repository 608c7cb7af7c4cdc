package metadefs_test

import (
	"strings"
	"testing"

	"github.com/xloud/xloud-image/catalog"
)

// TestCheckImageProperties: values are checked against the types, enums and limits of the
// definitions associated with images, prefix applied; others pass; private definitions of
// another project do not apply.
func TestCheckImageProperties(t *testing.T) {
	for name, s := range backends(t) {
		t.Run(name, func(t *testing.T) {
			if _, err := s.Init(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreateNamespace(ctx, admin, decodeNS(t, `{"namespace":"X::Priv","owner":"p-a",
				"resource_type_associations":[{"name":"OS::Glance::Image","prefix":"x_"}],
				"properties":{"level":{"title":"L","type":"integer","minimum":1,"maximum":3},
					"code":{"title":"C","type":"string","pattern":"^[A-Z]+$","maxLength":4}}}`)); err != nil {
				t.Fatal(err)
			}
			cases := []struct {
				owner, key, value, why string // why "": accepted
			}{
				{"p-b", "hw_disk_bus", "virtio", ""},
				{"p-b", "hw_disk_bus", "floppy", "must be one of"},
				{"p-b", "hw_video_ram", "64", ""},
				{"p-b", "hw_video_ram", "lots", "not an integer"},
				{"p-b", "hw_firmware_stateless", "true", ""},
				{"p-b", "hw_firmware_stateless", "maybe", "not a boolean"},
				{"p-b", "hypervisor_type", "kvm", ""},
				{"p-b", "hypervisor_type", "KVM", "must be one of"},
				{"p-b", "hw_cpu_cores", "x", "not an integer"}, // OS::Compute::VirtCPUTopology, prefix hw_
				{"p-b", "hw_serial_port_count", "2", ""},       // OS::Compute::Libvirt, prefix hw_
				{"p-b", "hw_serial_port_count", "-1", "less than the minimum"},
				{"p-b", "sw_database_mysql_version", "8.0", ""},          // an object's property (OS::Software::DBMS)
				{"p-b", "unrelated_key", "anything", ""},                 // named by no definition
				{"p-b", "x_level", "9", ""},                              // p-a's private definition
				{"p-a", "x_level", "9", "greater than the maximum of 3"}, // applies to p-a's images
				{"p-a", "x_level", "2", ""},
				{"p-a", "x_code", "abc", "does not match the pattern"},
				{"p-a", "x_code", "ABCDE", "longer than 4"},
			}
			for _, c := range cases {
				err := s.CheckImageProperties(ctx, c.owner, map[string]string{c.key: c.value}, nil)
				if c.why == "" {
					if err != nil {
						t.Errorf("%s=%s for %s: %v", c.key, c.value, c.owner, err)
					}
					continue
				}
				k, msg := catalog.KindOf(err)
				if k != catalog.BadRequest || !strings.Contains(msg, c.why) || !strings.Contains(msg, c.key) {
					t.Errorf("%s=%s for %s: %v, want 400 saying %q", c.key, c.value, c.owner, err, c.why)
				}
			}
			// Only the keys asked about are checked (a patch checks what it sets).
			props := map[string]string{"hw_disk_bus": "floppy", "hw_video_ram": "1"}
			if err := s.CheckImageProperties(ctx, "p-b", props, []string{"hw_video_ram"}); err != nil {
				t.Fatal(err)
			}
			// A change of the definitions is seen at once.
			if err := s.DeleteNamespace(ctx, admin, "X::Priv"); err != nil {
				t.Fatal(err)
			}
			if err := s.CheckImageProperties(ctx, "p-a", map[string]string{"x_level": "9"}, nil); err != nil {
				t.Fatalf("a deleted definition still applies: %v", err)
			}
		})
	}
}
