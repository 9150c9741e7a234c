# The dom0 tools on the real system: `fastivc sync` fills the DEM's IP table from the toolstack's vif addresses,
# `ivctop --once --json` lists a tunnelled transfer between the two domUs with growing byte counts, and
# `fastivc status --openmetrics --out` writes the counters for Prometheus' textfile collector.
# Sourced by dom0/run.sh after baseline.sh (uses D1, D2, DOM0_IP, DOMU_IP, need, agent, fail, metrics from lib.sh).

IVCTOP_PORT=7001                 # the domUs' ivcbench server (domU/init)
IVCTOP_BYTES=$((256 << 30))      # far longer than ivctop's samples take under TCG (8 GiB ran out at 100 MB/s); stopped once taken
IVCTOP_WAIT=30                   # seconds for the tunnel to show up in ivctop

# jq filter: the tunnels between domU1 and domU2 on the ivcbench port.
IVCTOP_SEL='[.tunnels[] | select(([.a.ip, .b.ip] | sort) == ([$d1, $d2] | sort) and (.a.port == $port or .b.port == $port))]'

ivctop_between() { # FILE -> the matching tunnels as a JSON array
    jq -c --arg d1 "$D1" --arg d2 "$D2" --argjson port "$IVCTOP_PORT" "$IVCTOP_SEL" "$1"
}

# The module in both domUs (the kmod scenario loads and unloads it).
tools_kmod_up() {
    local h
    for h in "$D1" "$D2"; do
        agent "$h" 'grep -q "^fastivc " /proc/modules || insmod /lib/fastivc/fastivc.ko' \
            || { fail "cannot load fastivc.ko in $h"; return 1; }
    done
}

scn_sync() {
    need domU1 domU2 || return 1
    local id1 id2 rc d
    id1=$(xl domid domU1); id2=$(xl domid domU2)
    # Take domU2's address out so the pass has something to do.
    fastivc map del "$D2" 2>/dev/null
    fastivc sync --once --dom0-ip "$DOM0_IP" > "$OUT/sync1.log" 2>&1; rc=$?
    cat "$OUT/sync1.log"
    [ $rc -eq 0 ] || { fail "fastivc sync --once exited $rc: $(tail -1 "$OUT/sync1.log")"; return 1; }
    fastivc map list --json > "$OUT/sync-map.json" || { fail "fastivc map list failed"; return 1; }
    cat "$OUT/sync-map.json"
    for d in "$DOM0_IP:0" "$D1:$id1" "$D2:$id2"; do
        [ "$(jq -r --arg ip "${d%:*}" '.[] | select(.addr == $ip) | .domid' "$OUT/sync-map.json")" = "${d##*:}" ] \
            || { fail "after sync ${d%:*} is not mapped to domain ${d##*:}"; return 1; }
    done
    grep -qx "set $D2 -> dom $id2" "$OUT/sync1.log" || { fail "sync did not log setting $D2 -> dom $id2"; return 1; }
    # In step now: a second pass changes nothing.
    fastivc sync --once --dom0-ip "$DOM0_IP" > "$OUT/sync2.log" 2>&1; rc=$?
    cat "$OUT/sync2.log"
    metrics "$(jq -cn --argjson c "$(grep -Ec '^(set|del) ' "$OUT/sync1.log")" \
        --argjson again "$(grep -Ec '^(set|del) ' "$OUT/sync2.log")" --slurpfile m "$OUT/sync-map.json" \
        '{changes: $c, changes_second_pass: $again, ip_entries: ($m[0] | length)}')"
    [ $rc -eq 0 ] || { fail "second fastivc sync --once exited $rc"; return 1; }
    ! grep -Eq '^(set|del) ' "$OUT/sync2.log" || { fail "a second pass changed the table again"; return 1; }
}

