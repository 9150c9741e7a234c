#!/usr/bin/env bash
# The Protocol Monitor's hooks must end in a tail call (monitor.c, "Unloading"): a task blocked in TCP's recvmsg on a
# native socket then has no frame of ours on its stack, and rmmod neither waits for it nor frees text it returns to.
# The compiler makes these sibling calls at -O2 without frame pointers (the Debian kernels' build); this checks the
# built module: each hook calls only __fentry__ and monitor_route (no indirect call), and its last instruction is an
# indirect jmp (`jmp *%reg`, or a jmp to a retpoline thunk; not the return thunk).
# Usage: check-tailcalls.sh fastivc.ko...
set -u
[ $# -ge 1 ] || { echo "usage: check-tailcalls.sh fastivc.ko..." >&2; exit 2; }
rc=0 passed=0 failed=0
for ko in "$@"; do
  [ -f "$ko" ] || { echo "check-tailcalls: no $ko" >&2; exit 2; }
  dis=$(objdump -dr --no-show-raw-insn "$ko") || exit 2
  for fn in monitor_sendmsg monitor_recvmsg monitor_sendpage; do
    body=$(awk -v f="<$fn>:" '$2 == f {p = 1; next} p && /^$/ {exit} p' <<< "$dis")
    [ -n "$body" ] || { echo "FAIL $ko $fn: not in it"; rc=1; failed=$((failed + 1)); continue; }
    # call targets from the relocations (R_X86_64_PLT32/PC32 lines follow each call)
    calls=$(awk '/\tcall/ {c = 1; next} c && /R_X86_64/ {sub(/-0x4$/, "", $3); print $3; c = 0; next} {c = 0}' <<< "$body" | sort -u | tr '\n' ' ')
    last=$(grep -P '^\s+[0-9a-f]+:\t' <<< "$body" | grep -v -P '\t(int3|nop|xchg|data16|cs nop)' | tail -1)
    # the jmp's target: an indirect-branch thunk (retpoline) or `jmp *%reg`, not the return thunk (`ret` with RETHUNK)
    target=$(awk -v l="$last" '$0 == l {n = 1; next} n {print $3; exit}' <<< "$body")
    bad=$(tr ' ' '\n' <<< "$calls" | grep -v -x -E '__fentry__|monitor_route|' || true)
    # an indirect call without retpolines has no relocation: any `call *` is a call of the operation
    grep -q -P '\tcall\s+\*' <<< "$body" && bad="$bad indirect"
    # the tail call: `jmp *%reg`, or a jmp to an indirect-branch thunk
    tail_ok=0
    if grep -q -P '\tjmp\s+\*' <<< "$last" || [[ $target == __x86_indirect_thunk_* ]]; then tail_ok=1; fi
    if [ -n "$bad" ] || [ $tail_ok -eq 0 ]; then
        echo "FAIL $ko $fn: calls [$calls], last instruction: ${last#*:}"; rc=1; failed=$((failed + 1))
    else
        echo "ok   $ko $fn: tail call (${last#*:	})"; passed=$((passed + 1))
    fi
  done
done
echo "check-tailcalls: $passed passed, $failed failed"
exit $rc
