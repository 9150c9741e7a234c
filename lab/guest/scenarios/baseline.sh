# The baseline scenarios: everything over the normal path, netfront -> dom0's bridge -> netback (and loopback inside
# a domU as the in-guest ceiling). Their numbers are what every later speed-up is measured against.
# Names: <workload>-<message size>-<endpoints>-<path> (shared/design.md, "Contracts").

D1=${DOMU_IP[domU1]} D2=${DOMU_IP[domU2]}
BULK_BYTES=$((64 << 20))
RR_SECONDS=3
# Pipelined requests (ivcbench pipeline): all written before any answer is read, after 100 one at a time (warm-up:
# the burst starts on an established path, as rr's). A burst that has not finished within PIPELINE_TIMEOUT seconds is a
# deadlock: ivcbench's --timeout bounds each blocking call and the burst, and the agent kills the client
# PIPELINE_TIMEOUT + 30 s in. 256 requests of 4 KiB complete over TCP here (measured 2026-12-06, 2-vCPU domUs, with
# and without the warm-up: 512 still did, 1024 did not within 40 s, tcp_rmem/tcp_wmem max 1.4 MiB), so a tunnel must too.
PIPELINE_COUNT=256
PIPELINE_WARMUP=100
PIPELINE_TIMEOUT=60
MEMCPY_BYTES=$((1 << 30))
# One block per new connection (ivcbench block, the thesis' Figure 10): connect, send the block, read the server's
# ack and report, close. churn is 1 KiB blocks, CHURN_COUNT connections one after the other: the cost of a
# connection; the larger blocks, BLOCK_COUNT_* connections each.
CHURN_COUNT=2000
BLOCK_COUNT_64KiB=200
BLOCK_COUNT_1MiB=40

PLAN=(boot-xen-dom0-domUs kmod-load-domU
      bulk-64KiB-domU-domU-tcp bulk-4KiB-domU-domU-tcp bulk-1B-domU-domU-tcp
      rr-1B-domU-domU-tcp rr-4KiB-domU-domU-tcp rr-64KiB-domU-domU-tcp
      pipeline-64B-domU-domU-tcp pipeline-4KiB-domU-domU-tcp
      bulk-64KiB-dom0-domU-tcp bulk-64KiB-domU-dom0-tcp
      bulk-64KiB-domU-loopback-tcp rr-1B-domU-loopback-tcp memcpy-64KiB-domU syscall-1B-domU ftp-floor-64MiB-domU
      iperf3-domU-domU-tcp scp-64MiB-domU-domU-tcp ftp-64MiB-domU-domU-tcp tcpsem-domU-domU-tcp
      churn-domU-domU-tcp block-64KiB-domU-domU-tcp block-1MiB-domU-domU-tcp)

# bench_stream_result FILE RC [BYTES]: checks an ivcbench stream result and records its metrics.
bench_stream_result() {
    local f=$1 rc=$2 n=${3:-$BULK_BYTES}
    cat "$f"
    jq -e . "$f" >/dev/null 2>&1 || { fail "ivcbench printed no JSON (exit $rc)"; return 1; }
    metrics "$(jq -c '{throughput_MBps, bytes: .bytes_received, seconds, msg_size_B: .msg_size, verified,
                        mismatch_offset, runs, throughput_MBps_min, throughput_MBps_max} | with_entries(select(.value != null))' "$f")"
    [ "$rc" -eq 0 ] || { fail "ivcbench exit $rc: $(jq -r '.error // "data verification failed"' "$f")"; return 1; }
    jq -e --argjson n "$n" '.verified == true and .bytes_received == $n and
        .checksum_sent == .checksum_received' "$f" >/dev/null || { fail "stream not byte-exact"; return 1; }
}

