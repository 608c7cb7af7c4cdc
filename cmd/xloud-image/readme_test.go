package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/xloud/xloud-image/internal/testenv"
)

// readmeBlock is one fenced block of README.md: its info string and its lines.
type readmeBlock struct {
	lang string
	body string
}

// readmeSection returns README.md's text between the heading and the next heading of the
// same level.
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	i := strings.Index(s, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README.md has no %q", heading)
	}
	s = s[i+len(heading)+2:]
	level := heading[:strings.IndexByte(heading, ' ')+1]
	if j := strings.Index(s, "\n"+level); j >= 0 {
		s = s[:j]
	}
	return s
}

// fencedBlocks lists the fenced code blocks of a Markdown text in order.
func fencedBlocks(s string) []readmeBlock {
	var blocks []readmeBlock
	var cur *readmeBlock
	for _, line := range strings.Split(s, "\n") {
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &readmeBlock{lang: strings.TrimSpace(strings.TrimPrefix(line, "```"))}
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.body += line + "\n"
		}
	}
	return blocks
}

var spaces = regexp.MustCompile(`[ \t]+`)

// expectedLine turns a line of a README `text` block into a pattern for one whole output
// line: "…" stands for anything, runs of blanks for any blanks.
func expectedLine(line string) *regexp.Regexp {
	parts := strings.Split(strings.TrimSpace(spaces.ReplaceAllString(line, " ")), "…")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".*") + "$")
}

// TestReadmeWalkthrough runs the README's "Use it" walkthrough as a new user pastes it: the
// `sh` blocks in order, in one shell, in a fresh directory whose data/ the server uses, with
// only the default ports replaced by the free ones the server got. Each `text` block lists
// lines the `sh` block before it must print. The README and this test cannot drift: the
// commands come from the README itself.
func TestReadmeWalkthrough(t *testing.T) {
	for _, tool := range []string{"openstack", "qemu-img", "oras"} {
		testenv.RequireTool(t, tool)
	}
	blocks := fencedBlocks(readmeSection(t, "## Use it"))
	dir := t.TempDir()
	srv := testenv.StartServer(t, testenv.ServerOptions{DataDir: filepath.Join(dir, "data"), Args: []string{"--auth", "embedded"}})
	_, regPort, _ := strings.Cut(srv.RegistryAddr, ":")
	_, apiPort, _ := strings.Cut(srv.APIAddr, ":")
	ports := strings.NewReplacer("localhost:5000", "localhost:"+regPort, "localhost:9292", "localhost:"+apiPort)

	var script strings.Builder
	var runs []string            // the sh blocks, in order
	expect := map[int][]string{} // sh block index → lines a text block says it prints
	for _, b := range blocks {
		switch b.lang {
		case "sh":
			fmt.Fprintf(&script, "echo '@@block %d@@'\n%s", len(runs), ports.Replace(b.body))
			runs = append(runs, b.body)
		case "text":
			if len(runs) == 0 {
				t.Fatalf("a text block before any sh block in README's walkthrough:\n%s", b.body)
			}
			lines := strings.Split(strings.TrimSpace(ports.Replace(b.body)), "\n")
			expect[len(runs)-1] = append(expect[len(runs)-1], lines...)
		}
	}
	if len(runs) < 3 || len(expect) < 2 {
		t.Fatalf("README's walkthrough has %d sh blocks and %d checked outputs; the extraction is broken", len(runs), len(expect))
	}

	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script.String())
	cmd.Dir = dir
	gobin, _ := exec.Command("go", "env", "GOPATH").Output()
	env := []string{"HOME=" + dir, "LANG=C.UTF-8",
		"PATH=" + filepath.Join(strings.TrimSpace(string(gobin)), "bin") + ":" + os.Getenv("PATH")}
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the walkthrough failed (%v):\n%s\nserver log:\n%s", err, out.String(), srv.Log())
		}
	case <-time.After(5 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("the walkthrough hung:\n%s", out.String())
	}

	outputs := strings.Split(out.String(), "@@block ")
	printed := map[int][]string{}
	for _, o := range outputs[1:] {
		var i int
		if _, err := fmt.Sscanf(o, "%d@@", &i); err != nil {
			t.Fatalf("output marker: %v in %q", err, o)
		}
		for _, l := range strings.Split(o, "\n")[1:] {
			printed[i] = append(printed[i], strings.TrimSpace(spaces.ReplaceAllString(l, " ")))
		}
	}
	for i, want := range expect {
		for _, w := range want {
			re := expectedLine(w)
			found := false
			for _, l := range printed[i] {
				if re.MatchString(l) {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("README says\n%s\nprints %q, but it printed:\n%s", runs[i], w, strings.Join(printed[i], "\n"))
			}
		}
	}
}

// helpFlag is one flag as `serve --help` prints it.
type helpFlag struct{ def string }

// serveHelp parses `xloud-image serve --help`: flag names and their printed defaults.
func serveHelp(t *testing.T) map[string]helpFlag {
	t.Helper()
	_, errOut, code := run(t, nil, "serve", "--help")
	if code != 0 {
		t.Fatalf("serve --help: exit %d", code)
	}
	flags := map[string]helpFlag{}
	name := ""
	def := regexp.MustCompile(`\(default (.*)\)$`)
	for _, line := range strings.Split(errOut, "\n") {
		switch {
		case strings.HasPrefix(line, "  -"):
			name = strings.Fields(line)[0][1:]
			flags[name] = helpFlag{}
		case name != "" && strings.HasPrefix(line, "    \t"):
			if m := def.FindStringSubmatch(line); m != nil {
				flags[name] = helpFlag{def: strings.Trim(m[1], `"`)}
			}
		}
	}
	if len(flags) < 10 {
		t.Fatalf("serve --help lists %d flags:\n%s", len(flags), errOut)
	}
	return flags
}

// sameDefault compares the README's default column with the default --help prints.
func sameDefault(readme, help string) bool {
	readme = strings.Trim(readme, "` ")
	switch {
	case readme == help:
		return true
	case help == "" || help == "false":
		// Unset: the README says what happens instead, in words or in parentheses.
		return readme == "" || readme == "off" || strings.HasPrefix(readme, "(")
	}
	a, errA := time.ParseDuration(readme)
	b, errB := time.ParseDuration(help)
	return errA == nil && errB == nil && a == b
}

// TestReadmeFlagTable: the README's table of serve flags names every flag `serve --help`
// prints, no flag it does not, and the same defaults.
func TestReadmeFlagTable(t *testing.T) {
	help := serveHelp(t)
	readme := map[string]string{}
	flagName := regexp.MustCompile("`--([a-z0-9-]+)`")
	for _, line := range strings.Split(readmeSection(t, "## Run it"), "\n") {
		if !strings.HasPrefix(line, "| `--") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			t.Fatalf("README flag row: %q", line)
		}
		for _, m := range flagName.FindAllStringSubmatch(cells[1], -1) {
			readme[m[1]] = strings.TrimSpace(cells[2])
		}
	}
	for name, h := range help {
		d, ok := readme[name]
		switch {
		case !ok:
			t.Errorf("serve --%s is not in README's flag table", name)
		case !sameDefault(d, h.def):
			t.Errorf("README says --%s defaults to %q, serve --help says %q", name, d, h.def)
		}
	}
	for name := range readme {
		if _, ok := help[name]; !ok {
			t.Errorf("README's flag table lists --%s, which serve does not have", name)
		}
	}
}
