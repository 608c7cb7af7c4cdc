package catalog

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/storage/meta"
)

// Glance's task statuses (glance/domain Task) and types.
const (
	TaskPending    = "pending"
	TaskProcessing = "processing"
	TaskSuccess    = "success"
	TaskFailure    = "failure"

	// TaskTypeImport is the legacy import task of POST /v2/tasks; TaskTypeAPIImport the
	// task every POST /v2/images/{id}/import makes.
	TaskTypeImport    = "import"
	TaskTypeAPIImport = "api_image_import"
)

// TaskTimeToLive is Glance's task_time_to_live (48 hours): a finished task expires this long
// after it finished, and is gone from then on.
const TaskTimeToLive = 48 * time.Hour

// ImportLockProperty is the image property that holds the id of the task importing it, so
// a second import of the image is refused while one runs.
const ImportLockProperty = "os_glance_import_task"

// Task is Glance's task record.
type Task struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Status    string          `json:"status"`
	Input     json.RawMessage `json:"input"`
	Result    json.RawMessage `json:"result"`
	Owner     string          `json:"owner"`
	Message   string          `json:"message"`
	ExpiresAt *time.Time      `json:"expires_at"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
	// ImageID, UserID and RequestID are shown by GET /v2/images/{id}/tasks (API 2.12).
	ImageID   string `json:"image_id,omitempty"`
	UserID    string `json:"user_id,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// Metadata keys of tasks:
//
//	task:<id>              Task
//	set tasks              every task as timeKey(created, id)
//	set imagetasks:<image> the tasks of one image, as timeKey(created, id)
func keyTask(id string) string             { return "task:" + id }
func keyImageTasks(id string) string       { return "imagetasks:" + id }
func (t *Task) expired(now time.Time) bool { return t.ExpiresAt != nil && !now.Before(*t.ExpiresAt) }

const setTasks = "tasks"

func putTask(tx meta.Tx, t Task) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := tx.Put(keyTask(t.ID), b); err != nil {
		return err
	}
	if err := tx.SetAdd(setTasks, timeKey(t.CreatedAt, t.ID)); err != nil {
		return err
	}
	if t.ImageID != "" {
		return tx.SetAdd(keyImageTasks(t.ImageID), timeKey(t.CreatedAt, t.ID))
	}
	return nil
}

func getTask(tx meta.Tx, id string) (Task, error) {
	var t Task
	b, err := tx.Get(keyTask(id))
	if errors.Is(err, meta.ErrNotFound) {
		return t, ErrNotFound
	}
	if err != nil {
		return t, err
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return t, fmt.Errorf("decode task %s: %w", id, err)
	}
	return t, nil
}

// newTask is a pending task of the caller.
func (c *Catalog) newTask(pr auth.Principal, typ string, input any, imageID, requestID string) (Task, error) {
	in, err := json.Marshal(input)
	if err != nil {
		return Task{}, err
	}
	now := c.Now().UTC().Truncate(time.Second)
	return Task{ID: c.NewID(), Type: typ, Status: TaskPending, Input: in, Owner: callerProject(pr),
		CreatedAt: now, UpdatedAt: now, ImageID: imageID, UserID: pr.UserID, RequestID: requestID}, nil
}

// finishTask records a task's end: success with its result, or failure with why. It then
// expires after TaskTimeToLive.
func (c *Catalog) finishTask(ctx context.Context, id string, result any, failure error) {
	now := c.Now().UTC().Truncate(time.Second)
	expires := now.Add(TaskTimeToLive)
	err := c.meta.Update(ctx, func(tx meta.Tx) error {
		t, err := getTask(tx, id)
		if err != nil {
			return err
		}
		t.Status, t.UpdatedAt, t.ExpiresAt = TaskSuccess, now, &expires
		if failure != nil {
			t.Status, t.Message = TaskFailure, taskMessage(failure)
		} else if result != nil {
			if t.Result, err = json.Marshal(result); err != nil {
				return err
			}
		}
		return putTask(tx, t)
	})
	if err != nil {
		c.Log.Error("record the end of a task", "task", id, "err", err)
	}
}