bench_rr_result() {
    local f=$1 rc=$2
    cat "$f"
    jq -e . "$f" >/dev/null 2>&1 || { fail "ivcbench printed no JSON (exit $rc)"; return 1; }
    metrics "$(jq -c '{rr_per_s, latency_us_p50, latency_us_p90, latency_us_p99, latency_us_max, count,
                        msg_size_B: .msg_size, verified, runs, rr_per_s_min, rr_per_s_max}
                        | with_entries(select(.value != null))' "$f")"
    [ "$rc" -eq 0 ] || { fail "ivcbench exit $rc: $(jq -r '.error // "reply verification failed"' "$f")"; return 1; }
    jq -e '.verified == true and .count > 0' "$f" >/dev/null || { fail "no verified round trips"; return 1; }
}

# bench_pipeline_result FILE RC COUNT: checks an ivcbench pipeline result (COUNT requests in the burst, every byte
# verified both ways) and records its metrics.
bench_pipeline_result() {
    local f=$1 rc=$2 n=$3
    cat "$f"
    jq -e . "$f" >/dev/null 2>&1 || { fail "ivcbench printed no JSON (exit $rc)"; return 1; }
    # (an error JSON has none of these: no null may reach the report)
    metrics "$(jq -c '{pipeline_per_s, count, seconds, send_seconds, msg_size_B: .msg_size, verified}
        | with_entries(select(.value != null))' "$f")"
    [ "$rc" -ne 124 ] || { fail "the pipeline did not finish within $((PIPELINE_TIMEOUT + 30)) s (killed)"; return 1; }
    [ "$rc" -eq 0 ] || { fail "ivcbench exit $rc: $(jq -r '.error // "verification failed"' "$f")"; return 1; }
    jq -e --argjson n "$n" '.verified == true and .count == $n and .bytes_received == .bytes_sent and
        .server_bytes_received == .bytes_sent' "$f" >/dev/null || { fail "pipeline not byte-exact"; return 1; }
}

# The boot, and the CPUs each kernel sees: dom0 has all of the machine's (Xen's default, no dom0_max_vcpus), each
# domU DOMU_VCPUS, so every scenario runs with real concurrency.
scn_boot() {
    local d why= m n
    n=$(grep -c '^processor' /proc/cpuinfo)
    m=$(jq -cn --argjson dom0 "$DOM0_UP_S" --argjson n "$n" '{dom0_up_s: $dom0, dom0_vcpus: $n}')
    for d in $DOMU_NAMES; do
        if [ -n "${DOMU_UP[$d]:-}" ]; then
            n=$(agent "${DOMU_IP[$d]}" grep -c '^processor' /proc/cpuinfo); n=${n:-0}
            m=$(echo "$m" | jq -c --arg k "${d}_boot_s" --argjson v "${DOMU_BOOT_S[$d]}" --arg kv "${d}_vcpus" \
                --argjson nv "$n" '. + {($k): $v, ($kv): $nv}')
            [ "$n" = "$DOMU_VCPUS" ] || why+="$d's kernel sees $n vCPU(s), not $DOMU_VCPUS; "
        else why+="${DOMU_WHY[$d]}; "; fi
    done
    metrics "$m"
    [ -z "$why" ] || { fail "$why"; return 1; }
}

scn_kmod_load() {
    need domU1 || return 1
    # enable=0: every socket stays on TCP, so the baseline that follows is TCP's whatever the module does
    agent "$D1" 'insmod /lib/fastivc/fastivc.ko enable=0 && dmesg | grep "fastivc: version" && rmmod fastivc' > "$OUT/kmod.txt"
    local rc=$?; cat "$OUT/kmod.txt"
    [ $rc -eq 0 ] || { fail "fastivc.ko did not load and log on $(agent "$D1" uname -r)"; return 1; }
    metrics "$(jq -cn --arg line "$(grep -m1 'fastivc: version' "$OUT/kmod.txt")" '{loaded: true, log: $line}')"
}

# bulk CLIENT_HOST(dom0|IP) SERVER_IP [ivcbench args...]: BULK_BYTES in 64 KiB writes
bulk() { bulk_n "$1" "$2" "$BULK_BYTES" 65536 "${@:3}"; }

