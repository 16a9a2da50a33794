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
for id in noop add_authorization bearer_auth bearer_auth_with_retry naive_mutex naive_rwlock; do
    full=$(count "$id" "$calls")
    setup=$(count "$id" 0)
    per_call[$id]=$(( (full - setup) / calls ))
done
for id in noop add_authorization bearer_auth bearer_auth_with_retry naive_mutex naive_rwlock; do
    python3 -c "print(f'| $id | ${per_call[$id]} | {${per_call[$id]} / ${per_call[add_authorization]}:.3f}x |')"
done
