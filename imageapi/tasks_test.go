package imageapi_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// waitTask polls a task as admin until it leaves pending and processing.
func (e *env) waitTask(id string) map[string]any {
	e.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		r := e.do("admin", "GET", "/v2/tasks/"+id, nil)
		if r.status != http.StatusOK {
			e.t.Fatalf("show task %s: %d %s", id, r.status, r.body)
		}
		task := r.json(e.t)
		if task["status"] == "success" || task["status"] == "failure" {
			return task
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("task %s stays %v", id, task["status"])
		}
	}
}

func TestTasksAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	data := rawImage(200000)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/disk.img" {
			w.Write(data)
			return
		}
		http.NotFound(w, r)
	}))
	defer web.Close()
	good := map[string]any{"type": "import", "input": map[string]any{"import_from": web.URL + "/disk.img",
		"import_from_format": "raw", "image_properties": map[string]any{"name": "from-task", "container_format": "bare"}}}

	// tasks_api_access is admin only.
	for _, c := range []struct{ method, path string }{{"POST", "/v2/tasks"}, {"GET", "/v2/tasks"}, {"GET", "/v2/tasks/x"}} {
		if r := e.do("member-a", c.method, c.path, good); r.status != http.StatusForbidden {
			t.Fatalf("member %s %s: %d %s", c.method, c.path, r.status, r.body)
		}
	}
	// Bad input: 400, and no task is made.
	for _, body := range []any{"not json", map[string]any{"input": good["input"]}, map[string]any{"type": "import"},
		map[string]any{"type": "bogus", "input": good["input"]}, map[string]any{"type": "import", "input": "x"},
		map[string]any{"type": "import", "input": map[string]any{"import_from_format": "raw", "image_properties": map[string]any{}}},
		map[string]any{"type": "import", "input": map[string]any{"import_from": web.URL, "image_properties": map[string]any{}}},
		map[string]any{"type": "import", "input": map[string]any{"import_from": web.URL, "import_from_format": "raw"}},
	} {
		if r := e.do("admin", "POST", "/v2/tasks", body, "Content-Type", "application/json"); r.status != http.StatusBadRequest {
			t.Fatalf("create task %v: %d %s", body, r.status, r.body)
		}
	}
	if r := e.do("admin", "GET", "/v2/tasks", nil); r.status != 200 || !strings.Contains(string(r.body), `"tasks":[]`) {
		t.Fatalf("tasks after bad input: %d %s", r.status, r.body)
	}

	// A good import task: 201 pending, then success with the new image's id; it expires
	// 48 hours after it finished.
	r := e.do("admin", "POST", "/v2/tasks", good)
	if r.status != http.StatusCreated {
		t.Fatalf("create task: %d %s", r.status, r.body)
	}
	created := r.json(t)
	if created["status"] != "pending" || created["type"] != "import" || created["expires_at"] != nil ||
		r.header.Get("Location") != "/v2/tasks/"+created["id"].(string) {
		t.Fatalf("created task: %v %v", created, r.header)
	}
	done := e.waitTask(created["id"].(string))
	result, _ := done["result"].(map[string]any)
	if done["status"] != "success" || result["image_id"] == nil || done["expires_at"] == nil {
		t.Fatalf("finished task: %v", done)
	}
	imgID := result["image_id"].(string)
	if img := e.show(imgID); img["status"] != "active" || img["name"] != "from-task" || img["owner"] != e.project["admin"] {
		t.Fatalf("task's image: %v", img)
	}
	if got := e.do("admin", "GET", "/v2/images/"+imgID+"/file", nil); !bytes.Equal(got.body, data) {
		t.Fatal("task's image data differs")
	}
	// A task whose source is missing fails with a message.
	bad := map[string]any{"type": "import", "input": map[string]any{"import_from": web.URL + "/missing",
		"import_from_format": "raw", "image_properties": map[string]any{"name": "nothing"}}}
	failed := e.waitTask(e.do("admin", "POST", "/v2/tasks", bad).json(t)["id"].(string))
	if failed["status"] != "failure" || failed["message"] == "" {
		t.Fatalf("failed task: %v", failed)
	}

	// Listing: stubs (no input), filters, order, pages.
	list := func(q string, want int) map[string]any {
		t.Helper()
		r := e.do("admin", "GET", "/v2/tasks"+q, nil)
		if r.status != want {
			t.Fatalf("list %s: %d %s", q, r.status, r.body)
		}
		if want != http.StatusOK {
			return nil
		}
		return r.json(t)
	}
	all := list("", 200)["tasks"].([]any)
	if len(all) != 2 || all[0].(map[string]any)["id"] != failed["id"] || all[0].(map[string]any)["input"] != nil {
		t.Fatalf("list: %v", all)
	}
	if got := list("?status=success", 200)["tasks"].([]any); len(got) != 1 || got[0].(map[string]any)["id"] != done["id"] {
		t.Fatalf("status=success: %v", got)
	}
	if got := list("?sort_dir=asc", 200)["tasks"].([]any); got[0].(map[string]any)["id"] != done["id"] {
		t.Fatalf("sort_dir=asc: %v", got)
	}
	page := list("?limit=1", 200)
	if len(page["tasks"].([]any)) != 1 || !strings.Contains(page["next"].(string), "marker="+failed["id"].(string)) {
		t.Fatalf("limit=1: %v", page)
	}
	if got := list("?limit=1&marker="+failed["id"].(string), 200); len(got["tasks"].([]any)) != 1 || got["next"] != nil {
		t.Fatalf("second page: %v", got)
	}
	for _, q := range []string{"?status=bogus", "?type=bogus", "?sort_key=name", "?sort_dir=up", "?limit=-1", "?limit=x", "?marker=nope"} {
		list(q, http.StatusBadRequest)
	}
	if r := e.do("admin", "DELETE", "/v2/tasks/"+done["id"].(string), nil); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET" {
		t.Fatalf("delete task: %d %v", r.status, r.header)
	}
	if r := e.do("admin", "GET", "/v2/tasks/00000000-0000-0000-0000-000000000000", nil); r.status != http.StatusNotFound {
		t.Fatalf("missing task: %d", r.status)
	}
	for _, s := range []string{"task", "tasks"} {
		if r := e.do("", "GET", "/v2/schemas/"+s, nil); r.status != 200 || r.json(t)["name"] != s {
			t.Fatalf("schema %s: %d %s", s, r.status, r.body)
		}
	}

	// Expired tasks are gone: 48 hours after they finished.
	e.cat.Now = func() time.Time { return time.Now().Add(49 * time.Hour) }
	if r := e.do("admin", "GET", "/v2/tasks/"+done["id"].(string), nil); r.status != http.StatusNotFound {
		t.Fatalf("expired task: %d %s", r.status, r.body)
	}
	if got := list("", 200)["tasks"].([]any); len(got) != 0 {
		t.Fatalf("list after expiry: %v", got)
	}
}

