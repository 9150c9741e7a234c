# The experiments (`fastivc bench`): the thesis' chapter 4 sweeps and our own, run between the two domUs after the
# tunnel scenarios have loaded fastivc.ko. Each point of a sweep is one lab scenario named
# bench.<experiment>.<series>.<x>.r<rep>, so the host's runner shows it as it runs and its metrics reach the report;
# the metrics carry {experiment, series, x, rep} and the measurement, and `fastivc bench` turns them into tables and
# plots. A point fails (and is left out of the statistics) when its data was not byte-exact or when it did not take
# the path its series names: a TCP point that created a tunnel, a tunnel point whose bytes stayed on TCP.
#
# dom0's command line selects them:
#   fastivc.bench=fig10,fig11,fig12,rtt,geom,geomrr   the experiments to run (no test scenarios run then)
#   fastivc.bench_repeat=N                 repetitions of each point (default 3), interleaved: rep 1 of every point,
#                                          then rep 2..., so a slow phase of the host spreads over every series
#   fastivc.bench_quick=1                  fewer points and shorter runs (the CI's smoke run of this code)
#   fastivc.bench_with_tests=1             run the test scenarios too, the points just before the last one
#                                          (./build.sh test: every experiment's code path, in the one lab boot)
#
# Series: "tcp" is both modules with enable=0 (new sockets stay native: netfront -> bridge -> netback);
# "tunnel-N" is N channels of 4 KiB (the thesis' geometry); fig12's points vary the channel size at 4 channels.
# geom and geomrr (the sweep that chooses the default tunnel size): "tunnel-auto" is channels=0 channel_size=0 (the
# module sizes each tunnel by demand) with auto_bytes = the point's x, so geometry.c picks 16 channels of x/16 (fewer,
# of a page each, below 64 KiB); "thesis" is the fixed 4 x 4 KiB. tcp and thesis are measured once per repetition at
# x = 0, the reference lines. After each of their points the defaults are back: enable=1, channels=0, channel_size=0,
# auto_bytes=1 MiB.

#
# On a real host, `fastivc bench run --remote` (lab/guest/remote/bench.sh) sources this file with BENCH, BENCH_REPEAT
# and BENCH_QUICK already set and BENCH_FROM_ENV=1 (that host's command line is not ours), and agent reaching the
# domUs by ssh; D1 and D2 are then the real domUs' addresses.
if [ "${BENCH_FROM_ENV:-}" != 1 ]; then
    BENCH= BENCH_REPEAT=3 BENCH_QUICK= BENCH_WITH_TESTS=
    for a in $(cat /proc/cmdline); do
        case $a in
            fastivc.bench=*) BENCH=${a#*=} ;;
            fastivc.bench_repeat=*) BENCH_REPEAT=${a#*=} ;;
            fastivc.bench_quick=*) BENCH_QUICK=${a#*=} ;;
            fastivc.bench_with_tests=*) BENCH_WITH_TESTS=${a#*=} ;;
        esac
    done
fi
case $BENCH_REPEAT in ''|*[!0-9]*|0) BENCH_REPEAT=3 ;; esac
[ "$BENCH_QUICK" = 0 ] && BENCH_QUICK=

# The sweeps. Sizes in bytes.
if [ -z "$BENCH_QUICK" ]; then
    FIG10_BLOCKS="1 64 1024 4096 16384 65536 262144 1048576 4194304 16777216"
    FIG10_SECONDS=2
    FIG11_FILES="1 1024 65536 1048576 16777216 67108864"
    FIG12_SIZES="4096 8192 16384 32768 65536 131072 262144"
    FIG12_BYTES=$((32 << 20))
    RTT_SIZES="1 64 1024 4096 16384 65536"
    RTT_SECONDS=2
    GEOM_SIZES="16384 65536 262144 1048576 4194304"
    GEOM_BYTES=$((32 << 20))
    GEOM_RR_SECONDS=2
else
    FIG10_BLOCKS="1 65536 4194304"
    FIG10_SECONDS=0.5
    FIG11_FILES="1024 4194304"
    FIG12_SIZES="4096 65536"
    FIG12_BYTES=$((4 << 20))
    RTT_SIZES="1 4096"
    RTT_SECONDS=0.5
    GEOM_SIZES="65536 1048576"
    GEOM_BYTES=$((4 << 20))
    GEOM_RR_SECONDS=0.5