# ivctop --once --json takes two samples one interval apart (its rates come from them), and the transfer it watches
# keeps the domUs' vCPUs busy, so under TCG each run of ivctop in dom0 takes tens of seconds: the scenario runs it
# twice, once for the JSON (until it lists the tunnel) and once for the screen.
scn_ivctop_once() {
    need domU1 domU2 || return 1
    tools_kmod_up || return 1
    local xpid i n1 b1 r1 k1 ids want
    agent "$D1" ivcbench stream --host "$D2" --port "$IVCTOP_PORT" --bytes "$IVCTOP_BYTES" --msg-size 65536 \
        --timeout 240 > "$OUT/ivctop-xfer.json" 2>&1 &
    xpid=$!
    # Wait for the tunnel to be listed (its bytes growing between ivctop's two samples)
    i=0
    while :; do
        ivctop --once --json > "$OUT/ivctop-1.json" 2> "$OUT/ivctop-1.err"
        [ "$(ivctop_between "$OUT/ivctop-1.json" | jq length)" = 1 ] && break
        i=$((i + 1))
        if [ $i -ge $IVCTOP_WAIT ] || ! kill -0 $xpid 2>/dev/null; then
            cat "$OUT/ivctop-1.json" "$OUT/ivctop-1.err"; wait $xpid; cat "$OUT/ivctop-xfer.json"
            fail "ivctop never listed one tunnel $D1 <-> $D2 port $IVCTOP_PORT"; return 1
        fi
        sleep 1
    done
    ivctop --once > "$OUT/ivctop-screen.txt" 2>&1; cat "$OUT/ivctop-screen.txt"
    # the transfer was only there to be watched: stop its client in domU1 (the servers keep running)
    agent "$D1" "ps | grep 'ivcbench strea[m]' | awk '{print \$1}' | xargs -r kill"
    wait $xpid; cat "$OUT/ivctop-xfer.json"
    ivctop_between "$OUT/ivctop-1.json" > "$OUT/ivctop-t1.json"
    cat "$OUT/ivctop-t1.json"
    n1=$(jq length "$OUT/ivctop-t1.json")
    b1=$(jq '.[0] | .bytes.ab + .bytes.ba' "$OUT/ivctop-t1.json"); r1=$(jq '.[0] | .rate.ab + .rate.ba' "$OUT/ivctop-t1.json")
    k1=$(jq -r '.[0].key' "$OUT/ivctop-t1.json")
    ids=$(jq -c '.[0] | [.a.domid, .b.domid] | sort' "$OUT/ivctop-t1.json")
    want=$(jq -cn --argjson a "$(xl domid domU1)" --argjson b "$(xl domid domU2)" '[$a, $b] | sort')
    metrics "$(jq -cn --argjson n1 "$n1" --argjson b1 "${b1:-null}" --argjson r1 "${r1:-null}" \
        --slurpfile s "$OUT/ivctop-1.json" '{tunnels_listed: $n1, bytes: $b1, rate_Bps: $r1,
          throughput_Bps: ($s[0].totals.throughput), pending_events: ($s[0].totals.pendingEvents)}
          | with_entries(select(.value != null))')"
    [ "$n1" = 1 ] || { fail "ivctop listed $n1 tunnels $D1 <-> $D2 port $IVCTOP_PORT, expected exactly 1"; return 1; }
    [ "$ids" = "$want" ] || { fail "the tunnel's domains are $ids, expected $want"; return 1; }
    jq -e '(.[0].rate.ab + .[0].rate.ba) > 0' "$OUT/ivctop-t1.json" >/dev/null \
        || { fail "the tunnel's bytes did not grow between ivctop's two samples (rate $r1)"; return 1; }
    # the screen names the same connection (its two ends)
    grep -q "${k1%%-*}" "$OUT/ivctop-screen.txt" && grep -q "${k1#*-}" "$OUT/ivctop-screen.txt" \
        || { fail "ivctop's screen does not list the connection $k1"; return 1; }
}

# ---- fastivc status --openmetrics --out: the DEM's counters and each domU's tunnel bytes, with a domain label ----

OM_FILE=$OUT/status-openmetrics.prom
OM_XFER_BYTES=$((4 << 20))   # a transfer of its own first: the domUs' byte counters are not 0 even when run alone
# The DEM's counters: `fastivc status --json` key, then the OpenMetrics sample.
OM_DEM_COUNTERS="raises:fastivc_dem_raises_total raisesDenied:fastivc_dem_raises_denied_total
    virqs:fastivc_dem_virqs_total fetches:fastivc_dem_fetches_total eventsDelivered:fastivc_dem_events_delivered_total
    recordsCreated:fastivc_dem_records_created_total recordsFreed:fastivc_dem_records_freed_total
    lookups:fastivc_dem_lookups_total"

# om_get FILE SAMPLE: the value of the one line whose first field is SAMPLE (name{labels}); fails unless exactly one
om_get() { awk -v k="$2" '$1 == k { v = $2; n++ } END { if (n != 1) exit 1; print v }' "$1"; }

# om_between WHAT BEFORE METRIC AFTER: fails unless the three are integers and BEFORE <= METRIC <= AFTER
om_between() {
    local v
    for v in "$2" "$3" "$4"; do
        [[ $v =~ ^[0-9]+$ ]] || { fail "$1: not an integer: before '$2', metric '$3', after '$4'"; return 1; }
    done
    [ "$2" -le "$3" ] && [ "$3" -le "$4" ] || { fail "$1: $3 is not between $2 (status --json before) and $4 (after)"; return 1; }
    echo "$1: $2 <= $3 <= $4"
}

