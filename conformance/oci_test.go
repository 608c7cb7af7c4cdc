package conformance

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xloud/xloud-image/internal/testenv"
)

// conformanceEnv is the suite's configuration: every API and data set on, including those of
// the unreleased "dev" profile (upload cancel, ?tag= on manifest PUT) and sparse manifests.
func conformanceEnv(registry, resultsDir string) []string {
	return []string{
		"OCI_REGISTRY=" + registry,
		"OCI_TLS=disabled",
		"OCI_REPO1=conformance/repo1",
		"OCI_REPO2=conformance/repo2",
		"OCI_VERSION=dev",
		"OCI_API_BLOBS_UPLOAD_CANCEL=true",
		"OCI_API_MANIFESTS_TAG_PARAM=true",
		"OCI_DATA_SPARSE=true",
		"OCI_RESULTS_DIR=" + resultsDir,
	}
}

// minConformanceTests is a floor on the number of tests the pinned suite runs (1032 with the
// configuration above), so that a suite that silently runs little cannot pass.
const minConformanceTests = 1000

// TestOCIConformance runs the OCI distribution-spec conformance suite against a fresh server
// on each metadata backend and requires every test to pass: no failure, no skip, nothing
// disabled, no error.
func TestOCIConformance(t *testing.T) {
	t.Parallel()
	bin := testenv.RequireTool(t, "oci-conformance")
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			srv := startBackend(t, b, "--sparse-manifests")
			runConformance(t, bin, srv.RegistryAddr, nil)
		})
	}
}

// runConformance runs the suite against registry, with env added to its configuration
// (credentials, for instance), and fails the test unless every test passes but the skips
// named in maySkip (test name to the reason it may be skipped).
func runConformance(t *testing.T, bin, registry string, maySkip map[string]string, env ...string) {
	results := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Dir = results // the suite reads oci-conformance.yaml from its working directory
	cmd.Env = append(append(withoutOCIEnv(os.Environ()), conformanceEnv(registry, results)...), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	runErr := cmd.Run()
	t.Logf("oci-conformance ran in %.1fs (exit: %v)", time.Since(start).Seconds(), runErr)

	summary, err := parseSummary(stdout.String())
	if err != nil {
		t.Fatalf("conformance summary: %v\nstdout:\n%s\nstderr:\n%s", err, tail(stdout.String(), 80), tail(stderr.String(), 40))
	}
	t.Logf("conformance counts: Pass=%d FAIL=%d Skip=%d Disabled=%d Error=%d Total=%d",
		summary["Pass"], summary["FAIL"], summary["Skip"], summary["Disabled"], summary["Error"], summary["Total"])

	junit, err := readJUnit(filepath.Join(results, "junit.xml"))
	if err != nil {
		t.Fatalf("conformance junit.xml: %v\nstderr:\n%s", err, tail(stderr.String(), 40))
	}
	if junit.Tests != summary["Total"] || junit.Failures != summary["FAIL"] || junit.Errors != summary["Error"] ||
		junit.Skipped != summary["Skip"] || junit.Disabled != summary["Disabled"] {
		t.Errorf("junit.xml counts %+v disagree with the stdout summary %v", junit.counts(), summary)
	}

	skips := 0
	for _, tc := range junit.notPassed() {
		if tc.Status == "skipped" {
			if _, ok := maySkip[tc.Name]; ok {
				t.Logf("skipped as expected: %s (%s)", tc.Name, maySkip[tc.Name])
				continue
			}
		}
		if tc.Status == "skipped" {
			skips++
		}
	}
	bad := summary["FAIL"] != 0 || skips != 0 || summary["Disabled"] != 0 || summary["Error"] != 0
	if bad || runErr != nil {
		t.Errorf("conformance: FAIL=%d Skip=%d Disabled=%d Error=%d (exit: %v); want all zero",
			summary["FAIL"], summary["Skip"], summary["Disabled"], summary["Error"], runErr)
		for _, tc := range junit.notPassed() {
			t.Errorf("  %s: %s\n      %s", tc.Status, tc.Name, oneLine(tc.SystemOut, 600))
		}
		if errs := sectionAfter(stdout.String(), "Errors:"); errs != "" {
			t.Logf("suite errors:\n%s", tail(errs, 60))
		}
	}
	if summary["Pass"] < minConformanceTests || summary["Pass"] != summary["Total"]-(summary["Skip"]-skips) {
		t.Errorf("conformance: Pass=%d of Total=%d; want all of at least %d", summary["Pass"], summary["Total"], minConformanceTests)
	}
}

// withoutOCIEnv drops OCI_* variables of the caller so that only ours configure the suite.
func withoutOCIEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "OCI_") {
			out = append(out, kv)
		}
	}
	return out
}

// summaryLine matches the suite's count lines, e.g. "  Pass..........:       1032".
var summaryLine = regexp.MustCompile(`^\s+(Disabled|Skip|Pass|FAIL|Error|Total)\.*:\s+(\d+)\s*$`)

// parseSummary reads the counts the suite prints after "OCI Conformance Result:".
func parseSummary(stdout string) (map[string]int, error) {
	_, after, ok := strings.Cut(stdout, "\nOCI Conformance Result:")
	if !ok {
		return nil, fmt.Errorf("no %q line in the output", "OCI Conformance Result:")
	}
	counts := map[string]int{}
	for _, line := range strings.Split(after, "\n")[1:] {
		m := summaryLine.FindStringSubmatch(line)
		if m == nil {
			break
		}
		counts[m[1]], _ = strconv.Atoi(m[2])
	}
	for _, k := range []string{"Disabled", "Skip", "Pass", "FAIL", "Error", "Total"} {
		if _, ok := counts[k]; !ok {
			return nil, fmt.Errorf("summary has no %s count", k)
		}
	}
	return counts, nil
}

// sectionAfter returns the text after header up to the next blank line.
func sectionAfter(s, header string) string {
	_, after, ok := strings.Cut(s, "\n"+header+"\n")
	if !ok {
		return ""
	}
	before, _, _ := strings.Cut(after, "\n\n")
	return before
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// junitSuites is the part of the suite's junit.xml the test reads.
type junitSuites struct {
	Tests    int `xml:"tests,attr"`
	Failures int `xml:"failures,attr"`
	Errors   int `xml:"errors,attr"`
	Skipped  int `xml:"skipped,attr"`
	Disabled int `xml:"disabled,attr"`
	Suites   []struct {
		Cases []junitCase `xml:"testcase"`
	} `xml:"testsuite"`
}

type junitCase struct {
	Name      string `xml:"name,attr"`
	Status    string `xml:"status,attr"`
	SystemOut string `xml:"system-out"`
}

func readJUnit(path string) (*junitSuites, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var j junitSuites
	if err := xml.Unmarshal(b, &j); err != nil {
		return nil, err
	}
	if len(j.Suites) == 0 {
		return nil, fmt.Errorf("no testsuite element")
	}
	return &j, nil
}

func (j *junitSuites) counts() map[string]int {
	return map[string]int{"Total": j.Tests, "FAIL": j.Failures, "Error": j.Errors, "Skip": j.Skipped, "Disabled": j.Disabled}
}

// notPassed lists the leaf tests whose status is not "passed".
func (j *junitSuites) notPassed() []junitCase {
	var out []junitCase
	for _, s := range j.Suites {
		for _, c := range s.Cases {
			if c.Status != "passed" {
				out = append(out, c)
			}
		}
	}
	return out
}
