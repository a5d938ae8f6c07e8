# The README's two commands: `go run ./cmd/handoff demo` and `make test`.

.PHONY: test demo build bench bench-full soak

test:
	scripts/test.sh

demo:
	go run ./cmd/handoff demo

build:
	go build -o bin/handoff ./cmd/handoff
	go build -o bin/kvd ./examples/kvd

bench:
	cd bench && go run . -out ../BENCHMARKS.md

bench-full:
	cd bench && go run . -full -out ../BENCHMARKS.md

# The long chaos soak (test/soak_test.go), without the race detector for speed;
# progress every 25 swaps; the figures go into RELIABILITY.md (the test runs in test/).
# Replay a failure with SEED=<the seed it printed>.
SEED ?= 0
soak:
	go test -v -tags 'chaos handoff_crashpoints' -run '^TestSoak$$' -count=1 -timeout 6h ./test/ -args -handoffs=1000 -seed=$(SEED) -report=../RELIABILITY.md