fi
BENCH_SERIES="tcp tunnel-2 tunnel-4 tunnel-8"
# Figure 10 also draws the module's defaults (demand-sized tunnels, what a user who does not tune gets)
FIG10_SERIES="tcp default tunnel-2 tunnel-4 tunnel-8"
RTT_SERIES="tcp tunnel-4 tunnel-16x64KiB"
FTP_DISK=/tmp/ftpdisk.img     # dom0's file behind domU2's virtual disk
FTP_DISK_MB=160
AUTO_BYTES_DEFAULT=1048576    # fastivc.ko's auto_bytes when loaded (guest-kmod/geometry.c)

# bench_x_name BYTES: 1B, 64B, 4KiB, 1MiB (scenario names)
bench_x_name() {
    local n=$1
    if [ $((n % (1 << 20))) -eq 0 ]; then echo "$((n >> 20))MiB"
    elif [ $((n % 1024)) -eq 0 ]; then echo "$((n >> 10))KiB"
    else echo "${n}B"; fi
}

# bench_points: one line per point, "NAME EXPERIMENT SERIES X REP", in the order they run
bench_points() {
    local rep e s x
    for rep in $(seq 1 "$BENCH_REPEAT"); do
        for e in ${BENCH//,/ }; do
            case $e in
                fig10) for s in $FIG10_SERIES; do for x in $FIG10_BLOCKS; do
                           echo "bench.fig10.$s.$(bench_x_name "$x").r$rep fig10 $s $x $rep"; done; done ;;
                fig11) for s in $BENCH_SERIES; do for x in $FIG11_FILES; do
                           echo "bench.fig11.$s.$(bench_x_name "$x").r$rep fig11 $s $x $rep"; done; done ;;
                fig12) echo "bench.fig12.tcp.0B.r$rep fig12 tcp 0 $rep"
                       for x in $FIG12_SIZES; do echo "bench.fig12.tunnel-4.$(bench_x_name "$x").r$rep fig12 tunnel-4 $x $rep"; done ;;
                rtt)   for s in $RTT_SERIES; do for x in $RTT_SIZES; do
                           echo "bench.rtt.$s.$(bench_x_name "$x").r$rep rtt $s $x $rep"; done; done ;;
                geom|geomrr)
                       echo "bench.$e.tcp.0B.r$rep $e tcp 0 $rep"; echo "bench.$e.thesis.0B.r$rep $e thesis 0 $rep"
                       for x in $GEOM_SIZES; do
                           echo "bench.$e.tunnel-auto.$(bench_x_name "$x").r$rep $e tunnel-auto $x $rep"; done ;;
            esac
        done
    done
}

if [ -n "$BENCH" ]; then
    for e in ${BENCH//,/ }; do
        case $e in fig10|fig11|fig12|rtt|geom|geomrr) ;; *) mark phase bench-unknown "$e"; BENCH= ;; esac
    done
fi
if [ -n "$BENCH" ]; then
    # Only what brings tunnels up, then the points: the tests are ./build.sh test's business.
    [ "${BENCH_WITH_TESTS:-0}" = 1 ] || ONLY='^(sync-ip-table-dom0|kmod-load-tunnel|bench-setup-ftp-disk|bench\..*)$'
    case ",$BENCH," in *,fig11,*) PLAN+=(bench-setup-ftp-disk) ;; esac
    # (dom0 has no /dev/fd, so no process substitution here)
    while read -r name _; do PLAN+=("$name"); done <<< "$(bench_points)"
fi
# The remote path run for real from this dom0 (not a point; the test plan's, so fastivc.bench= alone leaves it out).
[ "${BENCH_FROM_ENV:-}" = 1 ] || PLAN+=(bench-remote-dom0)