# The file's structure: every sample belongs to the family of the last # TYPE (counter: NAME_total), no family twice.
OM_AWK='
/^# TYPE / { if ($3 in seen) { print "family twice: " $3; bad = 1 } seen[$3] = 1; fam = $3; type = $4; next }
/^#/ { next }
{ name = $1; sub(/\{.*/, "", name)
  want = (type == "counter") ? fam "_total" : fam
  if (name != want) { print "sample of no declared family: " $0; bad = 1 } }
END { exit bad }'

scn_status_openmetrics() {
    need domU1 domU2 || return 1
    tools_kmod_up || return 1
    local rc kv key name b m a d id sent=() missing
    agent "$D1" ivcbench stream --host "$D2" --bytes "$OM_XFER_BYTES" --msg-size 65536 --timeout 120 \
        > "$OUT/om-xfer.json" 2>&1; rc=$?
    cat "$OUT/om-xfer.json"
    [ $rc -eq 0 ] || { fail "the transfer before the samples failed (ivcbench exit $rc)"; return 1; }
    sleep 2   # the domUs mirror their statistics to xenstore once a second
    echo stale > "$OM_FILE"
    fastivc status --json > "$OUT/om-before.json" || { fail "fastivc status --json (before) failed"; return 1; }
    fastivc status --openmetrics --out "$OM_FILE" > "$OUT/om-out.log" 2>&1; rc=$?
    fastivc status --json > "$OUT/om-after.json" || { fail "fastivc status --json (after) failed"; return 1; }
    cat "$OUT/om-out.log" "$OM_FILE"
    [ $rc -eq 0 ] || { fail "fastivc status --openmetrics --out exited $rc: $(tail -1 "$OUT/om-out.log")"; return 1; }
    [ "$(tail -n 1 "$OM_FILE")" = "# EOF" ] || { fail "$OM_FILE does not end with # EOF"; return 1; }
    [ "$(grep -c '^# EOF$' "$OM_FILE")" = 1 ] || { fail "# EOF is not there exactly once"; return 1; }
    missing=$(ls "$OM_FILE".tmp.* 2>/dev/null)
    [ -z "$missing" ] || { fail "temporary file left: $missing"; return 1; }
    awk "$OM_AWK" "$OM_FILE" || { fail "$OM_FILE is not well formed (see above)"; return 1; }
    [ "$(om_get "$OM_FILE" fastivc_dem_up)" = 1 ] || { fail "fastivc_dem_up is not 1"; return 1; }
    grep -q '^# TYPE fastivc_dem_raises counter$' "$OM_FILE" || { fail "no counter family fastivc_dem_raises"; return 1; }
    # the DEM's counters, between the two JSON samples
    for kv in $OM_DEM_COUNTERS; do
        key=${kv%%:*}; name=${kv#*:}
        b=$(jq -r --arg k "$key" '.dem.counters[$k]' "$OUT/om-before.json")
        a=$(jq -r --arg k "$key" '.dem.counters[$k]' "$OUT/om-after.json")
        m=$(om_get "$OM_FILE" "$name") || { fail "no single sample $name"; return 1; }
        om_between "$name" "$b" "$m" "$a" || return 1
    done
    # each domU: its tunnel byte counters with its domain label, between the two samples, and not 0
    for d in domU1 domU2; do
        id=$(xl domid "$d") || { fail "no domain id for $d"; return 1; }
        [ "$(om_get "$OM_FILE" "fastivc_module_up{domain=\"$id\",source=\"xenstore\"}")" = 1 ] \
            || { fail "fastivc_module_up of $d (domain $id) is not 1"; return 1; }
        for kv in bytes_tx:fastivc_tunnel_sent_bytes_total bytes_rx:fastivc_tunnel_received_bytes_total; do
            key=${kv%%:*}; name="${kv#*:}{domain=\"$id\"}"
            b=$(jq -r --argjson id "$id" --arg k "$key" '.domains[] | select(.domid == $id) | .stats[$k]' "$OUT/om-before.json")
            a=$(jq -r --argjson id "$id" --arg k "$key" '.domains[] | select(.domid == $id) | .stats[$k]' "$OUT/om-after.json")
            m=$(om_get "$OM_FILE" "$name") || { fail "no single sample $name"; return 1; }
            om_between "$name" "$b" "$m" "$a" || return 1
            [ "$key" = bytes_tx ] && sent+=("$m")
            [ "$m" -gt 0 ] || { fail "$name is 0 after a tunnelled transfer"; return 1; }
        done
        grep -q "^fastivc_fallbacks_total{domain=\"$id\",reason=\"not_coresident\"} [0-9][0-9]*\$" "$OM_FILE" \
            || { fail "no fastivc_fallbacks_total of $d for reason not_coresident"; return 1; }
    done
    # every sample names its domain but the DEM's (host-wide) and the two about the sample itself
    missing=$(grep -v '^#' "$OM_FILE" | grep -Ev '^fastivc_(dem_[a-z_]+|scrape_errors|sample_timestamp_seconds) ' \
        | grep -Ev '^[a-z_]+\{domain="[0-9]+"')
    [ -z "$missing" ] || { fail "module samples without a domain label: $(echo "$missing" | head -1)"; return 1; }
    ! grep -E '^fastivc_dem_[a-z_]*\{' "$OM_FILE" || { fail "a DEM sample with labels"; return 1; }
    metrics "$(jq -cn --argjson f "$(grep -c '^# TYPE ' "$OM_FILE")" --argjson l "$(grep -vc '^#' "$OM_FILE")" \
        --argjson r "$(om_get "$OM_FILE" fastivc_dem_raises_total)" --argjson s1 "${sent[0]}" --argjson s2 "${sent[1]}" \
        --argjson e "$(om_get "$OM_FILE" fastivc_scrape_errors)" \
        '{families: $f, samples: $l, dem_raises: $r, domU1_sent_bytes: $s1, domU2_sent_bytes: $s2, scrape_errors: $e}')"
}