// interruptTask marks the task id (none: "") failed because its writer stopped, in tx.
func (c *Catalog) interruptTask(tx meta.Tx, id string) error {
	if id == "" {
		return nil
	}
	t, err := getTask(tx, id)
	if errors.Is(err, ErrNotFound) || (err == nil && t.Status != TaskProcessing && t.Status != TaskPending) {
		return nil
	}
	if err != nil {
		return err
	}
	now := c.Now().UTC().Truncate(time.Second)
	expires := now.Add(TaskTimeToLive)
	t.Status, t.Message, t.UpdatedAt, t.ExpiresAt = TaskFailure, "the import was interrupted: the server doing it stopped", now, &expires
	return putTask(tx, t)
}

// taskMessage is what a failed task tells its reader: a refusal's own message, not the
// server's internals.
func taskMessage(err error) string {
	if k, msg := KindOf(err); k != 0 && msg != "" {
		return msg
	}
	return err.Error()
}

// setTaskStatus moves a task to processing.
func (c *Catalog) setTaskStatus(ctx context.Context, id, status string) error {
	return c.meta.Update(ctx, func(tx meta.Tx) error {
		t, err := getTask(tx, id)
		if err != nil {
			return err
		}
		t.Status, t.UpdatedAt = status, c.Now().UTC().Truncate(time.Second)
		return putTask(tx, t)
	})
}

// TaskInput is the input of a legacy import task (POST /v2/tasks, type import).
type TaskInput struct {
	ImportFrom       string            `json:"import_from"`
	ImportFromFormat string            `json:"import_from_format"`
	ImageProperties  map[string]string `json:"image_properties"`
}

// CreateTask starts a legacy import task (admins: tasks_api_access): it answers the pending
// task at once; the returned function creates the image from image_properties and imports
// import_from into it by web-download, and the caller runs it in the background.
func (c *Catalog) CreateTask(ctx context.Context, pr auth.Principal, typ string, in TaskInput, web *WebDownloader, requestID string) (Task, func(context.Context), error) {
	if err := c.allowTasks(ctx, pr); err != nil {
		return Task{}, nil, err
	}
	if typ != TaskTypeImport {
		return Task{}, nil, errorf(BadRequest, "Invalid type value: %s", typ)
	}
	switch {
	case in.ImportFrom == "":
		return Task{}, nil, errorf(BadRequest, "Input does not contain 'import_from' field")
	case in.ImportFromFormat == "":
		return Task{}, nil, errorf(BadRequest, "Input does not contain 'import_from_format' field")
	case in.ImageProperties == nil:
		return Task{}, nil, errorf(BadRequest, "Input does not contain 'image_properties' field")
	}
	t, err := c.newTask(pr, typ, in, "", requestID)
	if err != nil {
		return t, nil, err
	}
	if err := c.meta.Update(ctx, func(tx meta.Tx) error { return putTask(tx, t) }); err != nil {
		return t, nil, fmt.Errorf("store task %s: %w", t.ID, err)
	}
	run := func(ctx context.Context) {
		if err := c.setTaskStatus(ctx, t.ID, TaskProcessing); err != nil {
			c.Log.Error("start a task", "task", t.ID, "err", err)
		}
		id, err := c.runImportTask(ctx, pr, t.ID, in, web)
		if err != nil {
			c.finishTask(ctx, t.ID, nil, err)
			return
		}
		c.finishTask(ctx, t.ID, map[string]string{"image_id": id}, nil)
	}
	return t, run, nil
}

// runImportTask creates the task's image and imports its data by web-download.
func (c *Catalog) runImportTask(ctx context.Context, pr auth.Principal, taskID string, in TaskInput, web *WebDownloader) (string, error) {
	props := map[string]string{}
	ni := NewImage{ContainerFormat: ptr("bare"), DiskFormat: ptr(in.ImportFromFormat)}
	for k, v := range in.ImageProperties {
		switch k {
		case "name":
			ni.Name = ptr(v)
		case "disk_format":
			ni.DiskFormat = ptr(v)
		case "container_format":
			ni.ContainerFormat = ptr(v)
		default:
			props[k] = v
		}
	}
	ni.Properties = props
	img, err := c.Create(ctx, pr, ni)
	if err != nil {
		return "", err
	}
	run, err := c.Import(ctx, pr, img.ID, ImportRequest{Method: ImportWebDownload, URI: in.ImportFrom, Web: web, task: taskID})
	if err != nil {
		return img.ID, err
	}
	return img.ID, run(ctx)
}