# bench_geometry SERIES [CHANNEL_SIZE]: the module parameters in both domUs for the series' next connections
bench_geometry() {
    local series=$1 size=${2:-$THESIS_CHANNEL_SIZE} enable=1 n=$THESIS_CHANNELS
    case $series in
        tcp) enable=0 ;;
        tunnel-auto|default) n=0 size=0 ;;
        thesis) n=${THESIS_CHANNELS:-4} size=${THESIS_CHANNEL_SIZE:-4096} ;;
        tunnel-16x64KiB) n=16 size=65536 ;;
        tunnel-*) n=${series#tunnel-} ;;
    esac
    tun_params "$enable" "$n" "$size"
}

# bench_auto_bytes BYTES: fastivc.ko's auto_bytes in both domUs (the bytes of a new demand-sized tunnel of a socket
# whose buffers TCP autotunes), read back
bench_auto_bytes() {
    local d got
    for d in "$D1" "$D2"; do
        got=$(agent "$d" "echo $1 > /sys/module/fastivc/parameters/auto_bytes && cat /sys/module/fastivc/parameters/auto_bytes" | tr -d ' \r\n')
        [ "$got" = "$1" ] || { fail "cannot set auto_bytes=$1 in $d (it reads ${got:-nothing})"; return 1; }
    done
}
# bench_restore: the module's defaults in both domUs (enable=1, demand-sized tunnels, auto_bytes 1 MiB)
bench_restore() { tun_defaults && bench_auto_bytes "$AUTO_BYTES_DEFAULT"; }

# bench_path_check SERIES SENDER_BEFORE SENDER_AFTER CONNECTIONS BYTES: the point took its series' path. Sets
# BENCH_PATH (JSON: tunnels created and tunnel bytes on the sender's side).
bench_path_check() {
    local series=$1 sb=$2 sa=$3 conns=$4 bytes=$5 created sent
    created=$(kdelta "$sb" "$sa" tunnels_created); sent=$(kdelta "$sb" "$sa" bytes_tx)
    BENCH_PATH=$(jq -cn --argjson c "$created" --argjson s "$sent" --argjson b "$bytes" \
        '{tunnels_created: $c, tunnel_bytes_tx: $s, tunnel_share: (if $b > 0 then ($s / $b * 1000 | round / 1000) else 0 end)}')
    echo "path: $series, $conns connection(s), tunnels created $created, tunnel bytes $sent of $bytes"
    if [ "$series" = tcp ]; then
        [ "$created" -eq 0 ] || { fail "a TCP point created $created tunnel(s)"; return 1; }
        return 0
    fi
    [ "$created" -ge "$conns" ] || { fail "only $created tunnels for $conns connections: fell back to TCP"; return 1; }
    # What a connection sends before its receiver has mapped the tunnel goes on TCP (sock.c): under TCG up to a few
    # hundred KiB. As in the tunnel scenarios, at most 1 MiB per connection may (tunnel_share is the measured part);
    # a connection that takes a tunnel from the pair's link carries everything in it.
    if [ "$sent" -lt $((bytes - conns * (1 << 20))) ]; then
        fail "only $sent of $bytes bytes went through tunnels ($conns connection(s))"; return 1
    fi
}

# bench_point EXPERIMENT SERIES X REP FN: sets the series up, runs FN SERIES X, adds the point's coordinates
bench_point() {
    local exp=$1 series=$2 x=$3 rep=$4 fn=$5 rc
    need domU1 domU2 || return 1
    bench_geometry "$series" "$( [ "$exp" = fig12 ] && [ "$x" -gt 0 ] && echo "$x" || echo "$THESIS_CHANNEL_SIZE")" || return 1
    if [ "$series" = tunnel-auto ]; then bench_auto_bytes "$x" || { bench_restore; return 1; }; fi
    "$fn" "$series" "$x"; rc=$?
    case $exp in geom|geomrr) bench_restore || rc=1 ;; esac
    [ -f "$OUT/$SCENARIO.json" ] || echo '{}' > "$OUT/$SCENARIO.json"
    metrics "$(jq -c --arg e "$exp" --arg s "$series" --argjson x "$x" --argjson r "$rep" \
        '{experiment: $e, series: $s, x: $x, rep: $r} + .' "$OUT/$SCENARIO.json")"
    return $rc
}

