# Loom's commands for a fresh machine: `make run` and `make test`.

GO ?= go
DARWIN := CGO_ENABLED=0 GOOS=darwin GOARCH=arm64

.PHONY: run test msl-deps vet test-go darwin bench bench-peers

# The main job on the CPU backend, with what the repository ships.
run:
	$(GO) run ./cmd/loom generate

test: msl-deps vet test-go darwin

# g++ checks the Metal kernels as C++ on Linux; install it if missing.
msl-deps:
	bash scripts/install-msl-check.sh

vet:
	$(GO) vet ./...

# The race detector slows the reliability runs to 300 steps and 300
# requests; the full 10,000 of each, with their checks that memory stays
# flat, run without it.
test-go:
	$(GO) test -race -timeout 20m ./...
	$(GO) test -run '^TestManyDecodeSteps$$' ./model
	$(GO) test -run '^TestManyRequests$$' ./serve -serve.reliability

# The darwin/arm64 build of every package, its vet, and a compiled (not run)
# test binary for every package.
darwin:
	$(DARWIN) $(GO) build ./...
	$(DARWIN) $(GO) vet ./...
	$(DARWIN) $(GO) test -c -o /dev/null ./... 

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...

# Loom's matmul beside gonum's blas32.Gemm, in turns, in one run (the peer
# lives in its own module so the main module depends on nothing else).
bench-peers:
	cd bench/peers/gonum && $(GO) run .
