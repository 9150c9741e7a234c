# The Domain Event Manager scenarios: dom0 fills the IP table with `fastivc map` (the same path a real host's
# toolstack side uses), then dem-probe calls every DEM operation for real from dom0 and from the domUs: good calls,
# the error cases with their exact errno, events between two domUs (one VIRQ per burst, one fetch returns all),
# a domain that dies with state in the DEM, and a clean `xl dmesg`.

# In the domUs dem-probe issues DEM hypercalls through the lab's dem_hcall.ko (privcmd refuses them in a domU).
DOMU_PROBE="DEM_PROBE_PRIVCMD=/dev/fastivc-dem-hcall dem-probe"
DEM_SPARE_IP=192.0.2.13      # the address given to a short-lived paused domain
DEM_NOBODY_IP=192.0.2.250    # an address no domain owns

PLAN+=(dem-map-dom0 dem-conformance-dom0 dem-conformance-domU dem-events-domU-domU dem-dead-domain dem-xen-log)
# Booted with xsm=silo (the lab's fault self-test does), the SILO hook is checked too.
XEN_CMDLINE=$(xl info | sed -n 's/^xen_commandline *: //p')
case " $XEN_CMDLINE " in *" xsm=silo "*) DEM_SILO=1; PLAN+=(dem-silo) ;; *) DEM_SILO= ;; esac

# The lab's toolstack step: every running domain's address into the DEM's table, through our CLI.
dem_fill_table() {
    fastivc map set "$DOM0_IP" 0 || return 1
    local d id
    for d in $DOMU_NAMES; do
        id=$(xl domid "$d" 2>/dev/null) || continue
        fastivc map set "${DOMU_IP[$d]}" "$id" || return 1
    done
}

scn_dem_map() {
    cat "$OUT/map-fill.log"
    [ "$DEM_FILL_RC" = 0 ] || { fail "fastivc map set failed at bring-up (exit $DEM_FILL_RC)"; return 1; }
    fastivc map list
    fastivc map list --json > "$OUT/map.json" || { fail "fastivc map list failed"; return 1; }
    cat "$OUT/map.json"
    local d id want=1
    [ "$(jq -r --arg ip "$DOM0_IP" '.[] | select(.addr == $ip) | .domid' "$OUT/map.json")" = 0 ] \
        || { fail "dom0's address is not mapped to domain 0"; return 1; }
    for d in $DOMU_NAMES; do
        [ -n "${DOMU_UP[$d]:-}" ] || continue
        id=$(xl domid "$d"); want=$((want + 1))
        [ "$(jq -r --arg ip "${DOMU_IP[$d]}" '.[] | select(.addr == $ip) | .domid' "$OUT/map.json")" = "$id" ] \
            || { fail "${DOMU_IP[$d]} is not mapped to $d (domain $id)"; return 1; }
    done
    metrics "$(jq -c --argjson want $want '{ip_entries: length, expected: $want}' "$OUT/map.json")"
    jq -e --argjson want $want 'length == $want' "$OUT/map.json" >/dev/null || { fail "table has other entries"; return 1; }
}

# selftest_result FILE RC: a dem-probe selftest line -> metrics, and pass iff every check passed.
selftest_result() {
    local f=$1 rc=$2
    jq -e '.checks | type == "array"' "$f" >/dev/null 2>&1 \
        || { cat "$f"; fail "dem-probe selftest gave no result (exit $rc): $(head -c 200 "$f")"; return 1; }
    jq -r '.checks[] | "\(if .pass then "ok  " else "FAIL" end) \(.name) (expected \(.expected), got \(.got))"' "$f"
    metrics "$(jq -c '{checks_passed: .passed, checks_failed: .failed}' "$f")"
    [ "$rc" -eq 0 ] && jq -e '.failed == 0 and .passed > 0' "$f" >/dev/null \
        || { fail "$(jq -r '.failed' "$f") DEM check(s) failed: $(jq -r '[.checks[] | select(.pass | not) | .name] | join("; ")' "$f" | cut -c1-300)"; return 1; }
}

scn_dem_conformance_dom0() {
    need domU1 domU2 || return 1
    dem-probe selftest --privileged --domid 0 --self "$DOM0_IP" --peer "$D1" --unowned "$D2" > "$OUT/st0.json"
    selftest_result "$OUT/st0.json" $?
}