# Figure 10: one block over a new connection, timed from connect() to the receiver's report, so tunnel creation is
# inside the time. Throughput = block / median block time.
bench_fig10() {
    local series=$1 bytes=$2 f="$OUT/$SCENARIO.out" rc
    kstats "$D1" "$OUT/sb.txt"
    agent "$D1" ivcbench block --host "$D2" --port "${BLOCK_PORT:-7004}" --bytes "$bytes" --seconds "$FIG10_SECONDS" --warmup 2 --timeout 60 > "$f"; rc=$?
    kstats "$D1" "$OUT/sa.txt"
    cat "$f"
    jq -e '.verified == true and .count > 0' "$f" >/dev/null 2>&1 \
        || { fail "ivcbench block exit $rc: $(jq -r '.error // "not verified"' "$f" 2>/dev/null)"; return 1; }
    # the 2 warm-up blocks are connections too
    bench_path_check "$series" "$OUT/sb.txt" "$OUT/sa.txt" "$(( $(jq .count "$f") + 2 ))" "$(( ($(jq .count "$f") + 2) * bytes ))" || return 1
    metrics "$(jq -c --argjson p "$BENCH_PATH" '{throughput_MBps, throughput_mean_MBps, block_us_p50, block_us_p90,
        blocks: .count} + $p' "$f")"
}

# Figure 11: vsftpd serves files from domU2's virtual disk (xen-blkfront -> blkback -> a loop device in dom0), with
# domU2's page cache dropped before every transfer so each one reads the disk; busybox ftpget in domU1 fetches it.
scn_bench_setup_ftp_disk() {
    need domU2 || return 1
    local x loopdev files=/tmp/ftpdisk.files
    modprobe loop && modprobe xen-blkback || { fail "modprobe loop / xen-blkback failed"; return 1; }
    # The files go in with mke2fs -d: dom0 never mounts the disk. ext2, read by the domU's ext4 driver (which wants
    # crc32c loaded whatever the features): a read-only disk needs no journal.
    rm -rf "$files" "$FTP_DISK"; mkdir -p "$files"
    for x in $FIG11_FILES; do head -c "$x" /dev/urandom > "$files/f-$x.bin"; done
    chmod 755 "$files"; chmod 644 "$files"/f-*.bin
    (cd "$files" && sha256sum f-*.bin) > "$OUT/ftp-disk.sha256"
    truncate -s "${FTP_DISK_MB}M" "$FTP_DISK"
    mkfs.ext2 -q -F -m 0 -d "$files" "$FTP_DISK" > "$OUT/mkfs.log" 2>&1; local rc=$?
    rm -rf "$files"
    [ $rc -eq 0 ] || { fail "mkfs.ext2 -d failed: $(tr '\n' ' ' < "$OUT/mkfs.log")"; return 1; }
    loopdev=$(losetup -f --show -r "$FTP_DISK") || { fail "losetup failed"; return 1; }
    xl block-attach domU2 "format=raw, vdev=xvdb, access=ro, target=$loopdev" \
        || { fail "xl block-attach failed: $(xl dmesg | tail -3 | tr '\n' ' ')"; return 1; }
    agent "$D2" "modprobe xen-blkfront; modprobe crc32c_generic; modprobe ext4; i=0; while [ ! -b /dev/xvdb ] && [ \$i -lt 100 ]; do sleep 0.1; i=\$((i + 1)); done; mkdir -p /srv/ftp/disk && mount -t ext2 -o ro /dev/xvdb /srv/ftp/disk && ls -l /srv/ftp/disk" \
        || { fail "domU2 cannot mount its FTP disk: $(agent "$D2" dmesg | tail -5 | tr '\n' ' ')"; return 1; }
    metrics "$(jq -cn --arg d "$loopdev" --argjson n "$(wc -l < "$OUT/ftp-disk.sha256")" '{loop_device: $d, files: $n}')"
}

