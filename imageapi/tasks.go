package imageapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/internal/reqlog"
)

// Tasks (API 2.2; GET /v2/images/{id}/tasks since 2.12): glance/api/v2/tasks.py.

// taskJSON is a task as Glance formats it; full adds input, result and message (show and
// create; the list shows stubs).
func taskJSON(t catalog.Task, full bool) map[string]any {
	m := map[string]any{
		"id": t.ID, "type": t.Type, "status": t.Status, "owner": t.Owner,
		"expires_at": nil, "created_at": wireTime(t.CreatedAt), "updated_at": wireTime(t.UpdatedAt),
		"self": "/v2/tasks/" + t.ID, "schema": "/v2/schemas/task",
	}
	if t.ExpiresAt != nil {
		m["expires_at"] = wireTime(*t.ExpiresAt)
	}
	if full {
		m["input"], m["result"], m["message"] = rawOrNull(t.Input), rawOrNull(t.Result), t.Message
	}
	return m
}

func rawOrNull(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// taskRequest is the body of POST /v2/tasks.
type taskRequest struct {
	Type  *string          `json:"type"`
	Input *json.RawMessage `json:"input"`
}

// createTask is POST /v2/tasks (admins): 201 with the pending task; the import runs in the
// background.
func (a *API) createTask(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	b, err := readJSON(w, r)
	if err != nil {
		return err
	}
	var req taskRequest
	if err := json.Unmarshal(b, &req); err != nil {
		return errorf(http.StatusBadRequest, "The task body is not a JSON object with 'type' and 'input'.")
	}
	if req.Type == nil {
		return errorf(http.StatusBadRequest, "Provided object does not match schema 'task': 'type' is a required property")
	}
	if req.Input == nil {
		return errorf(http.StatusBadRequest, "Provided object does not match schema 'task': 'input' is a required property")
	}
	var in catalog.TaskInput
	if err := json.Unmarshal(*req.Input, &in); err != nil {
		return errorf(http.StatusBadRequest, "Provided object does not match schema 'task': 'input' must be an object of strings "+
			"(import_from, import_from_format) and image_properties.")
	}
	task, run, err := a.cat.CreateTask(r.Context(), pr, *req.Type, in, a.opt.Web, reqlog.ID(r.Context()))
	if err != nil {
		return err
	}
	go run(context.WithoutCancel(r.Context()))
	w.Header().Set("Location", "/v2/tasks/"+task.ID)
	return writeJSON(w, http.StatusCreated, taskJSON(task, true))
}

// listTasks is GET /v2/tasks (admins): filters status and type, sort_key/sort_dir, limit and
// marker; Glance's page links.
func (a *API) listTasks(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	q := r.URL.Query()
	opt := catalog.TaskListOptions{Status: q.Get("status"), Type: q.Get("type"), SortKey: q.Get("sort_key"),
		SortDir: q.Get("sort_dir"), Marker: q.Get("marker")}
	if opt.Status != "" && !slices.Contains([]string{catalog.TaskPending, catalog.TaskProcessing, catalog.TaskSuccess, catalog.TaskFailure}, opt.Status) {
		return errorf(http.StatusBadRequest, "Invalid status value: %s", opt.Status)
	}
	if opt.Type != "" && opt.Type != catalog.TaskTypeImport && opt.Type != catalog.TaskTypeAPIImport {
		return errorf(http.StatusBadRequest, "Invalid type value: %s", opt.Type)
	}
	if opt.SortKey != "" && !slices.Contains(catalog.TaskSortKeys, opt.SortKey) {
		return errorf(http.StatusBadRequest, "Invalid sort key: %s. It must be one of the following: %v.", opt.SortKey, catalog.TaskSortKeys)
	}
	if opt.SortDir != "" && opt.SortDir != "asc" && opt.SortDir != "desc" {
		return errorf(http.StatusBadRequest, "Invalid sort direction: %s", opt.SortDir)
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return errorf(http.StatusBadRequest, "limit param must be a positive integer")
		}
		opt.Limit = n
	}
	tasks, more, err := a.cat.ListTasks(r.Context(), pr, opt)
	if err != nil {
		return err
	}
	out := []any{}
	for _, t := range tasks {
		out = append(out, taskJSON(t, false))
	}
	body := map[string]any{"tasks": out, "first": "/v2/tasks", "schema": "/v2/schemas/tasks"}
	if more {
		next := url.Values{}
		for k, v := range q {
			next[k] = v
		}
		next.Set("marker", tasks[len(tasks)-1].ID)
		body["next"] = "/v2/tasks?" + next.Encode()
	}
	return writeJSON(w, http.StatusOK, body)
}

