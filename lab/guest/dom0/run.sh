#!/bin/bash
# dom0's lab run: start the Xen toolstack, the bridge and the PV domUs, run the scenarios, ship logs, power off.
# Every wait is bounded; whatever happens, the run ends with "@@FASTIVC done" and a power-off.
export PATH=/lab/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LAB=/lab OUT=/tmp/lab-out
. /lab/lib.sh
. /lab/topology.sh

FAULT=
ONLY=       # fastivc.only=REGEX: run only the scenarios whose names match (the boot scenario always runs)
DEMO=       # fastivc.demo=SECONDS: bring the tunnels up, then stream ivctop snapshots of demo traffic
            # fastivc.domU_vcpus=N: vCPUs per domU instead of DOMU_VCPUS (topology.sh)
for a in $(cat /proc/cmdline); do
    case $a in
        fastivc.fault=*) FAULT=${a#*=} ;; fastivc.only=*) ONLY=${a#*=} ;; fastivc.demo=*) DEMO=${a#*=} ;;
        fastivc.domU_vcpus=*) DOMU_VCPUS=${a#*=} ;;
    esac
done
case $DOMU_VCPUS in ''|*[!0-9]*|0) DOMU_VCPUS=2 ;; esac
# The demo needs only what brings tunnels up; the scenarios are ./build.sh test's business.
[ -n "$DEMO" ] && [ -z "$ONLY" ] && ONLY='^(sync-ip-table-dom0|kmod-load-tunnel)$'
export ONLY

finish() {
    mark phase shutdown
    for d in "${!DOMU_IP[@]}"; do xl destroy "$d" >/dev/null 2>&1; done
    for d in "${!DOMU_IP[@]}"; do emit_log "console-$d" "/var/log/xen/console/guest-$d.log"; done
    # Only the tails: Xen drops console output it cannot send fast enough, and these are for reading, not parsing.
    xl dmesg 2>&1 | tail -n 300 > "$OUT/xl-dmesg.txt"; emit_log xl-dmesg "$OUT/xl-dmesg.txt"
    dmesg 2>&1 | tail -n 150 > "$OUT/dom0-dmesg.txt"; emit_log dom0-dmesg "$OUT/dom0-dmesg.txt"
    mark done
    power_off
}

die_early() { mark phase dom0-failed "$*"; finish; }

# ---- Xen toolstack (no init system: started by hand, in dependency order) ----
# The links udev would make: Xen's hotplug scripts lock with `stat /dev/stdin` (block-attach loops forever without it)
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
for i in 0:stdin 1:stdout 2:stderr; do [ -e "/dev/${i#*:}" ] || ln -s "/proc/self/fd/${i%%:*}" "/dev/${i#*:}"; done
modprobe xenfs && mount -t xenfs xenfs /proc/xen || die_early "cannot mount xenfs"
for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd bridge; do modprobe "$m" || die_early "modprobe $m"; done
# One queue per vif: with 2-vCPU domUs netfront opens one queue per vCPU, and in this TCG lab TCP then stalls for
# seconds at a time (request/response of 64 KiB over TCP fell from 30/s to 0.3/s, p50 3 s). The TCP baseline is
# the path the tunnel is compared with, so it gets the configuration that works here.
modprobe xen-netback max_queues="${NETBACK_QUEUES:-1}" || die_early "modprobe xen-netback"
mkdir -p /var/run/xen /var/lib/xen /var/log/xen/console /var/lib/xenstored /run/xenstored
/usr/lib/xen-4.17/bin/oxenstored --pid-file /run/xenstored.pid || die_early "oxenstored did not start"
i=0; until xenstore-ls / >/dev/null 2>&1; do i=$((i + 1)); [ $i -lt 100 ] || die_early "xenstore not answering"; sleep 0.1; done
/usr/lib/xen-4.17/bin/xen-init-dom0 || die_early "xen-init-dom0 failed"
/usr/lib/xen-4.17/bin/xenconsoled --log=guest --log-dir=/var/log/xen/console || die_early "xenconsoled"
ip link set lo up
ip link add "$BRIDGE" type bridge && ip addr add "$DOM0_IP/24" dev "$BRIDGE" && ip link set "$BRIDGE" up \
    || die_early "cannot create bridge $BRIDGE"

DOM0_UP_S=$(cut -d' ' -f1 /proc/uptime)
mark phase dom0-up
mark versions "$(jq -cn --arg xen "$(xl info | awk -F': ' '/^xen_version/ {print $2}')" \
    --arg xen_caps "$(xl info | awk -F': ' '/^xen_caps/ {print $2}')" \
    --arg xen_tools "$(dpkg-query -W -f='${Version}' xen-utils-4.17)" --arg linux "$(uname -r)" \
    --arg linux_build "$(cut -d' ' -f3- /proc/version)" --arg iperf3 "$(iperf3 --version | head -1)" \
    --arg ssh "$(ssh -V 2>&1)" --arg ivcbench "$(ivcbench version)" \
    '{xen: $xen, xen_caps: $xen_caps, xen_tools: $xen_tools, linux: $linux, linux_build: $linux_build,
      iperf3: $iperf3, openssh: $ssh, ivcbench: $ivcbench}')"

