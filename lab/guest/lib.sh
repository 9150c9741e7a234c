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

# agent HOST CMD...: runs CMD inside the domU at HOST through its lab-agent, bounded by $AGENT_TIMEOUT seconds.
agent() {
    local host=$1; shift
    "$LAB/bin/lab-agent" run --host "$host" --timeout "${AGENT_TIMEOUT:-300}" --connect-timeout 10 -- "$@"
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
metrics() { echo "$1" > "$OUT/$SCENARIO.json"; echo "metrics: $1"; }
