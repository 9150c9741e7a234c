# What the packages installed in dom0, checked on the running system (the image builder installs them with
# `apt-get install ./X.deb`, as the README's "Install on a Xen host" tells a real host to):
#   packages-dom0      both dom0 packages installed at build/debs' versions; `fastivc` is the package's; the booted
#                      Xen is the packaged one and its DEM is up (`xl dmesg`); `fastivc status` answers
#   service-sync-dom0  fastivc-sync.service's own command lines (ExecCondition, then ExecStart with /etc/default/fastivc), run as systemd
#                      would run it, puts a removed domU address back, and stops cleanly on SIGTERM
# Sourced by dom0/run.sh (uses D2, DOMU_IP, need, fail, metrics from lib.sh and topology.sh).
PLAN+=(packages-dom0 service-sync-dom0)

SYNC_UNIT=/lib/systemd/system/fastivc-sync.service
SYNC_RESTORE_S=20        # the daemon's first pass, under TCG

scn_packages() {
    local p v ok=1
    for p in xen-hypervisor-4.17-fastivc-amd64 fastivc-tools; do
        v=$(dpkg-query -W -f='${db:Status-Status} ${Version}' "$p" 2>&1); echo "$p: $v"
        [ "${v%% *}" = installed ] || { fail "$p is not installed in dom0 ($v)"; return 1; }
    done
    [ "$(command -v fastivc)" = /usr/bin/fastivc ] && [ "$(command -v ivctop)" = /usr/bin/ivctop ] \
        || { fail "fastivc/ivctop on PATH are $(command -v fastivc) $(command -v ivctop), not the package's"; return 1; }
    local want_x; want_x=$(dpkg-query -W -f='${Version}' xen-hypervisor-4.17-fastivc-amd64 | cut -d+ -f1)
    local xv; xv=$(xl info | awk -F': ' '/^xen_version/ {print $2}')
    echo "xl info xen_version: $xv (package: $want_x)"
    [ "${xv%%-*}" = "$want_x" ] || [ "$xv" = "$want_x" ] || { fail "running Xen $xv is not the package's $want_x"; return 1; }
    xl dmesg | grep 'evtmgr: Domain Event Manager' || { fail "xl dmesg has no DEM line"; return 1; }
    fastivc status > "$OUT/status.txt" 2>&1 || ok=0
    cat "$OUT/status.txt"
    [ $ok = 1 ] || { fail "fastivc status exited non-zero"; return 1; }
    grep -q '^DEM .*ABI' "$OUT/status.txt" || { fail "fastivc status does not show the DEM"; return 1; }
    metrics "$(jq -cn --arg xen "$xv" --arg tools "$(dpkg-query -W -f='${Version}' fastivc-tools)" \
        --arg node "$(/usr/lib/fastivc/node --version)" '{xen_version: $xen, tools_version: $tools, node: $node}')"
}

scn_service_sync() {
    need domU2 || return 1
    [ -f "$SYNC_UNIT" ] || { fail "no $SYNC_UNIT"; return 1; }
    local exec cond id2 pid i rc
    exec=$(sed -n 's/^ExecStart=//p' "$SYNC_UNIT"); cond=$(sed -n 's/^ExecCondition=//p' "$SYNC_UNIT")
    echo "ExecCondition=$cond"; echo "ExecStart=$exec"
    # On this hypervisor (the DEM is there) the condition holds; on the stock Xen it would skip the unit.
    $cond || { fail "the unit's ExecCondition ($cond) fails on the DEM hypervisor: the service would never start"; return 1; }
    id2=$(xl domid domU2)
    fastivc map del "$D2" || { fail "cannot remove $D2 from the table first"; return 1; }
    # As systemd runs it: the environment file's variables, then the command split on blanks.
    ( set -a; . /etc/default/fastivc; set +a; eval "exec $exec" ) > "$OUT/service.log" 2>&1 &
    pid=$!
    i=0
    until [ "$(fastivc map list --json | jq -r --arg ip "$D2" '.[] | select(.addr == $ip) | .domid')" = "$id2" ]; do
        i=$((i + 1))
        if [ $i -gt $((SYNC_RESTORE_S * 2)) ] || ! kill -0 $pid 2>/dev/null; then
            cat "$OUT/service.log"; kill $pid 2>/dev/null; wait $pid
            fastivc map set "$D2" "$id2"
            fail "the service's command did not put $D2 -> dom $id2 back within $SYNC_RESTORE_S s"; return 1
        fi
        sleep 0.5
    done
    kill -TERM $pid
    i=0; while kill -0 $pid 2>/dev/null && [ $i -lt 20 ]; do sleep 0.5; i=$((i + 1)); done
    if kill -0 $pid 2>/dev/null; then kill -KILL $pid; wait $pid; cat "$OUT/service.log"; fail "the service did not stop on SIGTERM within 10 s"; return 1; fi
    wait $pid; rc=$?
    cat "$OUT/service.log"
    metrics "$(jq -cn --argjson rc "$rc" '{exit_status_on_sigterm: $rc}')"
    [ $rc -eq 0 ] || { fail "the service exited $rc on SIGTERM (systemd would count a failure)"; return 1; }
    grep -q "set $D2 -> dom $id2" "$OUT/service.log" || { fail "the service's log does not show setting $D2"; return 1; }
}

run_install_scenarios() {
    run_scenario packages-dom0 scn_packages
    run_scenario service-sync-dom0 scn_service_sync
}