scn_dem_conformance_domU() {
    need domU1 domU2 || return 1
    agent "$D1" $DOMU_PROBE selftest --domid "$(xl domid domU1)" --self "$D1" --peer "$D2" --unowned "$D2" \
        > "$OUT/st1.raw"
    local rc=$?
    grep '^{' "$OUT/st1.raw" | tail -1 > "$OUT/st1.json"
    [ -s "$OUT/st1.json" ] || cp "$OUT/st1.raw" "$OUT/st1.json"
    selftest_result "$OUT/st1.json" $rc
}

# watch_burst NAME EVENTS...: domU2 watches VIRQ_EVTMGR without fetching while domU1 raises a burst, then fetches
# once. One interrupt for the whole burst; one fetch returns every bit.
watch_burst() {
    local tag=$1 n=$2; shift 2
    ( agent "$D2" $DOMU_PROBE watch --seconds 8 > "$OUT/watch-$tag.raw" 2>&1 ) &
    local wpid=$! i=0
    while ! grep -q '"ready":true' "$OUT/watch-$tag.raw" 2>/dev/null; do
        i=$((i + 1))
        [ $i -lt 75 ] || { kill $wpid 2>/dev/null; cat "$OUT/watch-$tag.raw"; fail "watch in domU2 never became ready: $(head -c 200 "$OUT/watch-$tag.raw")"; return 1; }
        sleep 0.2
    done
    agent "$D2" "grep -i evtchn /proc/interrupts" > "$OUT/irq-before-$tag.txt"
    agent "$D1" $DOMU_PROBE raise --src "$D1:40001" --dst "$D2:40002" --events send_data --repeat "$n" \
        > "$OUT/raise-$tag.json" || { cat "$OUT/raise-$tag.json"; fail "raise from domU1 failed"; return 1; }
    agent "$D1" $DOMU_PROBE raise --src "$D1:40001" --dst "$D2:40002" --events create --tunnel 4,4096,77 \
        >> "$OUT/raise-$tag.json" || { cat "$OUT/raise-$tag.json"; fail "raise create from domU1 failed"; return 1; }
    sleep 1
    agent "$D2" "grep -i evtchn /proc/interrupts" > "$OUT/irq-after-$tag.txt"   # while the watch still runs
    wait $wpid
    echo "domU2's event-channel interrupts, before and after the burst:"
    cat "$OUT/irq-before-$tag.txt" "$OUT/irq-after-$tag.txt"
    grep '"op":"watch"' "$OUT/watch-$tag.raw" | tail -1 > "$OUT/watch-$tag.json"
    agent "$D2" $DOMU_PROBE fetch > "$OUT/fetch-$tag.json"
    cat "$OUT/raise-$tag.json" "$OUT/watch-$tag.json" "$OUT/fetch-$tag.json"
}

