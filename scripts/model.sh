#!/usr/bin/env bash
# Model check of the swap protocol: model/handoff.pml, explained in
# model/README.md. Installs nothing: it needs spin and gcc (Debian packages
# spin and gcc; scripts/test.sh installs them when run as root).
#
#   scripts/model.sh              the correct model, the mutants and the gaps
#   scripts/model.sh --correct    only the correct model
#   scripts/model.sh --mutants    only the mutants: each must give a counterexample
#   scripts/model.sh --gaps       only the supervisor-recovery checks and mutants
#   scripts/model.sh --keep       keep the work directory (trails) and print it
#
# Exit status: 0 when the correct model has no error and every mutant gives
# the counterexample it is expected to give; 1 otherwise; 2 on bad usage.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=model/handoff.pml
JOBS=${MODEL_JOBS:-2}

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }

run_correct=1 run_mutants=1 run_gaps=1 keep=0
for arg in "$@"; do
  case "$arg" in
    --correct) run_correct=1 run_mutants=0 run_gaps=0 ;;
    --mutants) run_correct=0 run_mutants=1 run_gaps=0 ;;
    --gaps) run_correct=0 run_mutants=0 run_gaps=1 ;;
    --keep) keep=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

for tool in spin gcc; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "skipping model check: install the Debian package $tool"
    exit 0
  fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/handoff-model.XXXXXX")
if [ "$keep" = 1 ]; then
  echo "work directory: $work"
else
  trap 'rm -rf "$work"' EXIT
fi

# What each tag on an assertion line of the model stands for.
describe() {
  case "$1" in
    INV1) echo "inv 1: only the lock holder writes" ;;
    INV2) echo "inv 2: lock released only after a successful seal" ;;
    INV3) echo "inv 3: no read or write from a state missing an acked write" ;;
    INV4) echo "inv 4: listening sockets never all closed (one crash)" ;;
    INV5) echo "inv 5: N writes only holding the lock, after Commit" ;;
    INV7) echo "inv 7: no old binary serves after the new one acked a write" ;;
    LIVE) echo "inv 7: stuck without exactly one serving incumbent" ;;
    converge) echo "liveness: <>[] exactly one serves (acceptance cycle)" ;;
    SUP1) echo "supervisor binds new listeners while a daemon holds the old" ;;
    SUP2) echo "supervisor stuck not watching the serving incumbent" ;;
    supervised) echo "liveness: <>[] supervisor watches the one serving (cycle)" ;;
    END) echo "invalid end state (a process stuck mid-protocol)" ;;
    *) echo "$1" ;;
  esac
}

# check ID KIND EXPECT [spin -D options...]
#   KIND: safety1  one crash, assertions and end states
#         safety2  two crashes, assertions only (-E)
#         mutant   one crash, assertions only (-E)
#         live     one crash, <>[] converge, weak fairness (-a -f)
#         live-A   the same with assertions off (-A), to reach the cycle
#         sup      one crash, <>[] supervised, weak fairness, assertions off
#   EXPECT: "pass", "gap", or the tags (a|b) of the counterexample expected.
# Writes $work/ID/result: "ok STATES" | "error TAG DEPTH" | "broken WHY".
check() {
  local id=$1 kind=$2 expect=$3
  shift 3
  local d="$work/$id"
  mkdir -p "$d"
  cp "$MODEL" "$d/handoff.pml"
  echo "$kind $expect $*" >"$d/spec"
  local t0=$SECONDS
  (
    cd "$d"
    local defs=("$@") cflags=(-O0 -DSAFETY -DNOCLAIM) pflags=(-m100000 -w22 -n) claim=converge
    case "$kind" in
      safety1 | mutant) defs+=(-DMAXCRASH=1) ;;
      safety2) defs+=(-DMAXCRASH=2) ;;
      live | live-A | sup) defs+=(-DMAXCRASH=1) cflags=(-O1 -DNFAIR=3) pflags+=(-a -f) ;;
    esac
    case "$kind" in
      safety2 | mutant) pflags+=(-E) ;;
      live-A) pflags+=(-A) ;;
      sup) pflags+=(-A -N supervised) claim=supervised ;;
    esac
    if ! spin "${defs[@]}" -a handoff.pml >spin.log 2>&1; then
      echo "broken spin -a failed: $(head -c 300 spin.log)" >result
      exit 0
    fi
    if ! gcc "${cflags[@]}" -w -o pan pan.c >gcc.log 2>&1; then
      echo "broken gcc failed: $(head -c 300 gcc.log)" >result
      exit 0
    fi
    ./pan "${pflags[@]}" >pan.log 2>&1 || true
    if grep -q "max search depth too small" pan.log; then
      echo "broken search depth limit reached" >result
    elif ! grep -q "errors:" pan.log; then
      echo "broken pan did not finish: $(tail -c 300 pan.log)" >result
    elif grep -q "errors: 0" pan.log; then
      echo "ok $(awk '/states, stored/ {print $1; exit}' pan.log)" >result
    else
      local first depth tag=unknown line
      first=$(grep -m1 '^pan:1:' pan.log || true)
      depth=$(sed -n 's/.*at depth \([0-9]*\).*/\1/p' <<<"$first")
      case "$first" in
        *"acceptance cycle"*) tag=$claim ;;
        *"invalid end state"*) tag=END ;;
        *"assertion violated"*)
          line=$(spin "${defs[@]}" -t handoff.pml 2>&1 | sed -n 's/^spin: handoff.pml:\([0-9]*\), Error: assertion violated.*/\1/p' | head -n1)
          if [ -n "$line" ]; then
            tag=$(sed -n "${line}p" handoff.pml | grep -o '/\* [A-Z0-9]* \*/' | tr -d '/* ' || true)
          fi
          ;;
      esac
      echo "error ${tag:-unknown} ${depth:-?}" >result
    fi
  )
  echo $((SECONDS - t0)) >"$d/secs"
}

