package imageapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/imageapi"
	"github.com/xloud/xloud-image/internal/testenv"
	"github.com/xloud/xloud-image/metadefs"
)

// BenchmarkMetadefShowVsImageShow (make bench): GET of the largest shipped namespace,
// OS::Software::DBMS with its 12 objects and their properties, against GET of one image, in
// one run over the same server (bbolt store, embedded identity) and the same member token,
// alternating so both see the same machine. The goal is namespace/image < 2; the show
// right after a change to the definitions is reported apart (cold-namespace/image).
func BenchmarkMetadefShowVsImageShow(b *testing.B) {
	store := testenv.OpenStore(b, "")
	id := auth.NewIdentity(store.Meta())
	proj, err := id.CreateProject(ctx, auth.Project{Name: "bench", Enabled: true})
	if err != nil {
		b.Fatal(err)
	}
	user, err := id.CreateUser(ctx, auth.User{Name: "member", Enabled: true}, "")
	if err != nil {
		b.Fatal(err)
	}
	if err := id.Grant(ctx, user.ID, proj.ID, auth.RoleMember); err != nil {
		b.Fatal(err)
	}
	_, token, err := id.IssueToken(ctx, user, proj.ID, []string{"password"}, time.Time{})
	if err != nil {
		b.Fatal(err)
	}
	policy := &auth.Policy{Directory: id}
	cat := catalog.New(store, policy)
	md := metadefs.New(store.Meta(), policy)
	if _, err := md.Init(ctx); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(imageapi.New(cat, &auth.Authenticator{Passwords: id, Tokens: id}, imageapi.Options{Metadefs: md}))
	defer srv.Close()
	do := func(method, path string, body []byte) []byte {
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
		req.Header.Set("X-Auth-Token", token)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer res.Body.Close()
		out, _ := io.ReadAll(res.Body)
		if res.StatusCode/100 != 2 {
			b.Fatalf("%s %s: %d %s", method, path, res.StatusCode, out)
		}
		return out
	}
	var img struct{ ID string }
	json.Unmarshal(do("POST", "/v2/images", []byte(`{"name":"bench","disk_format":"raw","container_format":"bare","os_distro":"ubuntu","hw_disk_bus":"virtio"}`)), &img)
	imgPath, nsPath := "/v2/images/"+img.ID, nsURL("OS::Software::DBMS")
	if n := len(do("GET", nsPath, nil)); n < 10000 {
		b.Fatalf("namespace show is %d bytes: not the whole namespace", n)
	}
	timed := func(path string) time.Duration {
		start := time.Now()
		do("GET", path, nil)
		return time.Since(start)
	}
	for range 50 { // warm both paths
		timed(imgPath)
		timed(nsPath)
	}
	// A write to another namespace before a show makes that show decode and encode again
	// (the cold show, after any change to the definitions).
	admin := auth.Principal{UserID: "admin", Admin: true}
	touch, err := metadefs.DecodeNamespace([]byte(`{"namespace":"OS::Compute::CPUMode","visibility":"public"}`))
	if err != nil {
		b.Fatal(err)
	}
	var imgT, nsT, coldT time.Duration
	b.ResetTimer()
	for range b.N {
		imgT += timed(imgPath)
		nsT += timed(nsPath)
		b.StopTimer()
		if _, err := md.UpdateNamespace(ctx, admin, "OS::Compute::CPUMode", touch); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		coldT += timed(nsPath)
	}
	b.ReportMetric(float64(imgT.Nanoseconds())/float64(b.N), "image-ns/op")
	b.ReportMetric(float64(nsT.Nanoseconds())/float64(b.N), "namespace-ns/op")
	b.ReportMetric(float64(nsT)/float64(imgT), "namespace/image")
	b.ReportMetric(float64(coldT)/float64(imgT), "cold-namespace/image")
}