scn_dem_events() {
    need domU1 domU2 || return 1
    local id1 m1 m2
    id1=$(xl domid domU1)
    watch_burst a 20 || return 1
    watch_burst b 5 || return 1
    m1=$(jq -c '.virqs' "$OUT/watch-a.json"); m2=$(jq -c '.virqs' "$OUT/watch-b.json")
    metrics "$(jq -cn --argjson a "${m1:-null}" --argjson b "${m2:-null}" \
        --slurpfile f "$OUT/fetch-a.json" '{virqs_burst1: $a, virqs_burst2: $b, raises_burst1: 21, raises_burst2: 6,
          fetched_records: ($f[0].nr // null), fetch_more: ($f[0].more // null)}')"
    [ "$m1" = 1 ] || { fail "burst of 21 raises gave $m1 VIRQs, expected exactly 1"; return 1; }
    [ "$m2" = 1 ] || { fail "after draining, the next burst gave $m2 VIRQs, expected exactly 1"; return 1; }
    local f
    for f in "$OUT/fetch-a.json" "$OUT/fetch-b.json"; do
        jq -e --arg src "$D2:40002" --arg dst "$D1:40001" --argjson peer "$id1" '
            .nr == 1 and .more == 0 and (.events[0] | .src == $src and .dst == $dst and .peer == $peer
            and (.events | sort) == ["create", "send_data"] and .tunnel.channels == 4 and .tunnel.size == 4096
            and .tunnel.grefs[0] == 77)' "$f" >/dev/null \
            || { fail "one fetch did not return exactly the raised bits and tunnel: $(cat "$f")"; return 1; }
    done
    agent "$D2" $DOMU_PROBE release --src "$D2:40002" --dst "$D1:40001" || { fail "release failed"; return 1; }
}

scn_dem_dead_domain() {
    need domU1 || return 1
    local id rc src=$D1 raise
    # The raiser is domU1; under SILO (no events between two domUs) it is dom0.
    if [ -n "$DEM_SILO" ]; then src=$DOM0_IP; raise() { dem-probe raise "$@"; }
    else raise() { agent "$D1" $DOMU_PROBE raise "$@"; }; fi
    # A paused domain: it exists and owns an address, but never runs.
    sed -e 's/^name = .*/name = "domU3"/' -e "s/^vif = .*/vif = []/" /tmp/domU1.cfg > /tmp/domU3.cfg
    xl create -p /tmp/domU3.cfg > "$OUT/xl-create-domU3.log" 2>&1 || { cat "$OUT/xl-create-domU3.log"; fail "xl create -p failed"; return 1; }
    id=$(xl domid domU3)
    fastivc map set "$DEM_SPARE_IP" "$id" || { xl destroy domU3; fail "map set for domU3 failed"; return 1; }
    raise --src "$src:40011" --dst "$DEM_SPARE_IP:40012" --events create,send_data --tunnel 2,8192,5 --repeat 3 \
        || { xl destroy domU3; fail "raise towards the live domU3 failed"; return 1; }
    dem-probe query > "$OUT/q-before.json"
    jq -e --argjson id "$id" '[.records[] | select(.owner == $id)] | length == 1' "$OUT/q-before.json" >/dev/null \
        || { xl destroy domU3; fail "no record owned by domU3 after the raise"; return 1; }
    xl destroy domU3
    sleep 1
    dem-probe query > "$OUT/q-after.json"; cat "$OUT/q-after.json"
    fastivc map list --json > "$OUT/map-after.json"
    jq -e --argjson id "$id" '[.records[] | select(.owner == $id or .raiser == $id)] | length == 0' "$OUT/q-after.json" \
        >/dev/null || { fail "records of the dead domain $id remain"; return 1; }
    jq -e --arg ip "$DEM_SPARE_IP" '[.[] | select(.addr == $ip)] | length == 0' "$OUT/map-after.json" >/dev/null \
        || { fail "the dead domain's address is still in the table"; return 1; }
    raise --src "$src:40011" --dst "$DEM_SPARE_IP:40012" --events send_data > "$OUT/r-dead.raw"
    rc=$?; cat "$OUT/r-dead.raw"
    grep '^{' "$OUT/r-dead.raw" | tail -1 > "$OUT/r-dead.json"   # the agent merges dem-probe's stderr line in
    metrics "$(jq -c --argjson id "$id" --arg src "$src" '{dead_domid: $id, raiser: $src,
        errno_after_death: (.errno // "none")}' "$OUT/r-dead.json")"
    [ $rc -ne 0 ] && jq -e '.errno == "ENOENT"' "$OUT/r-dead.json" >/dev/null \
        || { fail "a raise towards the dead domain's address did not fail with ENOENT"; return 1; }
}

scn_dem_xen_log() {
    xl dmesg > "$OUT/xl-dmesg-dem.txt"
    grep -i 'evtmgr' "$OUT/xl-dmesg-dem.txt"
    local enabled crash
    enabled=$(grep -c 'evtmgr: .*enabled' "$OUT/xl-dmesg-dem.txt")
    crash=$(grep -Ec 'Xen BUG|Assertion .* failed|FATAL|Panic on CPU|Xen call trace' "$OUT/xl-dmesg-dem.txt")
    metrics "$(jq -cn --argjson e "$enabled" --argjson c "$crash" '{enabled_lines: $e, crash_lines: $c}')"
    [ "$enabled" -ge 1 ] || { fail "xl dmesg does not say the DEM is enabled"; return 1; }
    [ "$crash" -eq 0 ] || { fail "xl dmesg shows a hypervisor crash or assertion"; return 1; }
}

# Under XSM SILO a domU may raise events towards dom0 but not towards another domU (argo's rule), and ip_lookup tells
# it only the owners it may raise towards: another domU's address answers as an unknown one (no co-residency oracle).
scn_dem_silo() {
    need domU1 || return 1
    local id rc1 rc2
    sed -e 's/^name = .*/name = "domU-silo"/' -e "s/^vif = .*/vif = []/" /tmp/domU1.cfg > /tmp/domU-silo.cfg
    xl create -p /tmp/domU-silo.cfg > "$OUT/xl-create-silo.log" 2>&1 || { cat "$OUT/xl-create-silo.log"; fail "xl create -p failed"; return 1; }
    id=$(xl domid domU-silo)
    fastivc map set 192.0.2.14 "$id" || { xl destroy domU-silo; fail "map set failed"; return 1; }
    agent "$D1" $DOMU_PROBE raise --src "$D1:40021" --dst "192.0.2.14:40022" --events send_data > "$OUT/silo-u.raw"
    rc1=$?; cat "$OUT/silo-u.raw"
    agent "$D1" $DOMU_PROBE raise --src "$D1:40021" --dst "$DOM0_IP:40023" --events send_data > "$OUT/silo-0.raw"
    rc2=$?; cat "$OUT/silo-0.raw"
    agent "$D1" $DOMU_PROBE lookup 192.0.2.14 > "$OUT/silo-lu.raw"; cat "$OUT/silo-lu.raw"
    agent "$D1" $DOMU_PROBE lookup "$DOM0_IP" > "$OUT/silo-l0.raw"; cat "$OUT/silo-l0.raw"
    dem-probe lookup 192.0.2.14 > "$OUT/silo-ld.raw"; cat "$OUT/silo-ld.raw"
    dem-probe fetch > /dev/null        # dom0 takes the event it was sent, leaving nothing pending
    dem-probe release --src "$DOM0_IP:40023" --dst "$D1:40021" > /dev/null
    xl destroy domU-silo
    local e1 e2
    e1=$(grep '^{' "$OUT/silo-u.raw" | tail -1 | jq -r '.errno // "ok"')
    e2=$(grep '^{' "$OUT/silo-0.raw" | tail -1 | jq -r '.errno // "ok"')
    local lu l0 ld
    lu=$(grep '^{' "$OUT/silo-lu.raw" | tail -1 | jq -r '.domid // "none"')
    l0=$(grep '^{' "$OUT/silo-l0.raw" | tail -1 | jq -r '.domid // "none"')
    ld=$(grep '^{' "$OUT/silo-ld.raw" | tail -1 | jq -r '.domid // "none"')
    metrics "$(jq -cn --arg a "$e1" --arg b "$e2" --arg c "$lu" --arg d "$l0" --arg e "$ld" \
        '{domU_to_domU: $a, domU_to_dom0: $b, domU_lookup_domU: $c, domU_lookup_dom0: $d, dom0_lookup_domU: $e}')"
    [ $rc1 -ne 0 ] && [ "$e1" = EPERM ] || { fail "SILO let domU1 raise an event towards another domU ($e1)"; return 1; }
    [ $rc2 -eq 0 ] || { fail "SILO refused domU1's event towards dom0 ($e2)"; return 1; }
    [ "$lu" = none ] || { fail "SILO let domU1 look up another domU's address (domain $lu): a co-residency oracle"; return 1; }
    [ "$l0" = 0 ] || { fail "SILO hid dom0's address from domU1 ($l0)"; return 1; }
    [ "$ld" = "$id" ] || { fail "dom0's lookup of domU-silo's address gave $ld, not $id"; return 1; }
}

run_dem_scenarios() {
    run_scenario dem-map-dom0 scn_dem_map
    run_scenario dem-conformance-dom0 scn_dem_conformance_dom0
    run_scenario dem-conformance-domU scn_dem_conformance_domU
    run_scenario dem-events-domU-domU scn_dem_events
    run_scenario dem-dead-domain scn_dem_dead_domain
    [ -n "$DEM_SILO" ] && run_scenario dem-silo scn_dem_silo
    run_scenario dem-xen-log scn_dem_xen_log
}