bench_fig11() {
    local series=$1 bytes=$2 name="f-$2.bin" t0 secs rc got sum1 sum2
    sum1=$(awk -v n="$name" '$2 == n { print $1 }' "$OUT/ftp-disk.sha256")
    [ -n "$sum1" ] || { fail "no file $name on the FTP disk (did bench-setup-ftp-disk pass?)"; return 1; }
    agent "$D1" rm -f /tmp/ftp-bench.bin
    agent "$D2" "sync; echo 3 > /proc/sys/vm/drop_caches"
    kstats "$D2" "$OUT/sb.txt"
    t0=$(now)
    agent "$D1" timeout 120 ftpget -u anonymous -p lab@ "$D2" /tmp/ftp-bench.bin "disk/$name" > "$OUT/ftp.get" 2>&1; rc=$?
    secs=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.4f", b - a }')
    kstats "$D2" "$OUT/sa.txt"
    got=$(agent "$D1" "wc -c < /tmp/ftp-bench.bin" 2>/dev/null | tr -d ' \n'); [ -n "$got" ] || got=0
    sum2=$(agent "$D1" sha256sum /tmp/ftp-bench.bin 2>/dev/null | cut -d' ' -f1)
    agent "$D1" rm -f /tmp/ftp-bench.bin
    echo "ftpget exit $rc, $got of $bytes bytes in $secs s"
    [ $rc -eq 0 ] || { fail "ftpget exited $rc: $(tail -n 2 "$OUT/ftp.get" | tr '\n' ' ')"; return 1; }
    [ "$got" -eq "$bytes" ] && [ "$sum1" = "$sum2" ] || { fail "ftpget got $got of $bytes bytes, sha256 $sum2 (want $sum1)"; return 1; }
    # one data connection; the control connection's replies (about 200 bytes) count in tunnel_share too
    bench_path_check "$series" "$OUT/sb.txt" "$OUT/sa.txt" 1 "$bytes" || return 1
    metrics "$(jq -cn --argjson b "$bytes" --argjson s "$secs" --argjson p "$BENCH_PATH" \
        '{throughput_MBps: (if $s > 0 then $b / $s / 1e6 else 0 end), seconds: $s} + $p')"
}

# Figure 12: a 64 KiB-write stream through 4 channels of the point's size; the tcp point (x = 0) is the reference.
bench_fig12() {
    local series=$1 f="$OUT/$SCENARIO.out" rc
    kstats "$D1" "$OUT/sb.txt"
    agent "$D1" ivcbench stream --host "$D2" --bytes "$FIG12_BYTES" --msg-size 65536 --timeout 120 > "$f"; rc=$?
    kstats "$D1" "$OUT/sa.txt"
    cat "$f"
    jq -e --argjson n "$FIG12_BYTES" '.verified == true and .bytes_received == $n' "$f" >/dev/null 2>&1 \
        || { fail "ivcbench stream exit $rc: $(jq -r '.error // "not byte-exact"' "$f" 2>/dev/null)"; return 1; }
    bench_path_check "$series" "$OUT/sb.txt" "$OUT/sa.txt" 1 "$FIG12_BYTES" || return 1
    metrics "$(jq -c --argjson p "$BENCH_PATH" '{throughput_MBps, seconds} + $p' "$f")"
}

# Round-trip time against message size: one request outstanding, TCP_NODELAY (ivcbench rr).
bench_rtt() {
    local series=$1 size=$2 f="$OUT/$SCENARIO.out" rc n
    kstats "$D1" "$OUT/sb.txt"
    agent "$D1" ivcbench rr --host "$D2" --msg-size "$size" --seconds "$RTT_SECONDS" --warmup 20 > "$f"; rc=$?
    kstats "$D1" "$OUT/sa.txt"
    cat "$f"
    jq -e '.verified == true and .count > 0' "$f" >/dev/null 2>&1 \
        || { fail "ivcbench rr exit $rc: $(jq -r '.error // "not verified"' "$f" 2>/dev/null)"; return 1; }
    n=$(jq '.count' "$f")
    bench_path_check "$series" "$OUT/sb.txt" "$OUT/sa.txt" 1 "$(( (n + 20) * size ))" || return 1
    metrics "$(jq -c --argjson p "$BENCH_PATH" '{latency_us_p50, latency_us_p90, latency_us_p99, rr_per_s,
        round_trips: .count} + $p' "$f")"
}