// TestImportTaskAndLock: an import makes an api_image_import task, shown by GET
// /v2/images/{id}/tasks, and holds os_glance_import_task so a second import is refused
// (409) until it ends.
func TestImportTaskAndLock(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	data := rawImage(100000)
	release := make(chan struct{})
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Write(data)
	}))
	defer web.Close()
	id := e.create("member-a", map[string]any{"name": "locked", "disk_format": "raw", "container_format": "bare"})
	imp := map[string]any{"method": map[string]any{"name": "web-download", "uri": web.URL + "/disk.img"}}
	if r := e.do("member-a", "POST", "/v2/images/"+id+"/import", imp); r.status != http.StatusAccepted {
		close(release)
		t.Fatalf("import: %d %s", r.status, r.body)
	}
	img := e.show(id)
	tasks := e.do("member-a", "GET", "/v2/images/"+id+"/tasks", nil).json(t)["tasks"].([]any)
	if len(tasks) != 1 {
		close(release)
		t.Fatalf("image tasks: %v", tasks)
	}
	task := tasks[0].(map[string]any)
	if img["os_glance_import_task"] != task["id"] || task["status"] != "processing" || task["type"] != "api_image_import" ||
		task["image_id"] != id || task["user_id"] == "" || task["request_id"] == "" {
		close(release)
		t.Fatalf("while importing: image %v task %v", img, task)
	}
	r := e.do("member-a", "POST", "/v2/images/"+id+"/import", imp)
	close(release)
	if r.status != http.StatusConflict || !strings.Contains(string(r.body), "already being imported") {
		t.Fatalf("second import: %d %s", r.status, r.body)
	}
	// The task ends after the image is active, and drops the lock before it does.
	e.waitStatus(id, "active")
	for deadline := time.Now().Add(10 * time.Second); task["status"] != "success"; time.Sleep(20 * time.Millisecond) {
		task = e.do("member-a", "GET", "/v2/images/"+id+"/tasks", nil).json(t)["tasks"].([]any)[0].(map[string]any)
		if time.Now().After(deadline) {
			t.Fatalf("import task: %v", task)
		}
	}
	if img := e.show(id); img["os_glance_import_task"] != nil {
		t.Fatalf("lock kept after the import: %v", img)
	}
	// Another project cannot see the image, nor its tasks; a bad id is 404 too.
	for _, path := range []string{"/v2/images/" + id + "/tasks", "/v2/images/00000000-0000-0000-0000-000000000000/tasks", "/v2/images/x/tasks"} {
		if r := e.do("member-b", "GET", path, nil); r.status != http.StatusNotFound {
			t.Fatalf("GET %s as a stranger: %d", path, r.status)
		}
	}
}
