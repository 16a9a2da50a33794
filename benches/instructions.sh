#!/usr/bin/env bash
# Instructions per call for each `hot_path` id, counted by cachegrind, and the ratio to
# `add_authorization`. Unlike a timing, this figure does not move with the machine's load.
#
# Usage, from the workspace root: bash benches/instructions.sh
set -euo pipefail
command -v valgrind >/dev/null || { echo "needs valgrind (Debian package valgrind)"; exit 1; }

binary=$(cargo bench -p benches --bench hot_path_instructions --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "hot_path_instructions" and m.get("executable"):
        print(m["executable"])')
calls=200000

count() { # id calls -> instructions
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$binary" "$1" "$2" 2>&1 \
        | sed -n 's/.*I *refs: *//p' | tr -d ,
}

echo "| hot_path id | instructions per call | ratio to add_authorization |"
echo "|---|---:|---:|"
declare -A per_call
ids="noop add_authorization bearer_auth bearer_auth_with_retry naive_mutex naive_rwlock noop_absolute bearer_auth_absolute dpop dpop_proof"
for id in $ids; do
    # A proof is a signature, thousands of times the rest: fewer calls keep the run short.
    n=$calls
    case $id in dpop*) n=2000 ;; esac
    full=$(count "$id" "$n")
    setup=$(count "$id" 0)
    per_call[$id]=$(( (full - setup) / n ))
done
for id in $ids; do
    python3 -c "print(f'| $id | ${per_call[$id]} | {${per_call[$id]} / ${per_call[add_authorization]}:.3f}x |')"
done
echo
echo "DPoP, the layer's own work (what is not building the request or the proof):"
python3 -c "
bearer = ${per_call[bearer_auth_absolute]} - ${per_call[noop_absolute]}
dpop = ${per_call[dpop]} - ${per_call[dpop_proof]}
print(f'bearer_auth_absolute - noop_absolute = {bearer}; dpop - dpop_proof = {dpop}; ratio {dpop / bearer:.2f}x')
print(f'dpop / bearer_auth_absolute = {${per_call[dpop]} / ${per_call[bearer_auth_absolute]}:.1f}x; the proof is {${per_call[dpop_proof]} / ${per_call[dpop]}:.1%} of a DPoP call')
"