# bulk_n CLIENT_HOST(dom0|IP) SERVER_IP BYTES MSG_SIZE [ivcbench args...]
bulk_n() {
    local client=$1 server=$2 bytes=$3 msg=$4; shift 4
    local f="$OUT/$SCENARIO.out" rc runs; runs=$(stream_runs_for "$msg")
    if [ "$client" = dom0 ]; then
        bench_runs "$f" "$runs" throughput_MBps ivcbench stream --host "$server" --bytes "$bytes" --msg-size "$msg" \
            --timeout 240 "$@"; rc=$?
    else
        bench_runs "$f" "$runs" throughput_MBps agent "$client" ivcbench stream --host "$server" --bytes "$bytes" \
            --msg-size "$msg" --timeout 240 "$@"; rc=$?
    fi
    bench_stream_result "$f" $rc "$bytes"
}

# block_run CLIENT_IP SERVER_IP BYTES COUNT: COUNT connections one after the other, each one block of BYTES,
# verified; sets BLOCK_RESULT (the metrics: conns_per_s is COUNT over the whole run, throughput_MBps the blocks')
BLOCK_PORT=7004   # the domUs' --serial ivcbench server (domU/init): no fork and exit per connection, as netperf's TCP_CRR
block_run() {
    local f="$OUT/$SCENARIO.out" rc
    # within the runner's 300 s without a marker, so that a stuck run still reports (and shows its diagnostics)
    AGENT_TIMEOUT=240 agent "$1" ivcbench block --host "$2" --port "$BLOCK_PORT" --bytes "$3" --count "$4" --timeout 60 > "$f"; rc=$?
    cat "$f"
    jq -e . "$f" >/dev/null 2>&1 || { fail "ivcbench printed no JSON (exit $rc)"; return 1; }
    [ "$rc" -eq 0 ] && jq -e --argjson n "$4" '.verified == true and .count == $n' "$f" >/dev/null \
        || { fail "ivcbench block exit $rc: $(jq -r '.error // "not verified"' "$f")"; return 1; }
    BLOCK_RESULT=$(jq -c '{conns_per_s: (.count / .seconds * 10 | round / 10), throughput_MBps, block_us_p50,
        block_us_p90, count, bytes, seconds}' "$f")
}
scn_block() { block_run "$D1" "$D2" "$1" "$2" && metrics "$BLOCK_RESULT"; }

rr() { # rr CLIENT_IP SERVER_IP MSG_SIZE
    local f="$OUT/$SCENARIO.out" rc
    bench_runs "$f" "$BENCH_RUNS" rr_per_s agent "$1" ivcbench rr --host "$2" --msg-size "$3" --seconds "$RR_SECONDS" \
        --warmup 100; rc=$?
    bench_rr_result "$f" $rc
}

# pipeline CLIENT_IP SERVER_IP MSG_SIZE COUNT: one pipelined burst (requests client -> server, answers back)
pipeline() {
    local f="$OUT/$SCENARIO.out" rc
    AGENT_TIMEOUT=$((PIPELINE_TIMEOUT + 30)) agent "$1" ivcbench pipeline --host "$2" --msg-size "$3" --count "$4" \
        --warmup "$PIPELINE_WARMUP" --timeout "$PIPELINE_TIMEOUT" > "$f"; rc=$?
    bench_pipeline_result "$f" $rc "$4"
}