ids=()
schedule() {
  ids+=("$1")
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  check "$@" &
}

if [ "$run_correct" = 1 ]; then
  schedule live live pass
  schedule safety1 safety1 pass
  schedule safety2 safety2 pass
fi
if [ "$run_mutants" = 1 ]; then
  schedule M-seal-before-unlock mutant INV2 -DBREAK_SEAL_BEFORE_UNLOCK
  schedule M-seal-before-unlock+no-inv2 mutant 'INV1|LIVE' -DBREAK_SEAL_BEFORE_UNLOCK -DNO_INV2_CHECK
  schedule M-answer-after-seal mutant INV3 -DBREAK_ANSWER_AFTER_SEAL
  schedule M-journal-before-commit mutant INV4 -DBREAK_JOURNAL_BEFORE_COMMIT
  schedule M-bind-before-write mutant INV7 -DBREAK_BIND_BEFORE_WRITE
  schedule M-flock-recheck mutant INV7 -DBREAK_FLOCK_RECHECK
  schedule M-flock-recheck/liveness live-A converge -DBREAK_FLOCK_RECHECK
  schedule M-no-timer mutant INV4 -DBREAK_TIMER
  schedule M-orphan-kill mutant LIVE -DBREAK_ORPHAN_KILL
  schedule M-write-before-commit mutant INV5 -DBREAK_WRITE_BEFORE_COMMIT
fi
if [ "$run_gaps" = 1 ]; then
  # The supervisor's recovery as implemented (FIX_SUPERVISOR: wait for the
  # lock holder to answer on the path before adopting; adopt before a
  # cold start after a crash) holds; without it the model finds the gaps.
  schedule supervision safety1 pass -DCHECK_SUPERVISION -DFIX_SUPERVISOR
  schedule supervision/liveness sup pass -DCHECK_SUPERVISION -DFIX_SUPERVISOR
  schedule M-supervisor-recovery mutant gap -DCHECK_SUPERVISION
  schedule M-supervisor-recovery/liveness sup gap -DCHECK_SUPERVISION
fi
wait || true

# Report: one line per check.
failed=0
printf '%-32s %-9s %-6s %-5s %s\n' "check" "result" "depth" "secs" "property"
for id in "${ids[@]}"; do
  read -r kind expect _ <"$work/$id/spec"
  read -r status tag depth <"$work/$id/result" || status=broken
  secs=$(cat "$work/$id/secs" 2>/dev/null || echo "?")
  verdict=ok
  case "$status:$expect" in
    ok:pass) line=$(printf '%-32s %-9s %-6s %-5s %s' "$id" "holds" "-" "$secs" "no error ($tag states)") ;;
    error:pass) verdict=FAIL line=$(printf '%-32s %-9s %-6s %-5s %s' "$id" "VIOLATED" "$depth" "$secs" "$(describe "$tag")") ;;
    ok:gap) verdict=FAIL line=$(printf '%-32s %-9s %-6s %-5s %s' "$id" "NO CEX" "-" "$secs" "expected the supervisor-recovery counterexample") ;;
    error:gap) line=$(printf '%-32s %-9s %-6s %-5s %s' "$id" "cex" "$depth" "$secs" "$(describe "$tag")") ;;
    ok:*) verdict=FAIL line=$(printf '%-32s %-9s %-6s %-5s %s' "$id" "NO CEX" "-" "$secs" "expected: $(describe "$expect")") ;;
    error:*)
      if [[ "|$expect|" == *"|$tag|"* ]]; then
        line=$(printf '%-32s %-9s %-6s %-5s %s' "$id" "cex" "$depth" "$secs" "$(describe "$tag")")
      else
        verdict=FAIL line=$(printf '%-32s %-9s %-6s %-5s %s' "$id" "OTHER CEX" "$depth" "$secs" "$(describe "$tag") (expected $expect)")
      fi
      ;;
    *) verdict=FAIL line=$(printf '%-32s %-9s %-6s %-5s %s' "$id" "BROKEN" "-" "$secs" "$(cut -d' ' -f2- "$work/$id/result" 2>/dev/null)") ;;
  esac
  echo "$line"
  if [ "$verdict" = FAIL ]; then failed=1; fi
done

if [ "$failed" = 1 ]; then
  echo "model check FAILED (rerun with --keep to inspect the trails: spin -t -p handoff.pml in the check's directory, with the same -D options)"
  exit 1
fi
echo "model check passed"