. /lab/scenarios/baseline.sh
. /lab/scenarios/apps.sh
. /lab/scenarios/dem.sh
. /lab/scenarios/tools.sh
. /lab/scenarios/install.sh
. /lab/scenarios/tunnel.sh
. /lab/scenarios/experiments.sh   # fastivc.bench=...: the experiments instead of the tests
if [ -n "$ONLY" ]; then
    kept=(); for n in "${PLAN[@]}"; do scenario_selected "$n" && kept+=("$n"); done; PLAN=("${kept[@]}")
fi
mark plan "${PLAN[@]}"

# ---- domUs: create them all, then wait for each agent ----
declare -A DOMU_UP DOMU_WHY DOMU_BOOT_S
create_domU() {
    local name=$1 ip=${DOMU_IP[$1]} mac=${DOMU_MAC[$1]} rdinit=/init
    [ "$FAULT" = "$name-noboot" ] && rdinit=/fault-injected-missing-init
    cat > "/tmp/$name.cfg" <<CFG
name = "$name"
type = "pv"
kernel = "/lab/domU/vmlinuz"
ramdisk = "/lab/domU/initrd.img"
extra = "console=hvc0 rdinit=$rdinit loglevel=4 fastivc.name=$name fastivc.ip=$ip"
memory = $DOMU_MEM_MB
vcpus = $DOMU_VCPUS
vif = [ 'bridge=$BRIDGE,ip=$ip,mac=$mac' ]
on_crash = "destroy"
CFG
    DOMU_T0[$name]=$(now)
    xl create "/tmp/$name.cfg" > "$OUT/xl-create-$name.log" 2>&1
}
declare -A DOMU_T0
for d in $DOMU_NAMES; do
    create_domU "$d" || { DOMU_WHY[$d]="xl create failed: $(tail -3 "$OUT/xl-create-$d.log" | tr '\n' ' ')"; }
done
for d in $DOMU_NAMES; do
    [ -n "${DOMU_WHY[$d]:-}" ] && continue
    deadline=$((SECONDS + DOMU_BOOT_TIMEOUT))
    while :; do
        if lab-agent wait --host "${DOMU_IP[$d]}" --timeout 2 >/dev/null 2>&1; then
            DOMU_UP[$d]=1; DOMU_BOOT_S[$d]=$(elapsed "${DOMU_T0[$d]}"); mark phase domU-up "$d"; break
        fi
        if ! xl domid "$d" >/dev/null 2>&1; then
            DOMU_WHY[$d]="$d died during boot (domain gone; see console-$d log)"; break
        fi
        if [ $SECONDS -ge $deadline ]; then
            DOMU_WHY[$d]="$d did not come up within $DOMU_BOOT_TIMEOUT s (no answer from its agent; see console-$d log)"
            break
        fi
    done
    [ -n "${DOMU_UP[$d]:-}" ] || mark phase domU-failed "$d" "${DOMU_WHY[$d]}"
done
# The machine the numbers come from (`fastivc bench`: results.json's source.hardware), as a remote run names it.
hw_up=(); for d in $DOMU_NAMES; do [ -n "${DOMU_UP[$d]:-}" ] && hw_up+=("$d=${DOMU_IP[$d]}"); done
hw=$(AGENT_TIMEOUT=30 hardware_json lab "${hw_up[@]}") && [ -n "$hw" ] && mark versions "$(jq -c '{hardware: .}' <<< "$hw")"

# need DOMAIN...: inside a scenario, fails it when a domU it uses is not up.
need() {
    local d
    for d in "$@"; do
        [ -n "${DOMU_UP[$d]:-}" ] || { fail "${DOMU_WHY[$d]:-$d is not up}"; return 1; }
    done
}

# The toolstack's part: the DEM learns which domain owns which address (fastivc map, as on a real host).
dem_fill_table > "$OUT/map-fill.log" 2>&1; DEM_FILL_RC=$?

run_baseline_scenarios
run_dem_scenarios
run_install_scenarios
run_tunnel_scenarios

# The demo: traffic between the domUs through tunnels while ivctop's snapshots go to the host over the console.
run_demo() {
    local secs=$1
    mark phase demo "$secs"
    # one line: the agent takes a command line, not a script
    ( agent "$D1" "end=\$((\$(date +%s) + $secs)); while [ \$(date +%s) -lt \$end ]; do ivcbench stream --host $D2 --bytes 256M --msg-size 65536 --timeout 120 >/dev/null; done" ) &
    local p1=$!
    ( agent "$D2" ivcbench rr --host "$D1" --msg-size 4096 --seconds "$secs" >/dev/null ) &
    local p2=$!
    timeout "$secs" ivctop --emit --interval 1000 2>"$OUT/demo-ivctop.err" | sed -u 's/^/@@FASTIVC ivctop /'
    wait $p1 $p2
    emit_log demo-ivctop "$OUT/demo-ivctop.err"
}
case $DEMO in ''|*[!0-9]*) ;; *) [ -n "${DOMU_UP[domU1]:-}" ] && [ -n "${DOMU_UP[domU2]:-}" ] && run_demo "$DEMO" ;; esac
finish
