#!/bin/bash
# `fastivc bench run --remote DOMU1,DOMU2`: the lab's experiments on a real Xen host. tui/src/bench/remote.ts runs
# this on the dom0 with its settings in the environment and reads the marker protocol (lab/runner/README.md) from
# stdout, as it reads the lab's serial console. The sweeps are lab/guest/scenarios/experiments.sh, sourced unchanged
# (with the helpers of tunnel.sh and lib.sh it uses); only `agent` changes: the domUs are reached by ssh (or by a
# lab-agent installed by hand) instead of the lab's agent, and the addresses measured between are the domUs' own.
#
# Order: one setup step (remote-setup: reach both domUs, fastivc.ko loaded in each, their addresses, ivcbench copied
# into a temporary folder in each, an ivcbench server on the second, both addresses in the DEM's table), a `versions`
# marker with the hardware, the points (bench.<exp>.<series>.<x>.r<rep>, as in the lab), then the clean-up: the
# module's parameters as they were, our ivcbench server stopped, the temporary folders removed, ssh's connections
# closed. A stop (SIGTERM/SIGINT) cleans up the same way. "done" ends a run that got that far.
# When dom0 runs fastivc.ko too, the ssh connections to the domUs are tunnels like any other: a few KiB of domU1's
# replies a point then count in its tunnel bytes (a tcp point must still create no tunnel; the checks allow for it).
#
# Environment (fastivc bench run sets it; tui/src/bench/remote.ts, remoteCommand):
#   FASTIVC_BENCH_DOMUS        "DOMU1 DOMU2": [user@]host each for ssh (the user must be root: the experiments write
#                              /sys/module/fastivc/parameters), host for the agent
#   FASTIVC_BENCH_VIA          ssh (default) or agent (a lab-agent serving on port 7070 in each domU)
#   FASTIVC_BENCH_SSH_KEY      ssh's identity file (optional)
#   FASTIVC_BENCH_ADDRS        "ADDR1 ADDR2": the domUs' addresses the experiments connect to (optional). Default: the
#                              host part when it is an IPv4 address, else the first global IPv4 address the domU
#                              reports (`ip -o -f inet addr show scope global`)
#   FASTIVC_BENCH_EXPERIMENTS  fig10,fig12,rtt,geom,geomrr (fig11 is lab-only: refused)
#   FASTIVC_BENCH_REPEAT, FASTIVC_BENCH_QUICK   repetitions, quick (1 or 0)
#   FASTIVC_BENCH_IVCBENCH     the ivcbench copied to the domUs (default <app>/build/bench/ivcbench)
#   FASTIVC_BENCH_LAB_AGENT    lab-agent for --via agent (default <app>/build/bench/lab-agent, else on the PATH)
#   FASTIVC_BENCH_FASTIVC      how to run fastivc here, one word per line (default fastivc)
#   AGENT_TIMEOUT              seconds any one remote command may take (default 300)
#   FASTIVC_BENCH_FAKE_DOMUS   tests only (test/bench/remote.test.ts): a folder; domU HOST is its subfolder HOST on
#                              this machine, commands run there with /proc/fastivc/, /sys/module/fastivc/ and our
#                              temporary folder inside it (agent_fake)
APP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
GUEST=$APP/lab/guest
OUT=$(mktemp -d /tmp/fastivc-bench.XXXXXX) || {
    echo "@@FASTIVC phase remote-failed cannot create a temporary folder under /tmp"; echo "@@FASTIVC done"; exit 1; }
export OUT
. "$GUEST/lib.sh"

# ---- settings
read -r -a DOMUS <<< "${FASTIVC_BENCH_DOMUS:-}"
read -r -a ADDRS <<< "${FASTIVC_BENCH_ADDRS:-}"
AGENT_VIA=${FASTIVC_BENCH_VIA:-ssh}
[ -n "${FASTIVC_BENCH_FAKE_DOMUS:-}" ] && AGENT_VIA=fake
IVCBENCH=${FASTIVC_BENCH_IVCBENCH:-$APP/build/bench/ivcbench}
if [ -n "${FASTIVC_BENCH_FASTIVC:-}" ]; then mapfile -t FASTIVC <<< "$FASTIVC_BENCH_FASTIVC"; else FASTIVC=(fastivc); fi
AGENT_BIN=${FASTIVC_BENCH_LAB_AGENT:-$APP/build/bench/lab-agent}
[ -x "$AGENT_BIN" ] || AGENT_BIN=$(command -v lab-agent || echo lab-agent)
IVCBENCH_PORT=7001           # ivcbench's default port: experiments.sh's clients connect there
BLOCK_PORT=7004              # ... and there for one block per new connection (fig10): a --serial server, no fork each
declare -A DOMU_IP SAVED_PARAMS   # AGENT_LOGIN: lib.sh
# /tmp/fastivc-bench.<dom0's pid>.<random>: made with mode 700 in each domU (mkdir fails if it exists)
RDIR=/tmp/fastivc-bench.$$.$RANDOM$RANDOM
AGENT_SSH_OPTS=(-o BatchMode=yes -o ConnectTimeout=10 -o ControlMaster=auto -o "ControlPath=$OUT/ssh-%C"
                -o ControlPersist=120 -o ServerAliveInterval=15)