# geom and geomrr's path check, beyond bench_path_check: the receiver's side (SERIES RECEIVER_BEFORE RECEIVER_AFTER
# SENDER_BYTES_TX). A tcp point created no tunnel there either; a tunnel point's receiver got every byte the sender
# put in its tunnels.
bench_rx_check() {
    local series=$1 rb=$2 ra=$3 sent=$4 created recvd
    created=$(kdelta "$rb" "$ra" tunnels_created); recvd=$(kdelta "$rb" "$ra" bytes_rx)
    echo "receiver: tunnels created $created, tunnel bytes received $recvd"
    if [ "$series" = tcp ]; then
        [ "$created" -eq 0 ] || { fail "a TCP point created $created tunnel(s) at the receiver"; return 1; }
    else
        [ "$recvd" -eq "$sent" ] || { fail "tunnel bytes sent $sent but received $recvd"; return 1; }
    fi
}

# bench_events SB SA RB RA BYTES: JSON, the DEM events both ends' modules raised, and per MiB of BYTES
bench_events() {
    local e=$(( $(kdelta "$1" "$2" events_raised) + $(kdelta "$3" "$4" events_raised) ))
    jq -cn --argjson e "$e" --argjson b "$5" \
        '{events_raised: $e, events_per_MiB: (if $b > 0 then ($e * 1048576 / $b * 100 | round / 100) else 0 end)}'
}

# geom (the sweep that chose the default tunnel size): fig12's stream, 64 KiB writes, through a tunnel of x bytes sized
# by the module (tunnel-auto), against TCP and the thesis' 4 x 4 KiB (x = 0, the reference lines).
bench_geom() {
    local series=$1 f="$OUT/$SCENARIO.out" rc
    kstats "$D1" "$OUT/sb.txt"; kstats "$D2" "$OUT/rb.txt"
    agent "$D1" ivcbench stream --host "$D2" --bytes "$GEOM_BYTES" --msg-size 65536 --timeout 120 > "$f"; rc=$?
    kstats "$D1" "$OUT/sa.txt"; kstats "$D2" "$OUT/ra.txt"
    cat "$f"
    jq -e --argjson n "$GEOM_BYTES" '.verified == true and .bytes_received == $n and .checksum_sent == .checksum_received' \
        "$f" >/dev/null 2>&1 || { fail "ivcbench stream exit $rc: $(jq -r '.error // "not byte-exact"' "$f" 2>/dev/null)"; return 1; }
    bench_path_check "$series" "$OUT/sb.txt" "$OUT/sa.txt" 1 "$GEOM_BYTES" || return 1
    bench_rx_check "$series" "$OUT/rb.txt" "$OUT/ra.txt" "$(jq .tunnel_bytes_tx <<< "$BENCH_PATH")" || return 1
    metrics "$(jq -c --argjson p "$BENCH_PATH" \
        --argjson e "$(bench_events "$OUT/sb.txt" "$OUT/sa.txt" "$OUT/rb.txt" "$OUT/ra.txt" "$GEOM_BYTES")" \
        '{throughput_MBps, seconds} + $p + $e' "$f")"
}

