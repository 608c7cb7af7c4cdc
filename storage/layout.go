package storage

// Layout of everything the store keeps.
//
// Blob stores hold bytes under keys; the blob record names the store and the key. The
// filesystem store (Files), under its directory (the data directory without --store):
//
//	blobs/<alg>/<first 2 hex>/<hex>   a committed blob (layers, configs and manifests alike),
//	                                   stored once for the whole server; the key is this path
//	uploads/<upload id>                the bytes of an upload session so far (uploads, image
//	                                   data and manifests alike go through a session)
//
// The S3 store (S3Store), under its bucket and prefix:
//
//	data/<upload id>                   a committed blob: the multipart upload of session <upload
//	                                   id> completed at the key it was started at, so commit
//	                                   moves and copies nothing (keppel's storage id)
//	uploads/<upload id>/tail           the bytes of a session not yet in a part (less than the
//	                                   5 MiB part minimum), rewritten by each append
//	multipart uploads at data/<id>     the parts of a session so far
//
// The node cache (Cache, --cache-dir), one per node, not shared:
//
//	blobs/<alg>/<hex>                  a verified copy of a remote store's blob
//	incomplete/<hex>-<random>          a fill in progress (removed at start)
//	index.db                           bbolt: bucket entries (digest → size, hits, access and
//	                                   fill times, the key filled from, image ids) and bucket
//	                                   queue (image id → digest, queued time)
//
// Metadata keys (meta.Tx keys and sorted sets); <repo> never holds ':' and <tag> never holds
// ':', so every key parses unambiguously:
//
//	blob:<digest>                  blobRecord: size, manifest reference count, last touch,
//	                               deleting mark (set by GC while it removes the file), the
//	                               store and key of the bytes, and further whole copies in
//	                               other stores (multi-store: copy-image, import to stores)
//	blobkey:<store>:<key>          the digest whose bytes are at key in store, for every copy
//	                               (GC's check that an object it finds is someone's)
//	set blobs                      every digest that has a blob record
//	set bloblinks:<digest>         repositories the blob is linked into
//	set repos                      every repository name
//	set repo:<repo>:blobs          blobs linked into the repository (pushed or mounted)
//	set repo:<repo>:manifests      manifests in the repository
//	manifest:<repo>:<digest>       manifestRecord: media type, size, subject, artifact type,
//	                               annotations, the digests it holds references on
//	tag:<repo>:<tag>               the digest a tag points at
//	set repo:<repo>:tags           tag names of the repository
//	set mtags:<repo>:<digest>      tags pointing at one manifest (so a delete removes them)
//	set referrers:<repo>:<digest>  manifests whose subject is <digest>
//	set holders:<repo>:<digest>    manifests of the repository that hold <digest>
//	upload:<id>                    Upload: repository, offset, hash state, times, the store
//	                               and its resume state (S3: multipart id, parts, tail)
//	set uploads                    every open upload session id
//	set uploads:<project>          open session ids of repositories under <project>/ (the cap)
//	set gc:review                  "<due, Unix ns, 20 digits>|<digest>": blobs that lost (or
//	                               never had) a holder, for GC to review once due (gcqueue.go)
//	lock:<name>                    a cluster-wide chore's lock: holder node and expiry (meta)

import (
	"strings"

	"github.com/opencontainers/go-digest"
)

func keyBlob(d digest.Digest) string       { return "blob:" + d.String() }
func keyBlobLinks(d digest.Digest) string  { return "bloblinks:" + d.String() }
func keyRepoBlobs(repo string) string      { return "repo:" + repo + ":blobs" }
func keyRepoManifests(repo string) string  { return "repo:" + repo + ":manifests" }
func keyRepoTags(repo string) string       { return "repo:" + repo + ":tags" }
func keyTag(repo, tag string) string       { return "tag:" + repo + ":" + tag }
func keyUpload(id string) string           { return "upload:" + id }
func keyStoreKey(store, key string) string { return "blobkey:" + store + ":" + key }

// setProjectUploads is the set of open sessions of a project: the first path component of
// the repository, the unit that owns repositories.
func setProjectUploads(repo string) string {
	project, _, _ := strings.Cut(repo, "/")
	return "uploads:" + project
}
func keyManifestTags(repo string, d digest.Digest) string {
	return "mtags:" + repo + ":" + d.String()
}
func keyManifest(repo string, d digest.Digest) string {
	return "manifest:" + repo + ":" + d.String()
}
func keyHolders(repo string, d digest.Digest) string {
	return "holders:" + repo + ":" + d.String()
}
func keyReferrers(repo string, subject digest.Digest) string {
	return "referrers:" + repo + ":" + subject.String()
}

const (
	setBlobs   = "blobs"
	setRepos   = "repos"
	setUploads = "uploads"
)