[ -n "${FASTIVC_BENCH_SSH_KEY:-}" ] && AGENT_SSH_OPTS+=(-i "$FASTIVC_BENCH_SSH_KEY" -o IdentitiesOnly=yes)

# The experiments, from the environment rather than from this host's kernel command line (BENCH_FROM_ENV).
BENCH=${FASTIVC_BENCH_EXPERIMENTS:-} BENCH_REPEAT=${FASTIVC_BENCH_REPEAT:-3} BENCH_QUICK=${FASTIVC_BENCH_QUICK:-}
BENCH_FROM_ENV=1
PLAN=()
. "$GUEST/scenarios/tunnel.sh"
. "$GUEST/scenarios/experiments.sh"
# Only the setup and the points: nothing of the lab's test plan.
PLAN=() ONLY='^(remote-setup|bench\..*)$'
while read -r name _; do [ -n "$name" ] && PLAN+=("$name"); done <<< "$(bench_points)"

# agent_fake HOST CMD...: tests only (FASTIVC_BENCH_FAKE_DOMUS): the "domU" HOST is a folder on this machine
agent_fake() {
    local login=${AGENT_LOGIN[$1]:-$1} root cmd
    root=$FASTIVC_BENCH_FAKE_DOMUS/${login#*@}
    shift
    [ -d "$root" ] || { echo "ssh: connect to host $login: no such fake domU" >&2; return 255; }
    cmd=$*
    cmd=${cmd//\/proc\/fastivc\//$root/proc/fastivc/}
    cmd=${cmd//\/sys\/module\/fastivc\//$root/sys/module/fastivc/}
    cmd=${cmd//$RDIR/$root$RDIR}
    (cd "$root" && FAKE_ROOT=$root timeout -k 5 "${AGENT_TIMEOUT:-300}" sh -c "$cmd")
}

# agent_put HOST FILE DEST: copies FILE to DEST in the domU at HOST (mode 755)
agent_put() {
    local host=$1 file=$2 dest=$3 chunk
    case $AGENT_VIA in
        ssh) timeout --foreground -k 5 "${AGENT_TIMEOUT:-300}" ssh "${AGENT_SSH_OPTS[@]}" "${AGENT_LOGIN[$host]:-$host}" \
                 -- "cat > $dest && chmod 755 $dest" < "$file" ;;
        fake) host=${AGENT_LOGIN[$host]:-$host}; host=$FASTIVC_BENCH_FAKE_DOMUS/${host#*@}
              cp "$file" "$host$dest" && chmod 755 "$host$dest" ;;
        *) # the lab-agent takes one command line of at most 64 KiB: base64 in lines of 48 KiB, each decoded alone
           base64 -w 49152 "$file" | while read -r chunk; do
               agent "$host" "echo $chunk | base64 -d >> $dest" < /dev/null || exit 1
           done && agent "$host" "chmod 755 $dest" < /dev/null ;;
    esac
}

# first_global_ipv4: the domU's own first global IPv4 address (run in the domU)
FIRST_IPV4='ip -o -f inet addr show scope global | awk '"'"'{ for (i = 1; i < NF; i++) if ($i == "inet") { sub("/.*", "", $(i + 1)); print $(i + 1); exit } }'"'"

need() { [ -n "${REMOTE_READY:-}" ] || { fail "the remote setup did not pass"; return 1; }; }

# remote_setup: everything the points need, checked with a reason that says what to do
remote_setup() {
    local i d spec host addr out params map missing
    [ "${#DOMUS[@]}" -eq 2 ] || { fail "expected two domUs in FASTIVC_BENCH_DOMUS, got '${FASTIVC_BENCH_DOMUS:-}'"; return 1; }
    case ",$BENCH," in *,fig11,*) fail "fig11 is lab-only (an FTP server on a virtual disk the lab attaches)"; return 1 ;; esac
    [ -n "$BENCH" ] || { fail "no experiment to run (FASTIVC_BENCH_EXPERIMENTS is empty)"; return 1; }
    [ -r "$IVCBENCH" ] || { fail "no ivcbench at $IVCBENCH to copy to the domUs (./build.sh bench builds it)"; return 1; }
    command -v jq >/dev/null || { fail "jq is needed on this host (apt-get install jq)"; return 1; }
    for i in 0 1; do
        spec=${DOMUS[$i]} host=${spec#*@}
        echo "== ${spec} (via $AGENT_VIA)"
        # Until the address is known, the domU is reached under its host name.
        AGENT_LOGIN[$host]=$spec
        # (into a file: ssh's master connection, started here, must not hold a pipe of ours open)
        agent "$host" 'echo fastivc-bench-ok; uname -n' < /dev/null > "$OUT/reach-$i.txt" 2>&1
        out=$(cat "$OUT/reach-$i.txt")
        [[ $out == *fastivc-bench-ok* ]] || { fail "cannot reach $spec via $AGENT_VIA: $(tail -n 2 <<< "$out" | tr '\n' ' ')"; return 1; }
        out=$(agent "$host" 'test -r /proc/fastivc/stats && echo loaded' < /dev/null 2>&1)
        [ "$out" = loaded ] || { fail "fastivc.ko is not loaded in $spec (no /proc/fastivc/stats): install the fastivc-dkms package there and run modprobe fastivc"; return 1; }
        params=$(agent "$host" 'cd /sys/module/fastivc/parameters && test -w enable && echo "$(cat enable) $(cat channels) $(cat channel_size) $(cat auto_bytes 2>/dev/null || echo -)"' < /dev/null 2>&1)
        [[ $params =~ ^[0-9YN]+\ [0-9]+\ [0-9]+\ [-0-9]+$ ]] || { fail "cannot write fastivc.ko's parameters in $spec (/sys/module/fastivc/parameters): log in as root"; return 1; }
        if [ -n "${ADDRS[$i]:-}" ]; then addr=${ADDRS[$i]}
        elif [[ $host =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]]; then addr=$host
        else
            addr=$(agent "$host" "$FIRST_IPV4" < /dev/null 2>/dev/null | tr -d '\r' | head -n 1)
            [[ $addr =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || { fail "$spec reports no global IPv4 address: give them with --addr IP1,IP2"; return 1; }
        fi
        echo "$spec: address $addr, fastivc.ko parameters (enable channels channel_size auto_bytes): $params"
        AGENT_LOGIN[$addr]=$spec
        SAVED_PARAMS[$addr]=$params
        DOMU_IP[domU$((i + 1))]=$addr
        # ivcbench in a folder of ours, first on the PATH of every command from now on
        agent "$addr" "mkdir -m 700 $RDIR" < /dev/null || { fail "cannot create $RDIR in $spec"; return 1; }
        MADE_RDIR+=("$addr")
        agent_put "$addr" "$IVCBENCH" "$RDIR/ivcbench" || { fail "cannot copy ivcbench to $spec:$RDIR"; return 1; }
    done
    D1=${DOMU_IP[domU1]} D2=${DOMU_IP[domU2]}
    [ "$D1" != "$D2" ] || { fail "both domUs have the address $D1: give them with --addr IP1,IP2"; return 1; }
    AGENT_PREFIX="PATH=$RDIR:\$PATH; export PATH; "
    for d in "$D1" "$D2"; do
        out=$(agent "$d" ivcbench version < /dev/null 2>&1)
        jq -e '.tool == "ivcbench"' <<< "$out" >/dev/null 2>&1 \
            || { fail "the copied ivcbench does not run in ${AGENT_LOGIN[$d]}: $(tr '\n' ' ' <<< "$out")"; return 1; }
    done
    # The server the clients in domU1 connect to (if the port is taken, e.g. by the lab's own, that one answers).
    agent "$D2" "cd $RDIR && { nohup ivcbench server --port $IVCBENCH_PORT > server.log 2>&1 < /dev/null & echo \$! > server.pid; }" < /dev/null
    agent "$D2" "cd $RDIR && { nohup ivcbench server --port $BLOCK_PORT --serial > server-serial.log 2>&1 < /dev/null & echo \$! > server-serial.pid; }" < /dev/null
    for i in 1 2 3 4 5 6 7 8 9 10; do
        out=$(agent "$D1" ivcbench rr --host "$D2" --port "$IVCBENCH_PORT" --msg-size 1 --count 3 --connect-timeout 5 --timeout 20 < /dev/null 2>&1)
        jq -e '.verified == true' <<< "$out" >/dev/null 2>&1 && break
        sleep 1
    done
    jq -e '.verified == true' <<< "$out" >/dev/null 2>&1 || {
        fail "ivcbench in ${AGENT_LOGIN[$D1]} cannot reach an ivcbench server at $D2:$IVCBENCH_PORT (TCP blocked?): $(tr '\n' ' ' <<< "$out" | tail -c 300)"
        return 1; }
    # The DEM's table (fastivc-sync keeps it): both addresses, else no tunnel; one sync pass if one is missing.
    map=$("${FASTIVC[@]}" map list --json 2>&1) || { fail "fastivc map list failed here (is this dom0, as root?): $(tail -n 1 <<< "$map")"; return 1; }
    missing=$(jq -r --arg a "$D1" --arg b "$D2" '[$a, $b] - [.[].addr] | join(" ")' <<< "$map" 2>/dev/null)
    if [ -n "$missing" ]; then
        echo "not in the DEM's table: $missing; one fastivc sync --once"
        "${FASTIVC[@]}" sync --once 2>&1 | tail -n 20
        map=$("${FASTIVC[@]}" map list --json 2>&1)
        missing=$(jq -r --arg a "$D1" --arg b "$D2" '[$a, $b] - [.[].addr] | join(" ")' <<< "$map" 2>/dev/null)
        [ -z "$missing" ] || { fail "$missing not in the DEM's table (fastivc map list) after fastivc sync --once: start the fastivc-sync service, or fastivc map set ADDR DOMID"; return 1; }
    fi
    echo "$map"
    DOMIDS=$(jq -c --arg a "$D1" --arg b "$D2" '[.[] | select(.addr == $a or .addr == $b)] | map({(.addr): .domid}) | add' <<< "$map")
    REMOTE_READY=1
    metrics "$(jq -cn --arg a "$D1" --arg b "$D2" --arg via "$AGENT_VIA" --argjson ids "$DOMIDS" \
        '{domU1: $a, domU2: $b, via: $via, domid1: $ids[$a], domid2: $ids[$b]}')"
}

# cleanup: the domUs as they were (module parameters, our server, our folder), ssh's connections closed
CLEANED=
MADE_RDIR=()
cleanup() {
    [ -n "$CLEANED" ] && return 0
    CLEANED=1
    local AGENT_TIMEOUT=30 AGENT_PREFIX= d p spec
    for d in "${MADE_RDIR[@]}"; do
        read -r -a p <<< "${SAVED_PARAMS[$d]:-}"
        if [ "${#p[@]}" -eq 4 ]; then
            agent "$d" "cd /sys/module/fastivc/parameters && echo ${p[0]} > enable && echo ${p[1]} > channels && echo ${p[2]} > channel_size && { [ '${p[3]}' = - ] || echo ${p[3]} > auto_bytes; }" < /dev/null
        fi
        agent "$d" "for f in server.pid server-serial.pid; do p=\$(cat $RDIR/\$f 2>/dev/null) && grep -q ivcbench /proc/\$p/cmdline 2>/dev/null && kill \$p; done; rm -rf $RDIR" < /dev/null
    done
    if [ "$AGENT_VIA" = ssh ]; then
        for spec in "${DOMUS[@]}"; do ssh "${AGENT_SSH_OPTS[@]}" -O exit "$spec" >/dev/null 2>&1; done
    fi
    rm -rf "$OUT"
}
trap 'cleanup; exit 143' TERM INT
trap cleanup EXIT

mark phase remote "${DOMUS[*]}" "via=$AGENT_VIA"
mark plan remote-setup "${PLAN[@]}"
run_scenario remote-setup remote_setup
if [ -z "${REMOTE_READY:-}" ]; then
    mark phase remote-failed "remote-setup: $(cat "$OUT/remote-setup.reason" 2>/dev/null || echo failed)"
    cleanup
    mark done
    exit 1
fi
mark versions "$(jq -cn --argjson h "$(hardware_json remote "domU1=$D1" "domU2=$D2")" \
    --arg k1 "$(agent "$D1" cat /proc/fastivc/stats < /dev/null 2>/dev/null | awk '$1 == "version" { print $2 }')" \
    --arg k2 "$(agent "$D2" cat /proc/fastivc/stats < /dev/null 2>/dev/null | awk '$1 == "version" { print $2 }')" \
    --arg ivcbench "$(agent "$D1" ivcbench version < /dev/null 2>/dev/null)" \
    --arg xen "$(xl info 2>/dev/null | awk -F': *' '/^xen_version/ { print $2 }')" --arg linux "$(uname -r)" \
    '{hardware: $h, xen: $xen, linux: $linux, ivcbench: $ivcbench, fastivc_ko: {domU1: $k1, domU2: $k2}}')"
run_bench
cleanup
mark done