# geomrr: request/response of 1 B (ivcbench rr, one outstanding, TCP_NODELAY) at the same geometries. The 100 warm-up
# round trips are for the switch: a tunnel point must have carried at least every measured round trip's bytes
# through tunnels both ways (only what goes before the switch travels on TCP), a tcp point no byte.
bench_geomrr() {
    local series=$1 f="$OUT/$SCENARIO.out" rc n c1 c2 s1 s2
    kstats "$D1" "$OUT/sb.txt"; kstats "$D2" "$OUT/rb.txt"
    agent "$D1" ivcbench rr --host "$D2" --msg-size 1 --seconds "$GEOM_RR_SECONDS" --warmup 100 > "$f"; rc=$?
    kstats "$D1" "$OUT/sa.txt"; kstats "$D2" "$OUT/ra.txt"
    cat "$f"
    jq -e '.verified == true and .count > 0' "$f" >/dev/null 2>&1 \
        || { fail "ivcbench rr exit $rc: $(jq -r '.error // "not verified"' "$f" 2>/dev/null)"; return 1; }
    n=$(jq '.count' "$f")
    c1=$(kdelta "$OUT/sb.txt" "$OUT/sa.txt" tunnels_created); c2=$(kdelta "$OUT/rb.txt" "$OUT/ra.txt" tunnels_created)
    s1=$(kdelta "$OUT/sb.txt" "$OUT/sa.txt" bytes_tx); s2=$(kdelta "$OUT/rb.txt" "$OUT/ra.txt" bytes_tx)
    echo "path: $series, $n round trips (+100 warm-up); tunnels created: client $c1, server $c2; tunnel bytes: client $s1, server $s2"
    if [ "$series" = tcp ]; then
        [ "$c1" -eq 0 ] && [ "$c2" -eq 0 ] || { fail "a TCP point created tunnels ($c1/$c2)"; return 1; }
    else
        [ "$c1" -ge 1 ] && [ "$c2" -ge 1 ] || { fail "round trips did not use tunnels both ways (created $c1/$c2): fell back to TCP"; return 1; }
        [ "$s1" -ge "$n" ] && [ "$s2" -ge "$n" ] \
            || { fail "only $s1/$s2 bytes went through tunnels for $n measured round trips of 1 B"; return 1; }
    fi
    metrics "$(jq -c --argjson c1 "$c1" --argjson c2 "$c2" --argjson s1 "$s1" --argjson s2 "$s2" \
        --argjson e "$(bench_events "$OUT/sb.txt" "$OUT/sa.txt" "$OUT/rb.txt" "$OUT/ra.txt" $(( 2 * (n + 100) )))" \
        '{rr_per_s, latency_us_p50, latency_us_p90, latency_us_p99, round_trips: .count,
          tunnels_created_client: $c1, tunnels_created_server: $c2, tunnel_bytes_client: $s1, tunnel_bytes_server: $s2,
          events_raised: $e.events_raised,
          events_per_round_trip: (if .count > 0 then ($e.events_raised / (.count + 100) * 100 | round / 100) else 0 end)}' "$f")"
}

