//go:build unix

// Keystone runs under process groups and another user's credentials: Unix only.

package testenv

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Keystone is a real OpenStack Keystone (Debian's keystone package, its development WSGI
// server) on a private PostgreSQL cluster, both on free loopback ports, with these
// projects and users in the Default domain:
//
//	project service  user ServiceUser  admin  (the service credentials)
//	project kproj    user kmember      member
//	                 user kreader      reader
//	project kother   user kother       member
//
// Every test user has the password Password.
type Keystone struct {
	// URL is Keystone's unversioned base URL; the API is under URL + "/v3".
	URL           string
	AdminPassword string
	// ServiceUser and ServicePassword sign in to the project ServiceProject.
	ServiceUser, ServicePassword, ServiceProject string
	// Password is every test user's password.
	Password string
	// Projects and Users map names to Keystone ids.
	Projects, Users map[string]string

	dir        string
	adminToken string
	procs      []keystoneProc // stopped in reverse order
}

// keystoneProc is a started process; exited closes once it has been waited for.
type keystoneProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// startProc starts cmd in a process group of its own and watches for its exit.
func (k *Keystone) startProc(cmd *exec.Cmd) (keystoneProc, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		return keystoneProc{}, err
	}
	p := keystoneProc{cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }()
	k.procs = append(k.procs, p)
	return p, nil
}

// stop signals the process group and waits for the process to exit, killing the group
// after ten seconds.
func (p keystoneProc) stop(sig syscall.Signal) {
	syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
}

// Test users and projects of StartKeystone.
const (
	KeystoneProject      = "kproj"
	KeystoneOtherProject = "kother"
	KeystoneMember       = "kmember"
	KeystoneReader       = "kreader"
	KeystoneOther        = "kother"
)

// StartKeystone starts PostgreSQL and Keystone for the life of the test and creates the
// projects, users and role assignments above. It installs nothing: missing packages fail
// the test (scripts/install-deps.sh installs keystone, postgresql and python3-psycopg2).
// It takes some 15 seconds; share one per test where possible.
func StartKeystone(t testing.TB) *Keystone {
	t.Helper()
	pgBin := keystoneRequirements(t)
	dir, err := os.MkdirTemp("", "xloud-keystone-")
	if err != nil {
		t.Fatal(err)
	}
	k := &Keystone{dir: dir, AdminPassword: keystoneSecret(), ServiceUser: "xloud-image",
		ServicePassword: keystoneSecret(), ServiceProject: "service", Password: keystoneSecret(),
		Projects: map[string]string{}, Users: map[string]string{}}
	t.Cleanup(k.stop)
	start := time.Now()
	pgPort := k.startPostgres(t, pgBin)
	pgReady := time.Now()
	k.startKeystone(t, pgPort)
	ksReady := time.Now()
	k.populate(t)
	t.Logf("keystone at %s ready in %v (postgres %v, keystone %v, users %v)", k.URL,
		time.Since(start).Round(time.Millisecond), pgReady.Sub(start).Round(time.Millisecond),
		ksReady.Sub(pgReady).Round(time.Millisecond), time.Since(ksReady).Round(time.Millisecond))
	return k
}

// keystoneRequirements fails the test unless Keystone, PostgreSQL and psycopg2 are here; it
// returns PostgreSQL's bin directory.
func keystoneRequirements(t testing.TB) string {
	t.Helper()
	const hint = "run scripts/install-deps.sh (Debian packages keystone postgresql python3-psycopg2)"
	for _, bin := range []string{"keystone-manage", "keystone-wsgi-public"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed: %s", bin, hint)
		}
	}
	if out, err := exec.Command("/usr/bin/python3", "-c", "import psycopg2").CombinedOutput(); err != nil {
		t.Fatalf("python3-psycopg2 is not installed (%v: %s): %s", err, bytes.TrimSpace(out), hint)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if keystoneIsFile(filepath.Join(d, "initdb")) && keystoneIsFile(filepath.Join(d, "postgres")) {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && keystoneIsFile(filepath.Join(filepath.Dir(real), "postgres")) {
			return filepath.Dir(real)
		}
	}
	t.Fatalf("PostgreSQL (initdb, postgres) is not installed: %s", hint)
	return ""
}