func ptr[T any](v T) *T { return &v }

// allowTasks applies tasks_api_access.
func (c *Catalog) allowTasks(ctx context.Context, pr auth.Principal) error {
	ok, err := c.policy.AllowImage(ctx, pr, auth.ImageFacts{}, auth.ImageTasksAPI, "")
	if err != nil {
		return err
	}
	if !ok {
		return errorf(Forbidden, "You are not authorized to complete %s action.", auth.ImageTasksAPI)
	}
	return nil
}

// GetTask returns a task that has not expired (admins: tasks_api_access).
func (c *Catalog) GetTask(ctx context.Context, pr auth.Principal, id string) (Task, error) {
	if err := c.allowTasks(ctx, pr); err != nil {
		return Task{}, err
	}
	var t Task
	err := c.meta.View(ctx, func(tx meta.Tx) (err error) {
		t, err = getTask(tx, id)
		return err
	})
	if err == nil && t.expired(c.Now()) {
		err = ErrNotFound
	}
	return t, err
}

// TaskListOptions are GET /v2/tasks's filters, order and page.
type TaskListOptions struct {
	Status, Type string
	SortKey      string // created_at (default), updated_at, id, type, status
	SortDir      string // desc (default), asc
	Marker       string
	Limit        int
}

// TaskSortKeys are the keys GET /v2/tasks sorts by.
var TaskSortKeys = []string{"created_at", "updated_at", "id", "type", "status"}

// ListTasks returns the live tasks matching opt, ordered and paged; more says whether a
// next page exists. It reads every task record: tasks expire after two days, so they stay
// few.
func (c *Catalog) ListTasks(ctx context.Context, pr auth.Principal, opt TaskListOptions) (tasks []Task, more bool, err error) {
	if err := c.allowTasks(ctx, pr); err != nil {
		return nil, false, err
	}
	all, err := c.readTasks(ctx, setTasks)
	if err != nil {
		return nil, false, err
	}
	var out []Task
	for _, t := range all {
		if (opt.Status == "" || t.Status == opt.Status) && (opt.Type == "" || t.Type == opt.Type) {
			out = append(out, t)
		}
	}
	slices.SortStableFunc(out, func(a, b Task) int {
		r := taskCompare(a, b, opt.SortKey)
		if r == 0 {
			r = cmp.Compare(a.ID, b.ID)
		}
		if opt.SortDir != "asc" {
			r = -r
		}
		return r
	})
	if opt.Marker != "" {
		i := slices.IndexFunc(out, func(t Task) bool { return t.ID == opt.Marker })
		if i < 0 {
			return nil, false, errorf(BadRequest, "Invalid marker. Task %s could not be found.", opt.Marker)
		}
		out = out[i+1:]
	}
	if opt.Limit > 0 && len(out) > opt.Limit {
		return out[:opt.Limit], true, nil
	}
	return out, false, nil
}

func taskCompare(a, b Task, key string) int {
	switch key {
	case "updated_at":
		return a.UpdatedAt.Compare(b.UpdatedAt)
	case "id":
		return cmp.Compare(a.ID, b.ID)
	case "type":
		return cmp.Compare(a.Type, b.Type)
	case "status":
		return cmp.Compare(a.Status, b.Status)
	}
	return a.CreatedAt.Compare(b.CreatedAt)
}

// readTasks returns the live tasks of a set, oldest first.
func (c *Catalog) readTasks(ctx context.Context, set string) ([]Task, error) {
	var out []Task
	now := c.Now()
	err := c.meta.View(ctx, func(tx meta.Tx) error {
		out = nil
		keys, err := tx.SetRange(set, "", 0)
		if err != nil {
			return err
		}
		for _, k := range keys {
			t, err := getTask(tx, idFromSortKey(k))
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if !t.expired(now) {
				out = append(out, t)
			}
		}
		return nil
	})
	return out, err
}

// ImageTasks returns the live tasks of an image the caller may see (GET
// /v2/images/{id}/tasks, get_image), newest first.
func (c *Catalog) ImageTasks(ctx context.Context, pr auth.Principal, id string) ([]Task, error) {
	if _, err := c.Get(ctx, pr, id); err != nil {
		return nil, err
	}
	tasks, err := c.readTasks(ctx, keyImageTasks(id))
	slices.Reverse(tasks)
	return tasks, err
}