# bench-remote-dom0: `fastivc bench run --remote` from this dom0 as on a real host: over ssh to the domUs' sshd with
# the lab-only root key (build-images.sh puts it at /lab/ssh/id_ed25519), fig12's quick sweep once. Checks its exit
# status, that every point measured and took its series' path (tunnel points through tunnels, the tcp one none), the
# hardware named in results.json, and that the domUs were left as found (module parameters, no temporary folder).
BENCH_REMOTE_OUT=/tmp/bench-remote
bench_remote_params() {
    local d
    for d in "$D1" "$D2"; do
        agent "$d" 'cd /sys/module/fastivc/parameters && echo $(cat enable channels channel_size auto_bytes); ls -d /tmp/fastivc-bench.* 2>/dev/null'
    done
}
scn_bench_remote_dom0() {
    need domU1 domU2 || return 1
    local key=/tmp/lab-root-key out=$BENCH_REMOTE_OUT rc t0 secs r
    [ -r "$LAB/ssh/id_ed25519" ] || { fail "no lab root key at $LAB/ssh/id_ed25519 (build-images.sh: build_input)"; return 1; }
    install -m 600 "$LAB/ssh/id_ed25519" "$key"
    # The domUs' host key changes with every image build: nothing to check it against here.
    mkdir -p /root/.ssh && chmod 700 /root/.ssh
    printf 'Host 192.0.2.*\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n' > /root/.ssh/config
    bench_remote_params > "$OUT/remote-before.txt"
    rm -rf "$out"; t0=$(now)
    timeout 600 fastivc bench run fig12 --quick --repeat 1 --remote "root@$D1,root@$D2" --via ssh --ssh-key "$key" \
        --out "$out" > "$OUT/bench-remote.out" 2>&1; rc=$?
    secs=$(elapsed "$t0")
    cat "$OUT/bench-remote.out"
    for r in "$out"/logs/*.log; do [ -f "$r" ] && [ "${r##*/}" != remote.log ] && { echo "== $r"; tail -n 40 "$r"; }; done
    r=$out/fig12/results.json
    [ -f "$r" ] || { fail "fastivc bench run --remote exited $rc without $r: $(tail -n 3 "$OUT/bench-remote.out" | tr '\n' ' ')"; return 1; }
    jq -c '.source' "$r"
    metrics "$(jq -c --argjson s "$secs" --argjson rc "$rc" '{exit: $rc, seconds: $s, points: (.samples | length),
        failed: (.failed | length), cpu_model: .source.hardware.cpu_model, nr_cpus: .source.hardware.nr_cpus,
        tcp_MBps: ([.samples[] | select(.series == "tcp") | .values.throughput_MBps] | first),
        tunnel_4KiB_MBps: ([.samples[] | select(.series == "tunnel-4" and .x == 4096) | .values.throughput_MBps] | first),
        tunnel_64KiB_MBps: ([.samples[] | select(.series == "tunnel-4" and .x == 65536) | .values.throughput_MBps] | first)}' "$r")"
    [ "$rc" -eq 0 ] || { fail "fastivc bench run --remote exited $rc: $(jq -r '[.failed[] | "\(.name): \(.reason)"] | join("; ")' "$r")"; return 1; }
    jq -e '(.samples | length) == 3 and (.failed | length) == 0' "$r" >/dev/null || { fail "expected 3 measured points, no failure"; return 1; }
    # every point's path, from the sender's module counters (bench_path_check wrote them into the metrics). dom0 runs
    # fastivc.ko here, so the ssh connections to the domUs are tunnels too: domU1's replies on them (a few KiB a point)
    # count in its tunnel bytes, even during a tcp point, whose stream itself must create no tunnel.
    jq -e 'all(.samples[]; if .series == "tcp" then .values.tunnels_created == 0 and .values.tunnel_bytes_tx < 65536
                             else .values.tunnels_created >= 1 and .values.tunnel_share >= 0.75 end)' "$r" >/dev/null \
        || { fail "a point did not take its series' path: $(jq -c '[.samples[] | {series, x, values}]' "$r")"; return 1; }
    jq -e --arg d1 "$D1" --arg d2 "$D2" --arg k "$(uname -r)" --argjson v "$DOMU_VCPUS" '.source.run == "remote" and
        (.source.hardware | .run == "remote" and (.cpu_model | type == "string" and length > 0)
         and (.xen_version | type == "string" and length > 0) and .nr_cpus > 0 and .total_memory_MiB > 0
         and (.virt_caps | type == "string") and .dom0_kernel == $k
         and ([.domUs[].addr] == [$d1, $d2]) and all(.domUs[]; .kernel == $k and .vcpus == $v and .memory_MiB > 0))' \
        "$r" >/dev/null || { fail "results.json does not name the hardware: $(jq -c .source.hardware "$r")"; return 1; }
    jq -e '[.scenarios[] | select(.name == "remote-setup")][0].pass == true' "$out/remote-report.json" >/dev/null \
        || { fail "no passing remote-setup in remote-report.json"; return 1; }
    bench_remote_params > "$OUT/remote-after.txt"
    echo "domUs before: $(tr '\n' ' ' < "$OUT/remote-before.txt"); after: $(tr '\n' ' ' < "$OUT/remote-after.txt")"
    cmp -s "$OUT/remote-before.txt" "$OUT/remote-after.txt" || { fail "the domUs were not left as found (module parameters or /tmp/fastivc-bench.*)"; return 1; }
}

run_bench() {
    # the remote path for real, from this dom0 (the test plan's; a real host's run of this file has no lab to test)
    [ "${BENCH_FROM_ENV:-}" = 1 ] || run_scenario bench-remote-dom0 scn_bench_remote_dom0
    [ -n "$BENCH" ] || return 0
    mark phase bench "$BENCH" "repeat=$BENCH_REPEAT" "quick=${BENCH_QUICK:-0}"
    case ",$BENCH," in *,fig11,*) run_scenario bench-setup-ftp-disk scn_bench_setup_ftp_disk ;; esac
    local name exp series x rep
    # stdin from /dev/null: the lab agent must not eat the list
    while read -r name exp series x rep; do
        run_scenario "$name" bench_point "$exp" "$series" "$x" "$rep" "bench_$exp" < /dev/null
    done <<< "$(bench_points)"
    tun_defaults
}
