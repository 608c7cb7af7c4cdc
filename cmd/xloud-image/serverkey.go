package main

import (
	"fmt"
	"net/http"

	"github.com/xloud/xloud-image/signing"
)

// serverKeyPath is where both ports serve the server's public key, with which anyone checks
// the server's disk-inspection attestations (`cosign verify-attestation --key`).
const serverKeyPath = "/v2/xloud/signing/server-key"

// serverKeyHandler serves the current server public key as PEM, its id in X-Xloud-Key-Id.
// It is public: no credentials needed.
func serverKeyHandler(k *signing.ServerKey) http.Handler {
	pem := k.PublicKeyPEM()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Header().Set("Content-Length", fmt.Sprint(len(pem)))
		w.Header().Set("X-Xloud-Key-Id", k.ID())
		if r.Method != http.MethodHead {
			w.Write(pem)
		}
	})
}