func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func keystoneIsFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// keystoneSecret is a random password.
// keystoneSecret is a random password for Keystone's users. It never starts with '-',
// which keystone-manage's and openstack's argument parsers take for an option.
func keystoneSecret() string {
	b := make([]byte, 12)
	for {
		rand.Read(b)
		if s := base64.RawURLEncoding.EncodeToString(b); s[0] != '-' {
			return s
		}
	}
}

// postgresCredential is who PostgreSQL runs as: it refuses to run as root, so as root the
// postgres user (as `runuser -u postgres` would), otherwise the current user.
func postgresCredential(t testing.TB) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("running as root, PostgreSQL needs the postgres user: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

// startPostgres creates a cluster in the temp dir (trust authentication, loopback only,
// its unix socket in the temp dir, durability off) and starts it; it returns the port.
func (k *Keystone) startPostgres(t testing.TB, bin string) int {
	t.Helper()
	cred := postgresCredential(t)
	data, sock := filepath.Join(k.dir, "pgdata"), filepath.Join(k.dir, "pgsock")
	if err := os.Chmod(k.dir, 0o755); err != nil { // the postgres user must reach its dirs
		t.Fatal(err)
	}
	for _, d := range []string{data, sock} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if cred != nil {
			if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
				t.Fatal(err)
			}
		}
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = k.dir
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	for attempt := 0; attempt < 3; attempt++ {
		port := FreePort(t)
		logPath := filepath.Join(k.dir, fmt.Sprintf("postgres-%d.log", port))
		logf, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-k", sock,
			"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
			"-c", "full_page_writes=off")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = k.dir
		cmd.Stdout, cmd.Stderr = logf, logf
		proc, err := k.startProc(cmd)
		logf.Close()
		if err != nil {
			t.Fatalf("start postgres: %v", err)
		}
		if waitLogLine(logPath, "database system is ready to accept connections", proc.exited, 30*time.Second) {
			return port
		}
		proc.stop(syscall.SIGQUIT)
		k.procs = k.procs[:len(k.procs)-1]
		if attempt == 2 {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("postgres did not start:\n%s", b)
		}
	}
	return 0
}

