#!/usr/bin/env bash
# Lab self-test: boot the lab with domU2's init missing (fault injection through dom0's command line). The run must
# end by itself within its timeouts, fail every scenario that needs domU2 with the reason in the report and domU2's
# console log kept, and still pass the scenarios that need only domU1. Called by build.sh, which exports lab_run.
set -uo pipefail
B=${B:?}
out="$B/lab/fault"
rm -rf "$out"; mkdir -p "$out"
t0=$SECONDS
lab_run --fault domU2-noboot --report "$out/report.json" --logs "$out/logs" --timeout-total 900 >"$out/runner.out" 2>&1
rc=$?
secs=$((SECONDS - t0))
r="$out/report.json"
fails=0
check() { # check DESCRIPTION JQ_EXPR
    if jq -e "$2" "$r" >/dev/null 2>&1; then echo "  ok   $1"; else echo "  FAIL $1"; fails=$((fails + 1)); fi
}
echo "fault run: runner exit $rc after ${secs}s"
[ $rc -ne 0 ] && echo "  ok   runner exits non-zero" || { echo "  FAIL runner exited 0"; fails=$((fails + 1)); }
[ -f "$r" ] || { echo "  FAIL no report written"; exit 1; }
check "report fails overall" '.pass == false'
check "boot scenario fails naming domU2" '.scenarios[] | select(.name == "boot-xen-dom0-domUs") | .pass == false and (.reason | test("domU2"))'
check "domU-domU bulk fails because domU2 is not up" '.scenarios[] | select(.name == "bulk-64KiB-domU-domU-tcp") | .pass == false and (.reason | test("domU2 (died|did not come up)"))'
check "domU1-only scenario still passes" '.scenarios[] | select(.name == "bulk-64KiB-domU-loopback-tcp") | .pass == true'
check "every planned scenario is reported" '[.scenarios[].name] | length >= 11'
if grep -Eq 'Kernel panic|fault-injected-missing-init' "$out/logs/console-domU2.log" 2>/dev/null; then echo "  ok   domU2 console log kept"
else echo "  FAIL domU2's console log missing"; fails=$((fails + 1)); fi
[ $fails -eq 0 ] && echo "fault self-test: 1 passed, 0 failed" || echo "fault self-test: 0 passed, 1 failed ($fails checks)"
[ $fails -eq 0 ]
