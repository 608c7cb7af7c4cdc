package storage

import (
	"context"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/storage/meta"
)

// NamespaceBytes reports the bytes of the distinct blobs that manifests hold in the
// repositories of one namespace (the first path component: a project), each counted once
// however many repositories and manifests share it (blobs nothing holds, being collected,
// count not), and how many bytes the blobs of more would add to that. It reads every blob
// link of the namespace: it is for the quota check of a push, not for every read.
func (s *Store) NamespaceBytes(ctx context.Context, namespace string, more []digest.Digest) (used, added int64, err error) {
	err = s.meta.View(ctx, func(tx meta.Tx) error {
		used, added = 0, 0
		prefix := namespace + "/"
		repos, err := tx.SetRange(setRepos, prefix, 0)
		if err != nil {
			return err
		}
		seen := map[digest.Digest]bool{}
		count := func(d digest.Digest) (int64, error) {
			if seen[d] {
				return 0, nil
			}
			seen[d] = true
			r, ok, err := getBlobRecord(tx, d)
			if err != nil || !ok || r.Deleting {
				return 0, err
			}
			return r.Size, nil
		}
		for _, repo := range repos {
			if !strings.HasPrefix(repo, prefix) {
				break // byte order: the namespace's repositories come first
			}
			ds, err := tx.SetRange(keyRepoBlobs(repo), "", 0)
			if err != nil {
				return err
			}
			for _, d := range ds {
				held, err := tx.SetLen(keyHolders(repo, digest.Digest(d)))
				if err != nil {
					return err
				}
				if held == 0 {
					continue
				}
				n, err := count(digest.Digest(d))
				if err != nil {
					return err
				}
				used += n
			}
		}
		for _, d := range more {
			n, err := count(d)
			if err != nil {
				return err
			}
			added += n
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("bytes stored under %s/: %w", namespace, err)
	}
	return used, added, nil
}