// waitLogLine reports whether the file at path contains line within d (false at once when
// exited closes: the process is gone).
func waitLogLine(path, line string, exited <-chan struct{}, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(path); bytes.Contains(b, []byte(line)) {
			return true
		}
		select {
		case <-exited:
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	return false
}

// startKeystone writes Keystone's configuration and key repositories, creates its schema,
// starts the server and bootstraps the admin.
func (k *Keystone) startKeystone(t testing.TB, pgPort int) {
	t.Helper()
	port := FreePort(t)
	k.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	conf := filepath.Join(k.dir, "keystone.conf")
	fernet, cred := filepath.Join(k.dir, "fernet-keys"), filepath.Join(k.dir, "credential-keys")
	writeFernetKeys(t, fernet)
	writeFernetKeys(t, cred)
	// password_hash_rounds: bcrypt's minimum, so password checks cost milliseconds here.
	// Receipts (MFA) share the token keys: Keystone reads their repository too, and its
	// default is under /etc. The in-process cache, as production Keystones run with
	// memcached: without it, one token validation makes some 200 database transactions (half
	// a second). Revocation invalidates it.
	cfg := fmt.Sprintf(`[DEFAULT]
log_file = %[1]s
use_stderr = false
[database]
connection = postgresql+psycopg2://postgres@127.0.0.1:%[2]d/postgres
[token]
provider = fernet
expiration = 3600
[fernet_tokens]
key_repository = %[3]s
[fernet_receipts]
key_repository = %[3]s
[credential]
key_repository = %[4]s
[identity]
password_hash_rounds = 4
[cache]
enabled = true
backend = oslo_cache.dict
`, filepath.Join(k.dir, "keystone.log"), pgPort, fernet, cred)
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	k.manage(t, "db_sync")

	// The server starts while bootstrap fills the database: it reads nothing at start.
	logPath := filepath.Join(k.dir, "keystone-wsgi.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("keystone-wsgi-public", "--host", "127.0.0.1", "--port", strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "OS_KEYSTONE_CONFIG_DIR="+k.dir, "OS_KEYSTONE_CONFIG_FILES=keystone.conf")
	cmd.Dir = k.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	proc, err := k.startProc(cmd)
	logf.Close()
	if err != nil {
		t.Fatalf("start keystone-wsgi-public: %v", err)
	}
	k.manage(t, "bootstrap", "--bootstrap-password", k.AdminPassword,
		"--bootstrap-public-url", k.URL+"/v3/", "--bootstrap-region-id", "RegionOne")
	if !waitHTTP(k.URL+"/v3", proc.exited, 60*time.Second) {
		t.Fatalf("keystone did not answer at %s/v3:\n%s\n%s", k.URL, tailFile(logPath, 40), k.Log())
	}
}

// manage runs keystone-manage with the test's configuration. It prints an eventlet
// traceback at exit ("'NoneType' object has no attribute 'getcurrent'"): harmless.
func (k *Keystone) manage(t testing.TB, args ...string) {
	t.Helper()
	cmd := exec.Command("keystone-manage", append([]string{"--config-file", filepath.Join(k.dir, "keystone.conf")}, args...)...)
	cmd.Dir = k.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("keystone-manage %s: %v\n%s\n%s", args[0], err, out, k.Log())
	}
}

// writeFernetKeys makes a key repository as `keystone-manage fernet_setup` does (a staged
// key 0 and a primary key 1), without starting Python for it.
func writeFernetKeys(t testing.TB, dir string) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"0", "1"} {
		key := make([]byte, 32)
		rand.Read(key)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(base64.URLEncoding.EncodeToString(key)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// waitHTTP reports whether url answers 200 within d (false at once when exited closes).
func waitHTTP(url string, exited <-chan struct{}, d time.Duration) bool {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		select {
		case <-exited:
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
	return false
}

// populate creates the service project and user and the test projects and users, through
// the API as the bootstrap admin.
func (k *Keystone) populate(t testing.TB) {
	t.Helper()
	tok, err := k.Login("admin", k.AdminPassword, "admin")
	if err != nil {
		t.Fatalf("keystone: admin login: %v", err)
	}
	k.adminToken = tok
	var roles struct {
		Roles []struct{ ID, Name string } `json:"roles"`
	}
	k.mustCall(t, "GET", "/v3/roles", nil, &roles, http.StatusOK)
	roleID := map[string]string{}
	for _, r := range roles.Roles {
		roleID[r.Name] = r.ID
	}
	for _, p := range []string{k.ServiceProject, KeystoneProject, KeystoneOtherProject} {
		var out struct {
			Project struct{ ID string } `json:"project"`
		}
		body := map[string]any{"project": map[string]any{"name": p, "domain_id": "default", "enabled": true}}
		k.mustCall(t, "POST", "/v3/projects", body, &out, http.StatusCreated)
		k.Projects[p] = out.Project.ID
	}
	for _, u := range []struct{ name, password, project, role string }{
		{k.ServiceUser, k.ServicePassword, k.ServiceProject, "admin"},
		{KeystoneMember, k.Password, KeystoneProject, "member"},
		{KeystoneReader, k.Password, KeystoneProject, "reader"},
		{KeystoneOther, k.Password, KeystoneOtherProject, "member"},
	} {
		var out struct {
			User struct{ ID string } `json:"user"`
		}
		body := map[string]any{"user": map[string]any{"name": u.name, "password": u.password, "domain_id": "default", "enabled": true}}
		k.mustCall(t, "POST", "/v3/users", body, &out, http.StatusCreated)
		k.Users[u.name] = out.User.ID
		if roleID[u.role] == "" {
			t.Fatalf("keystone has no role %q", u.role)
		}
		k.mustCall(t, "PUT", "/v3/projects/"+k.Projects[u.project]+"/users/"+out.User.ID+"/roles/"+roleID[u.role], nil, nil, http.StatusNoContent)
	}
}

// Login asks Keystone for a token of user (Default domain) with the password method, scoped
// to project (by name, Default domain) unless project is empty, and returns it.
func (k *Keystone) Login(user, password, project string) (string, error) {
	a := map[string]any{"identity": map[string]any{
		"methods": []string{"password"},
		"password": map[string]any{"user": map[string]any{
			"name": user, "password": password, "domain": map[string]string{"name": "Default"}}},
	}}
	if project != "" {
		a["scope"] = map[string]any{"project": map[string]any{"name": project, "domain": map[string]string{"name": "Default"}}}
	}
	resp, err := k.call("POST", "/v3/auth/tokens?nocatalog", "", map[string]any{"auth": a}, nil, http.StatusCreated)
	if err != nil {
		return "", err
	}
	return resp.Header.Get("X-Subject-Token"), nil
}

// Token returns a token of a test user scoped to project, failing the test on error.
func (k *Keystone) Token(t testing.TB, user, project string) string {
	t.Helper()
	tok, err := k.Login(user, k.Password, project)
	if err != nil || tok == "" {
		t.Fatalf("keystone: token for %s on %s: %q, %v", user, project, tok, err)
	}
	return tok
}

// RevokeToken revokes tok in Keystone (DELETE /v3/auth/tokens, as the admin).
func (k *Keystone) RevokeToken(t testing.TB, tok string) {
	t.Helper()
	if _, err := k.call("DELETE", "/v3/auth/tokens", tok, nil, nil, http.StatusNoContent); err != nil {
		t.Fatalf("keystone: revoke token: %v", err)
	}
}

// TokenValid reports whether Keystone itself still accepts tok.
func (k *Keystone) TokenValid(t testing.TB, tok string) bool {
	t.Helper()
	resp, err := k.call("GET", "/v3/auth/tokens?nocatalog", tok, nil, nil, 0)
	if err != nil {
		t.Fatalf("keystone: validate token: %v", err)
	}
	return resp.StatusCode == http.StatusOK
}

func (k *Keystone) mustCall(t testing.TB, method, path string, in, out any, want int) {
	t.Helper()
	if _, err := k.call(method, path, "", in, out, want); err != nil {
		t.Fatalf("keystone: %v", err)
	}
}

// call sends one request as the admin (subject, when not empty, is the X-Subject-Token) and
// decodes the answer into out; an answer other than want (0: any) is an error.
func (k *Keystone) call(method, path, subject string, in, out any, want int) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, k.URL+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if k.adminToken != "" {
		req.Header.Set("X-Auth-Token", k.adminToken)
	}
	if subject != "" {
		req.Header.Set("X-Subject-Token", subject)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return resp, err
	}
	if want != 0 && resp.StatusCode != want {
		return resp, fmt.Errorf("%s %s: %s, want %d: %s", method, path, resp.Status, want, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp, fmt.Errorf("%s %s: decode: %v", method, path, err)
		}
	}
	return resp, nil
}

// Log returns the end of Keystone's log, for failure messages.
func (k *Keystone) Log() string { return tailFile(filepath.Join(k.dir, "keystone.log"), 60) }

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stop stops Keystone, then PostgreSQL (fast shutdown), and removes their files.
func (k *Keystone) stop() {
	for i := len(k.procs) - 1; i >= 0; i-- {
		k.procs[i].stop(syscall.SIGINT)
	}
	os.RemoveAll(k.dir)
}