# The memory-copy reference (ivcbench memcpy): one memcpy per byte, 64 KiB pieces into a 1 MiB ring (the tunnel's
# default size), inside domU1. The ceiling of one side of a tunnel, which copies each byte twice.
scn_memcpy() {
    need domU1 || return 1
    local f="$OUT/$SCENARIO.out" rc
    agent "$D1" ivcbench memcpy --bytes "$MEMCPY_BYTES" --msg-size 65536 > "$f"; rc=$?
    cat "$f"
    jq -e . "$f" >/dev/null 2>&1 || { fail "ivcbench printed no JSON (exit $rc)"; return 1; }
    metrics "$(jq -c '{throughput_MBps, bytes, seconds, msg_size_B: .msg_size, ring_size_B: .ring_size, verified}
        | with_entries(select(.value != null))' "$f")"
    [ "$rc" -eq 0 ] && jq -e '.verified == true and .throughput_MBps > 0' "$f" >/dev/null \
        || { fail "ivcbench memcpy exit $rc: the ring does not hold the stream's last bytes"; return 1; }
}

# The system-call reference: 1-byte read/write pairs from /dev/zero to /dev/null (dd bs=1) in a domU, the floor under
# any path that moves one byte per call (stream, 1 B writes): a PV guest's system call goes through Xen, and under TCG
# that is most of a 1-byte send's cost. one_byte_writes_MBps: one byte per call, the ceiling of such a stream.
SYSCALL_COUNT=200000
scn_syscall() {
    need domU1 || return 1
    local out t0 t1 s
    out=$(agent "$D1" "t0=\$(cut -d' ' -f1 /proc/uptime); dd if=/dev/zero of=/dev/null bs=1 count=$SYSCALL_COUNT 2>/dev/null; t1=\$(cut -d' ' -f1 /proc/uptime); echo \$t0 \$t1") \
        || { fail "dd in $D1 failed"; return 1; }
    echo "$out"
    read -r t0 t1 <<< "$out"
    s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    awk -v s="$s" 'BEGIN { exit !(s > 0) }' || { fail "no time measured ($out)"; return 1; }
    metrics "$(jq -cn --argjson n "$SYSCALL_COUNT" --argjson s "$s" \
        '{calls: (2 * $n), seconds: $s, call_us: ($s / (2 * $n) * 1e6 * 100 | round / 100),
          one_byte_writes_MBps: ((2 * $n / $s) / 1e6 * 1000 | round / 1000)}')"
}

# The FTP client's floor: what ftpget does with every byte it receives, without the network. busybox's ftpget moves
# the data connection into its file with sendfile(), and the file is in tmpfs (scn_ftp_get), so each byte is copied
# once into a freshly allocated tmpfs page: dd writes FTP_BYTES of zeros there in 64 KiB pieces, in the same domU.
# ftp_ceiling in the ratios is this rate over TCP's FTP rate: the most any path could gain over TCP in that test.
scn_ftp_floor() {
    need domU1 || return 1
    local out t0 t1 s sz
    out=$(agent "$D1" "rm -f /tmp/floor.bin; t0=\$(cut -d' ' -f1 /proc/uptime); dd if=/dev/zero of=/tmp/floor.bin bs=65536 count=$((FTP_BYTES >> 16)) 2>/dev/null; t1=\$(cut -d' ' -f1 /proc/uptime); sz=\$(wc -c < /tmp/floor.bin); rm -f /tmp/floor.bin; echo \$t0 \$t1 \$sz") \
        || { fail "dd in $D1 failed"; return 1; }
    echo "$out"
    read -r t0 t1 sz <<< "$out"
    [ "$sz" = "$FTP_BYTES" ] || { fail "dd wrote ${sz:-nothing} of $FTP_BYTES bytes into $D1's /tmp"; return 1; }
    s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    awk -v s="$s" 'BEGIN { exit !(s > 0) }' || { fail "no time measured ($out)"; return 1; }
    metrics "$(jq -cn --argjson b "$FTP_BYTES" --argjson s "$s" \
        '{bytes: $b, seconds: $s, throughput_MBps: (($b / $s / 1e6) * 100 | round / 100)}')"
}

