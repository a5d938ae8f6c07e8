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

soak:
	go test -tags 'chaos handoff_crashpoints' -run Soak -count=1 -timeout 6h ./test/ -args -handoffs=1000