// showTask is GET /v2/tasks/{task} (admins); an expired task is gone.
func (a *API) showTask(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	t, err := a.cat.GetTask(r.Context(), pr, r.PathValue("task"))
	if err != nil {
		if catalog.IsNotFound(err) {
			return errorf(http.StatusNotFound, "Task with the given ID %s not found", r.PathValue("task"))
		}
		return err
	}
	return writeJSON(w, http.StatusOK, taskJSON(t, true))
}

// deleteTask is DELETE /v2/tasks/{task}: Glance refuses it, naming what is allowed.
func (a *API) deleteTask(http.ResponseWriter, *http.Request, auth.Principal) error {
	return errorf(http.StatusMethodNotAllowed, "This operation is currently not permitted on Glance Tasks.").withHeader("Allow", "GET")
}

// listImageTasks is GET /v2/images/{id}/tasks (API 2.12): the image's tasks, newest first,
// with the image, request and user they belong to.
func (a *API) listImageTasks(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	tasks, err := a.cat.ImageTasks(r.Context(), pr, r.PathValue("id"))
	if err != nil {
		return err
	}
	out := []any{}
	for _, t := range tasks {
		m := taskJSON(t, true)
		m["image_id"], m["request_id"], m["user_id"] = t.ImageID, t.RequestID, t.UserID
		delete(m, "self")
		delete(m, "schema")
		out = append(out, m)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"tasks": out})
}

// taskSchema is Glance's task schema (glance/api/v2/tasks.py get_task_schema).
func taskSchema() obj {
	str := func(desc string) obj { return obj{"description": desc, "type": "string"} }
	return obj{"name": "task", "properties": obj{
		"id": obj{"description": "An identifier for the task", "type": "string",
			"pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"},
		"type": obj{"description": "The type of task represented by this content", "type": "string",
			"enum": []string{catalog.TaskTypeImport, catalog.TaskTypeAPIImport}},
		"status": obj{"description": "The current status of this task", "type": "string",
			"enum": []string{catalog.TaskPending, catalog.TaskProcessing, catalog.TaskSuccess, catalog.TaskFailure}},
		"input":      obj{"description": "The parameters required by task, JSON blob", "type": []string{"null", "object"}},
		"result":     obj{"description": "The result of current task, JSON blob", "type": []string{"null", "object"}},
		"owner":      str("An identifier for the owner of this task"),
		"message":    str("Human-readable informative message only included when appropriate (usually on failure)"),
		"image_id":   str("Image associated with the task"),
		"request_id": str("Human-readable informative request-id"),
		"user_id":    str("User associated with the task"),
		"expires_at": obj{"description": "Datetime when this resource would be subject to removal", "type": []string{"null", "string"}},
		"created_at": str("Datetime when this resource was created"),
		"updated_at": str("Datetime when this resource was updated"),
		"self":       obj{"readOnly": true, "type": "string"},
		"schema":     obj{"readOnly": true, "type": "string"},
	}}
}

// getTaskSchema is GET /v2/schemas/task.
func (a *API) getTaskSchema(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	return writeJSON(w, http.StatusOK, taskSchema())
}

// getTasksSchema is GET /v2/schemas/tasks.
func (a *API) getTasksSchema(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	return writeJSON(w, http.StatusOK, obj{"name": "tasks",
		"properties": obj{"tasks": obj{"type": "array", "items": taskSchema()}, "schema": obj{"type": "string"},
			"first": obj{"type": "string"}, "next": obj{"type": "string"}},
		"links": []obj{{"href": "{first}", "rel": "first"}, {"href": "{next}", "rel": "next"}, {"href": "{schema}", "rel": "describedby"}},
	})
}