scn_iperf3() {
    need domU1 domU2 || return 1
    local f="$OUT/iperf3.json" rc
    agent "$D1" iperf3 -c "$D2" -n 64M -J > "$f"; rc=$?
    jq -c '.end.sum_received // .error' "$f" 2>/dev/null || cat "$f"
    jq -e '.end.sum_received.bytes' "$f" >/dev/null 2>&1 || { fail "iperf3 exit $rc: $(jq -r '.error // "no result"' "$f" 2>/dev/null)"; return 1; }
    metrics "$(jq -c '{throughput_MBps: ((.end.sum_received.bits_per_second / 8e6) * 100 | round / 100),
        bytes: .end.sum_sent.bytes, bytes_received: .end.sum_received.bytes, seconds: .end.sum_received.seconds,
        retransmits: (.end.sum_sent.retransmits // 0)}' "$f")"
    # iperf3 -n counts bytes sent; the receiver's sum can end a few packets short of its last interval.
    jq -e '.end.sum_sent.bytes >= 67108864 and .end.sum_received.bytes > 0' "$f" >/dev/null \
        || { fail "iperf3 did not send 64 MiB"; return 1; }
}

scn_scp() {
    need domU1 domU2 || return 1
    local bytes=$((64 << 20)) t0 sum1 sum2
    agent "$D1" "head -c $bytes /dev/urandom > /tmp/scp.bin && sha256sum /tmp/scp.bin" > "$OUT/scp.src" || { fail "cannot make the test file"; return 1; }
    sum1=$(cut -d' ' -f1 "$OUT/scp.src")
    t0=$(now)
    agent "$D1" scp -q /tmp/scp.bin "$D2:/tmp/scp.bin"; local rc=$?
    local secs; secs=$(elapsed "$t0")
    sum2=$(agent "$D2" sha256sum /tmp/scp.bin | cut -d' ' -f1)
    agent "$D1" rm -f /tmp/scp.bin; agent "$D2" rm -f /tmp/scp.bin
    [ $rc -eq 0 ] || { fail "scp failed (exit $rc)"; return 1; }
    echo "sent $sum1 received $sum2 in $secs s"
    metrics "$(jq -cn --argjson b $bytes --argjson s "$secs" --arg a "$sum1" --arg c "$sum2" \
        '{bytes: $b, seconds: $s, throughput_MBps: (($b / $s / 1e6) * 100 | round / 100), sha256_match: ($a == $c)}')"
    [ -n "$sum1" ] && [ "$sum1" = "$sum2" ] || { fail "sha256 differs after scp"; return 1; }
}

# tcpsem's semantics checks over plain TCP: the reference the tunnel run is held to.
scn_tcpsem() {
    need domU1 domU2 || return 1
    local f="$OUT/tcpsem-tcp.json" rc
    agent "$D2" "pidof tcpsem >/dev/null || (tcpsem server --port 7005 > /var/log/tcpsem.log 2>&1 &)"
    sleep 1
    local ut0 ut1 sa0 sa1
    ut0=$(tcpsem_server_fails "$D2" user_timeout); sa0=$(tcpsem_server_fails_all "$D2")
    # no module loaded yet: ulp_slot must find plain TCP, and kTLS and a sockmap must take the socket
    agent "$D1" tcpsem client --host "$D2" --port 7005 --timeout 60 --expect-ulp none > "$f"; rc=$?
    jq -r '.checks[] | "\(if .pass then "ok  " else "FAIL" end) \(.name): \(.detail)"' "$f" 2>/dev/null || cat "$f"
    sleep 3 # user_timeout's server role ends about 12 s after its check began
    ut1=$(tcpsem_server_fails "$D2" user_timeout)
    metrics "$(jq -c --argjson u "$(( ${ut1:-0} - ${ut0:-0} ))" '{checks_passed: .passed, checks_failed: .failed, server_role_failures: $u}' "$f" 2>/dev/null || echo '{}')"
    jq -e '.failed == 0 and .passed > 0' "$f" >/dev/null 2>&1 \
        || { fail "$(jq -r '[.checks[] | select(.pass | not) | .name] | join(", ")' "$f" 2>/dev/null || echo "no result, exit $rc") failed"; return 1; }
    [ "${ut1:-0}" -eq "${ut0:-0}" ] || { agent "$D2" "grep ': user_timeout: ' /var/log/tcpsem.log | tail -2"; fail "user_timeout's server did not see the connection end after the client timed out"; return 1; }
    sa1=$(tcpsem_server_fails_all "$D2")
    [ "${sa1:-0}" -eq "${sa0:-0}" ] || { agent "$D2" "grep '^tcpsem server: ' /var/log/tcpsem.log | tail -$(( ${sa1:-0} - ${sa0:-0} ))"
        fail "$(( ${sa1:-0} - ${sa0:-0} )) server roles failed (above) although their clients passed"; return 1; }
}

scn_bulk_domU_domU()   { need domU1 domU2 || return 1; bulk "$D1" "$D2"; }
scn_bulk_small()       { need domU1 domU2 || return 1; bulk_n "$D1" "$D2" "$1" "$2"; }
scn_ftp_tcp()          { need domU1 domU2 || return 1; scn_ftp_get "$D1" "$D2"; }
scn_bulk_dom0_domU()   { need domU2 || return 1; bulk dom0 "$D2"; }
scn_bulk_domU_dom0()   { need domU2 || return 1; bulk dom0 "$D2" --direction recv; }
scn_bulk_loopback()    { need domU1 || return 1; bulk "$D1" 127.0.0.1; }
scn_rr_domU_domU()     { need domU1 domU2 || return 1; rr "$D1" "$D2" "$1"; }
scn_rr_loopback()      { need domU1 || return 1; rr "$D1" 127.0.0.1 1; }
scn_pipeline()         { need domU1 domU2 || return 1; pipeline "$D1" "$D2" "$1" "$2"; }

run_baseline_scenarios() {
    run_scenario boot-xen-dom0-domUs scn_boot
    run_scenario kmod-load-domU scn_kmod_load
    run_scenario bulk-64KiB-domU-domU-tcp scn_bulk_domU_domU
    run_scenario bulk-4KiB-domU-domU-tcp scn_bulk_small $((16 << 20)) 4096
    run_scenario bulk-1B-domU-domU-tcp scn_bulk_small $((128 << 10)) 1
    run_scenario rr-1B-domU-domU-tcp scn_rr_domU_domU 1
    run_scenario rr-4KiB-domU-domU-tcp scn_rr_domU_domU 4096
    run_scenario rr-64KiB-domU-domU-tcp scn_rr_domU_domU 65536
    run_scenario pipeline-64B-domU-domU-tcp scn_pipeline 64 "$PIPELINE_COUNT"
    run_scenario pipeline-4KiB-domU-domU-tcp scn_pipeline 4096 "$PIPELINE_COUNT"
    run_scenario bulk-64KiB-dom0-domU-tcp scn_bulk_dom0_domU
    run_scenario bulk-64KiB-domU-dom0-tcp scn_bulk_domU_dom0
    run_scenario bulk-64KiB-domU-loopback-tcp scn_bulk_loopback
    run_scenario rr-1B-domU-loopback-tcp scn_rr_loopback
    run_scenario memcpy-64KiB-domU scn_memcpy
    run_scenario syscall-1B-domU scn_syscall
    run_scenario ftp-floor-64MiB-domU scn_ftp_floor
    run_scenario iperf3-domU-domU-tcp scn_iperf3
    run_scenario scp-64MiB-domU-domU-tcp scn_scp
    run_scenario ftp-64MiB-domU-domU-tcp scn_ftp_tcp
    run_scenario tcpsem-domU-domU-tcp scn_tcpsem
    run_scenario churn-domU-domU-tcp scn_block 1024 "$CHURN_COUNT"
    run_scenario block-64KiB-domU-domU-tcp scn_block 65536 "$BLOCK_COUNT_64KiB"
    run_scenario block-1MiB-domU-domU-tcp scn_block 1048576 "$BLOCK_COUNT_1MiB"
}
