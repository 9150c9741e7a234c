# Helpers for the lab scripts that run inside dom0 (bash). They speak the marker protocol the host's runner reads
# from the serial console (lab/README.md): every line the host must see starts with "@@FASTIVC ".

LAB=${LAB:-/lab}
OUT=${OUT:-/tmp/lab-out}       # per-scenario files: NAME.log, NAME.json (metrics), NAME.reason
mkdir -p "$OUT"

mark() { echo "@@FASTIVC $*"; }

# Powers the lab machine off (dom0 has no init system; Xen then shuts the machine down and QEMU exits).
# The console is drained first: hvc output still in flight when the machine stops would be lost.
power_off() { sync; sleep 5; busybox poweroff -f; echo o > /proc/sysrq-trigger; sleep 10; }

# emit_result NAME true|false METRICS_JSON [REASON]
emit_result() {
    jq -cn --arg n "$1" --argjson p "$2" --argjson m "${3:-{\}}" --arg r "${4:-}" \
        '{name: $n, pass: $p, metrics: $m} + (if $r == "" then {} else {reason: $r} end)' | sed 's/^/@@FASTIVC result /'
}

# emit_log NAME FILE: ships FILE to the host as build/lab/logs/NAME.log
emit_log() {
    mark log-begin "$1"
    [ -f "$2" ] && tr -d '\r' < "$2" | sed 's/^@@FASTIVC /@@fastivc /'
    echo
    mark log-end "$1"
}

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# agent HOST CMD...: runs CMD (one shell command line, as `sh -c` runs it) inside the domU at HOST, bounded by
# $AGENT_TIMEOUT seconds. In the lab through the domU's lab-agent. `fastivc bench run --remote` (remote/bench.sh) sets
# AGENT_VIA=ssh (or agent, or a transport of its own for its tests, the function agent_$AGENT_VIA), AGENT_LOGIN[HOST]
# (the ssh destination of an address), AGENT_SSH_OPTS, AGENT_BIN (lab-agent) and AGENT_PREFIX (shell code run before
# CMD: the PATH with its copy of ivcbench).
declare -gA AGENT_LOGIN
agent() {
    local host=$1; shift
    [ -n "${AGENT_PREFIX:-}" ] && set -- "$AGENT_PREFIX$*"
    case ${AGENT_VIA:-agent} in
        agent) "${AGENT_BIN:-$LAB/bin/lab-agent}" run --host "${AGENT_LOGIN[$host]:-$host}" --timeout "${AGENT_TIMEOUT:-300}" \
                   --connect-timeout 10 -- "$@" ;;
        # -n: never read the caller's stdin; --foreground: ssh stays in this process group (a stop reaches it)
        ssh) timeout --foreground -k 5 "${AGENT_TIMEOUT:-300}" \
                 ssh -n "${AGENT_SSH_OPTS[@]}" "${AGENT_LOGIN[$host]:-$host}" -- "$*" ;;
        *) "agent_$AGENT_VIA" "$host" "$@" ;;
    esac
}

