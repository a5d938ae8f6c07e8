#!/usr/bin/env bash
# The whole test run: formatting, vet, staticcheck, every test under the race
# detector, the crash-point tests, short fuzzing and the protocol model.
# On a fresh machine, run as root, it first installs the Debian packages that
# some tests use (redis-tools for a real RESP client, spin for the model);
# elsewhere those tests skip and say which package they need.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME=${FUZZTIME:-10s}

install_packages() {
  local missing=()
  command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
  command -v spin >/dev/null 2>&1 || missing+=(spin)
  command -v gcc >/dev/null 2>&1 || missing+=(gcc)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: not root (or no apt-get): tests needing ${missing[*]} will skip"
    return 0
  fi
  echo "== installing Debian packages: ${missing[*]}"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >/dev/null; then
    echo "warning: could not install ${missing[*]}; the tests that need them will skip"
  fi
}

step() { printf '\n== %s\n' "$*"; }

install_packages

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "not gofmt-ed: $unformatted"; exit 1; fi

step "go vet"
go vet ./...
go vet -tags handoff_crashpoints ./...
go vet -tags "chaos handoff_crashpoints" ./test/

step "staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

step "unit, integration and end-to-end tests (race detector)"
go test -race -count=1 -timeout 20m ./...

step "crash-point tests (build tag handoff_crashpoints, race detector)"
go test -race -count=1 -timeout 20m -tags handoff_crashpoints ./internal/crashpoint/ ./test/...

step "chaos soak, short (build tags chaos handoff_crashpoints, race detector, 50 swaps)"
go test -race -count=1 -timeout 20m -tags 'chaos handoff_crashpoints' -run '^TestSoak$' ./test/ -args -handoffs=50

step "fuzzing, $FUZZTIME per target"
go test -run '^$' -fuzz '^FuzzReadFrame$' -fuzztime "$FUZZTIME" ./internal/wire/
go test -run '^$' -fuzz '^FuzzDecode$' -fuzztime "$FUZZTIME" ./internal/wire/

if [ -x scripts/model.sh ]; then
  step "protocol model (spin)"
  scripts/model.sh
fi

echo
echo "all checks passed"
