# Xloud Image Service. `make run` serves on embedded defaults; `make test` installs what the
# tests need and runs them all. Both work on a fresh Debian machine with Go.
GO      ?= go
GOBIN   := $(shell $(GO) env GOPATH)/bin
BIN     := bin/xloud-image
export PATH := $(GOBIN):/usr/local/go/bin:$(PATH)

# Packages whose tests exercise concurrency run under the race detector.
RACE_PKGS := ./storage/... ./registry/... ./internal/... ./catalog/... ./auth

.PHONY: build run deps test lint unit fuzz conformance bench clean

build:
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/xloud-image

run: build
	./$(BIN) serve

deps:
	bash scripts/install-deps.sh

lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	for os in windows darwin freebsd; do GOOS=$$os GOARCH=amd64 $(GO) build ./... || exit 1; done
	staticcheck ./...

unit:
	$(GO) test -race -count=1 $(RACE_PKGS)
	$(GO) test -count=1 $$($(GO) list ./... | grep -v -e /storage -e /registry -e /internal -e /catalog -e '/auth$$')

fuzz:
	bash scripts/fuzz.sh

test: deps lint unit fuzz

conformance: deps
	$(GO) test -count=1 -v -run TestOCIConformance ./conformance

bench: deps
	bash scripts/bench.sh
	bash scripts/bench-signing.sh
	$(GO) test -run '^$$' -bench 'PullManifest' -benchtime=20000x ./auth/
	$(GO) test -run '^$$' -bench 'InspectOverhead' -benchtime=1x ./diskformat/
	$(GO) test -run '^$$' -bench 'ListPage' -benchtime=200x ./catalog/
	$(GO) test -run '^$$' -bench 'DashboardImagesPage' -benchtime=200x ./catalog/
	$(GO) test -run '^$$' -bench 'MetadefShowVsImageShow' -benchtime=2000x ./imageapi/
	$(GO) test -run '^$$' -bench . -benchtime=2s ./internal/sha256twin/
	bash scripts/bootbench.sh

clean:
	rm -rf bin
