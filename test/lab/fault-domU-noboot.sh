#!/usr/bin/env bash
# Lab self-test: boot the lab with domU2's init missing (fault injection through dom0's command line). The run must
# end by itself within its timeouts, fail every scenario that needs domU2 with the reason in the report and domU2's
# console log kept, and still pass the scenarios that need only domU1. The same boot uses Xen's XSM SILO policy, so
# the DEM's SILO hook is checked for real (scenario dem-silo). Called by build.sh, which exports lab_run.
set -uo pipefail
B=${B:?}
out="$B/lab/fault"
rm -rf "$out"; mkdir -p "$out"
t0=$SECONDS
# Only the scenarios the checks below look at: the rest of the plan would only fail at once for want of domU2, or
# repeat the main run's domU1 scenarios, for minutes.
SCENARIOS=(boot-xen-dom0-domUs bulk-64KiB-domU-domU-tcp bulk-64KiB-domU-loopback-tcp dem-map-dom0 dem-dead-domain dem-silo)
only="^($(IFS='|'; echo "${SCENARIOS[*]}"))\$"
lab_run --fault domU2-noboot --xen-cmdline-extra xsm=silo --dom0-cmdline-extra "fastivc.only=$only" \
    --report "$out/report.json" --logs "$out/logs" --timeout-total 900 >"$out/runner.out" 2>&1
rc=$?
secs=$((SECONDS - t0))
r="$out/report.json"
fails=0 oks=0
ok() { echo "  ok   $1"; oks=$((oks + 1)); }
bad() { echo "  FAIL $1"; fails=$((fails + 1)); }
check() { # check DESCRIPTION JQ_EXPR
    if jq -e "$2" "$r" >/dev/null 2>&1; then ok "$1"; else bad "$1"; fi
}
echo "fault run: runner exit $rc after ${secs}s"
if [ $rc -ne 0 ]; then ok "runner exits non-zero"; else bad "runner exited 0"; fi
[ -f "$r" ] || { bad "no report written"; echo "fault self-test: $oks passed, $fails failed"; exit 1; }
check "report fails overall" '.pass == false'
check "boot scenario fails naming domU2" '.scenarios[] | select(.name == "boot-xen-dom0-domUs") | .pass == false and (.reason | test("domU2"))'
check "domU-domU bulk fails because domU2 is not up" '.scenarios[] | select(.name == "bulk-64KiB-domU-domU-tcp") | .pass == false and (.reason | test("domU2 (died|did not come up)"))'
check "domU1-only scenario still passes" '.scenarios[] | select(.name == "bulk-64KiB-domU-loopback-tcp") | .pass == true'
planned=$(printf '%s\n' "${SCENARIOS[@]}" | jq -R . | jq -sc 'sort')
check "every planned scenario is reported, and no other" "[.scenarios[].name] | sort == $planned"
check "under xsm=silo a domU's event towards another domU is refused, towards dom0 allowed" '.scenarios[] | select(.name == "dem-silo") | .pass == true'
check "the DEM purges a dying domain under SILO as well" '.scenarios[] | select(.name == "dem-dead-domain") | .pass == true'
if grep -Eq 'Kernel panic|fault-injected-missing-init' "$out/logs/console-domU2.log" 2>/dev/null; then ok "domU2 console log kept"
else bad "domU2's console log missing"; fi
echo "fault self-test: $oks passed, $fails failed"
[ $fails -eq 0 ]