# hardware_json RUN [NAME=ADDR...]: the machine the numbers come from, as one JSON object (results.json's
# source.hardware, tui/src/bench/results.ts): this dom0's CPU model, Xen's view of the host (`xl info`), dom0's
# kernel, vCPUs and memory, and each domU's kernel, vCPUs and memory, asked through agent. RUN: lab or remote.
# What cannot be read is null.
hardware_json() {
    local run=$1 xi cpu d name addr info doms='[]'
    shift
    xi=$(xl info 2>/dev/null)
    cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
    [ -n "$cpu" ] || cpu=$(lscpu 2>/dev/null | awk -F': *' '/^Model name/ { print $2; exit }')
    for d in "$@"; do
        name=${d%%=*} addr=${d#*=}
        info=$(agent "$addr" 'uname -r; grep -c ^processor /proc/cpuinfo; awk '"'"'/^MemTotal:/ { print int($2 / 1024) }'"'"' /proc/meminfo' \
            < /dev/null 2>/dev/null | tr -d '\r')
        doms=$(jq -c --arg n "$name" --arg a "$addr" --arg i "$info" \
            '. + [($i | split("\n")) as $l | {name: $n, addr: $a, kernel: ($l[0] // "" | if . == "" then null else . end),
                  vcpus: ($l[1] // "" | tonumber? // null), memory_MiB: ($l[2] // "" | tonumber? // null)}]' <<< "$doms")
    done
    jq -cn --arg run "$run" --arg cpu "$cpu" --arg xi "$xi" --arg k "$(uname -r)" \
        --arg v "$(grep -c ^processor /proc/cpuinfo 2>/dev/null)" \
        --arg m "$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo 2>/dev/null)" --argjson doms "$doms" '
        def nul: if . == "" then null else . end;
        def num: tonumber? // null;
        ($xi | split("\n") | map(capture("^(?<k>[a-z_]+)\\s*:\\s*(?<v>.*)$")? // empty) | map({(.k): (.v | sub("\\s+$"; ""))})
            | add // {}) as $x
        | {run: $run, cpu_model: ($cpu | nul), xen_version: $x.xen_version, nr_cpus: ($x.nr_cpus | num),
           cores_per_socket: ($x.cores_per_socket | num), threads_per_core: ($x.threads_per_core | num),
           cpu_mhz: ($x.cpu_mhz | num), total_memory_MiB: ($x.total_memory | num), virt_caps: $x.virt_caps,
           xen_caps: $x.xen_caps, dom0_kernel: $k, dom0_vcpus: ($v | num), dom0_memory_MiB: ($m | num), domUs: $doms}'
}

# run_scenario NAME FUNCTION [ARGS...]
# FUNCTION writes its metrics (a JSON object) to $OUT/NAME.json and returns 0 for pass; on failure it writes the
# reason to $OUT/NAME.reason. Its output goes to $OUT/NAME.log, which is shipped to the host.
scenario_selected() { [ -z "${ONLY:-}" ] || [ "$1" = boot-xen-dom0-domUs ] || [[ $1 =~ $ONLY ]]; }

run_scenario() {
    local name=$1 fn=$2; shift 2
    scenario_selected "$name" || return 0
    local log="$OUT/$name.log" rc reason metrics
    mark phase scenario-start "$name"
    rm -f "$OUT/$name.json" "$OUT/$name.reason"
    SCENARIO=$name "$fn" "$@" > "$log" 2>&1; rc=$?
    metrics=$(cat "$OUT/$name.json" 2>/dev/null); [ -n "$metrics" ] || metrics='{}'
    echo "$metrics" | jq -e 'type == "object"' >/dev/null 2>&1 || metrics='{}'
    reason=$(cat "$OUT/$name.reason" 2>/dev/null)
    if [ $rc -ne 0 ] && [ -z "$reason" ]; then reason="exit status $rc; see log"; fi
    emit_log "$name" "$log"
    if [ $rc -eq 0 ]; then emit_result "$name" true "$metrics"
    else emit_result "$name" false "$metrics" "$reason"; fi
}

# Inside a scenario function: fail REASON; metrics JSON
fail() { echo "$*" > "$OUT/$SCENARIO.reason"; echo "FAIL: $*"; return 1; }
# metrics JSON: the scenario's metrics. A value that is null (a jq lookup that found nothing: a point that did not
# measure) is left out; the protocol takes scalars only, and the scenario's own checks say what is missing.
metrics() {
    local m
    m=$(printf '%s' "$1" | jq -c 'if type == "object" then with_entries(select(.value != null)) else . end' 2>/dev/null) \
        || m=$1
    echo "$m" > "$OUT/$SCENARIO.json"; echo "metrics: $m"
}

# Streams of 4 KiB writes and more, and round trips, are measured BENCH_RUNS times in a row on both paths (TCP and
# tunnel alike) and the run with the median rate is reported, with the lowest and highest: one transfer of a fraction of
# a second under TCG can be slowed 2x by the host. 1-byte streams take 10-20 s each and run once.
BENCH_RUNS=3
# bench_runs FILE RUNS KEY CMD...: runs the ivcbench command CMD (stream or rr) RUNS times, each result in FILE.<i>,
# and leaves in FILE the result with the median KEY plus runs, KEY_min and KEY_max. The first run that fails (exit
# code, or not verified) is left in FILE as it is, and its exit code returned.
bench_runs() {
    local f=$1 runs=$2 key=$3 i rc; shift 3
    for i in $(seq 1 "$runs"); do
        "$@" > "$f.$i"; rc=$?
        if [ "$rc" -ne 0 ] || ! jq -e '.verified == true' "$f.$i" >/dev/null 2>&1; then
            cp "$f.$i" "$f"; return "$rc"
        fi
    done
    jq -s --arg k "$key" 'sort_by(.[$k]) as $r | $r[(length - 1) / 2 | floor]
        + {runs: ($r | length), ($k + "_min"): $r[0][$k], ($k + "_max"): $r[-1][$k]}' \
        $(for i in $(seq 1 "$runs"); do echo "$f.$i"; done) > "$f"
}
# stream_runs_for MSG_SIZE: how many runs a stream of MSG_SIZE writes gets (BENCH_RUNS, or 1 below 4 KiB)
stream_runs_for() { if [ "$1" -ge 4096 ]; then echo "$BENCH_RUNS"; else echo 1; fi; }

# tcpsem_server_fails HOST CHECK: failures of CHECK's server role logged by HOST's tcpsem server (a role whose
# verdict cannot reach the client, as user_timeout's once the client timed out, reports only there)
tcpsem_server_fails() { agent "$1" "grep -c ': $2: ' /var/log/tcpsem.log || true" | tail -1; }
# tcpsem_server_fails_all HOST: every failed server role so far (the client of a check does not see them all)
tcpsem_server_fails_all() { agent "$1" "grep -c '^tcpsem server: ' /var/log/tcpsem.log || true" | tail -1; }
