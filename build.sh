#!/usr/bin/env bash
# fastivc build driver. Every output goes under build/; downloads are cached in build/downloads/.
# Each step is idempotent: it records a hash of its inputs in build/stamps/ and does nothing when they are unchanged.
#
#   ./build.sh deps     Debian and npm packages (apt-get update first), the lab kernel and headers
#   ./build.sh xen      Xen 4.17 from Debian's source package + xen-patches/series -> build/xen/{xen,xen.gz}
#   ./build.sh kmod     guest-kmod/ (and the lab's dem_hcall) against the lab kernel's headers -> build/kmod/*.ko
#   ./build.sh native   the node-addon-api addon -> native/build/Release/fastivc.node
#   ./build.sh ts       the TypeScript -> build/ts/
#   ./build.sh bench    the guest programs (ivcbench, lab-agent, dem-probe) -> build/bench/
#   ./build.sh debs     the packages a real host installs -> build/debs/ (packaging/: hypervisor, fastivc-dkms, tools)
#   ./build.sh lab      the lab images, from those packages -> build/lab/
#   ./build.sh lab-run  build, then boot the lab once and run its scenarios (options go to `fastivc lab run`)
#   ./build.sh demo     build everything, boot the lab, show the traffic
#   ./build.sh experiments [EXP...]  build, then `fastivc bench run` (default: every experiment, 3 repetitions)
#   ./build.sh test     build everything, host tests, then the lab end-to-end scenarios
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
B="$ROOT/build"
# shellcheck source=lab/versions.env
. "$ROOT/lab/versions.env"
export XEN_DEB_VERSION KERNEL_ABI DEBIAN_SUITE
JOBS=$(nproc)

. "$ROOT/scripts/build-lib.sh"

# ---- deps ----
APT_PACKAGES=(flex bison gcc g++ make python3 openssh-client qemu-system-x86 debootstrap cpio dpkg-dev xz-utils kmod busybox-static jq
              lintian systemd binutils "linux-headers-$KERNEL_ABI")

# A deb-src entry derived from the machine's own Debian sources (same URIs), for `apt-get source xen`.
ensure_deb_src() {
    local src=/etc/apt/sources.list.d/debian.sources out=/etc/apt/sources.list.d/fastivc-src.sources
    [ -f "$out" ] && return 0
    [ -f "$src" ] || die "no $src to derive a deb-src entry from"
    awk -v suite="$DEBIAN_SUITE" 'BEGIN { RS = ""; ORS = "" }
        $0 ~ ("Suites:[^\n]*" suite "([ \n]|$)") && /Types: deb/ {
            n = split($0, L, "\n")
            for (i = 1; i <= n; i++) {
                if (L[i] ~ /^#/) continue
                if (L[i] ~ /^Types:/) L[i] = "Types: deb-src"
                if (L[i] ~ /^Suites:/) L[i] = "Suites: " suite
                print L[i] "\n"
            }
            print "\n"; exit
        }' "$src" > "$out.tmp"
    [ -s "$out.tmp" ] || die "could not derive a deb-src entry from $src"
    mv "$out.tmp" "$out"
    APT_UPDATED=
}

APT_UPDATED=
apt_update_once() { [ -n "$APT_UPDATED" ] || { log "apt-get update"; apt-get update -q >/dev/null; APT_UPDATED=1; }; }

cmd_deps() {
    ensure_deb_src
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        apt_update_once
        log "apt-get install ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    fi
    local kdeb
    kdeb=$(ls "$B/downloads/kernel/linux-image-${KERNEL_ABI}_"*.deb 2>/dev/null | head -1 || true)
    if [ -z "$kdeb" ]; then
        apt_update_once
        log "download linux-image-$KERNEL_ABI"
        mkdir -p "$B/downloads/kernel"
        (cd "$B/downloads/kernel" && apt-get download -q "linux-image-$KERNEL_ABI" 2>&1 | grep -v unsandboxed || true)
        kdeb=$(ls "$B/downloads/kernel/linux-image-${KERNEL_ABI}_"*.deb 2>/dev/null | head -1) || die "kernel download failed"
    fi
    local h; h=$(inputs_hash "$kdeb")
    if ! stamp_fresh kernel "$h"; then
        log "unpack $(basename "$kdeb")"
        rm -rf "$B/kernel"; mkdir -p "$B/kernel"
        dpkg-deb -x "$kdeb" "$B/kernel/root"
        depmod -b "$B/kernel/root" "$KERNEL_ABI"
        cp "$B/kernel/root/boot/vmlinuz-$KERNEL_ABI" "$B/kernel/vmlinuz"
        stamp_write kernel "$h"
    fi
    h=$(inputs_hash "$ROOT/package.json" "$ROOT/package-lock.json")
    if [ ! -d "$ROOT/node_modules" ] || ! stamp_fresh npm "$h"; then
        log "npm ci"
        (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
        stamp_write npm "$h"
    fi
}

# ---- xen ----
cmd_xen() {
    local dl="$B/downloads/xen" dsc
    dsc="$dl/xen_${XEN_DEB_VERSION}.dsc"
    if [ ! -f "$dsc" ]; then
        ensure_deb_src; apt_update_once
        log "apt-get source xen=$XEN_DEB_VERSION"
        mkdir -p "$dl"
        (cd "$dl" && apt-get source -q --download-only "xen=$XEN_DEB_VERSION" 2>&1 | grep -v unsandboxed || true)
        [ -f "$dsc" ] || die "could not download the Xen source package $XEN_DEB_VERSION"
    fi
    local h; h=$(inputs_hash "$dsc" "$ROOT/xen-patches" "JOBS=$JOBS")
    if stamp_fresh xen "$h" && [ -f "$B/xen/xen" ]; then log "xen: up to date"; return 0; fi
    log "xen: unpack, apply xen-patches/series, build"
    rm -rf "$B/xen"; mkdir -p "$B/xen"
    # apt checked the .dsc against the signed Sources index; dpkg-source cannot check the inline signature here.
    dpkg-source -x "$dsc" "$B/xen/src" >/dev/null 2>&1 || die "cannot unpack $dsc"
    "$ROOT/xen-patches/scripts/apply-series.sh" "$B/xen/src"
    cp "$ROOT/xen-patches/xen.config" "$B/xen/src/xen/.config"
    make -s -C "$B/xen/src/xen" olddefconfig >/dev/null
    make -s -C "$B/xen/src/xen" -j"$JOBS" build > "$B/xen/build.log" 2>&1 \
        || { tail -40 "$B/xen/build.log" >&2; die "xen build failed (build/xen/build.log)"; }
    cp "$B/xen/src/xen/xen" "$B/xen/src/xen/xen.gz" "$B/xen/src/xen/xen-syms" "$B/xen/"
    stamp_write xen "$h"
}

# ---- guest kernel modules: fastivc.ko, and the lab's dem_hcall.ko (DEM hypercalls for dem-probe in a domU) ----
build_module() { # SOURCE_DIR NAME
    local kdir="/usr/src/linux-headers-$KERNEL_ABI" src=$1 name=$2
    [ -d "$kdir" ] || die "no headers for $KERNEL_ABI in $kdir (run ./build.sh deps)"
    local h; h=$(inputs_hash "$src" "KERNEL_ABI=$KERNEL_ABI")
    if stamp_fresh "kmod-$name" "$h" && [ -f "$B/kmod/$name.ko" ]; then return 0; fi
    log "kmod: $name.ko against $KERNEL_ABI"
    # Kbuild writes next to the sources, so build a copy under build/.
    rm -rf "$B/kmod/$name"; mkdir -p "$B/kmod"; cp -r "$src" "$B/kmod/$name"
    make -s -C "$kdir" M="$B/kmod/$name" modules > "$B/kmod/$name.log" 2>&1 \
        || { cat "$B/kmod/$name.log" >&2; die "$name.ko build failed"; }
    cp "$B/kmod/$name/$name.ko" "$B/kmod/"
    stamp_write "kmod-$name" "$h"
}
cmd_kmod() {
    build_module "$ROOT/guest-kmod" fastivc
    build_module "$ROOT/lab/dem-probe/kmod" dem_hcall
}

# ---- guest programs ----
cmd_bench() {
    make -s -C "$ROOT/lab/bench" OUT="$B/bench"
    make -s -C "$ROOT/lab/agent" OUT="$B/bench"
    make -s -C "$ROOT/lab/tcpsem" OUT="$B/bench"
    make -s -C "$ROOT/lab/dem-probe" OUT="$B/bench" XEN_PUBLIC="$B/xen/src/xen/include/public"
    make -s -C "$ROOT/experiments/ringbench" OUT="$B/experiments/bin"   # the host's, for the ring experiment
}

# ---- node addon and TypeScript ----
cmd_native() {
    local h; h=$(inputs_hash "$ROOT/native/src" "$ROOT/native/binding.gyp" "$B/xen/src/xen/include/public/evtmgr.h")
    if stamp_fresh native "$h" && [ -f "$ROOT/native/build/Release/fastivc.node" ]; then return 0; fi
    log "native: node-gyp rebuild"
    (cd "$ROOT" && FASTIVC_XEN_PUBLIC="$B/xen/src/xen/include/public" \
        npx node-gyp rebuild --directory native --nodedir=/usr --loglevel=error >/dev/null)
    stamp_write native "$h"
}
cmd_ts() { log "ts: tsc"; (cd "$ROOT" && npx tsc -p tsconfig.json); }

# ---- Debian packages (packaging/build-debs.sh), from the outputs of the steps above ----
build_debs() {
    cmd_bench; cmd_kmod
    "$ROOT/packaging/build-debs.sh"
}
cmd_debs() { cmd_deps; cmd_xen; cmd_native; cmd_ts; build_debs; }

# ---- lab images: the packages installed as a real host installs them (lab/images/build-images.sh) ----
cmd_lab() {
    build_debs
    "$ROOT/lab/images/build-images.sh"
}

build_all() { cmd_deps; cmd_xen; cmd_native; cmd_ts; cmd_lab; }

lab_run() { # extra args go to `fastivc lab run`
    node "$B/ts/tui/src/cli.js" lab run \
        --xen "$B/lab/xen" --kernel "$B/kernel/vmlinuz" --initrd "$B/lab/dom0.img" --disk "$B/lab/input.img" \
        --report "$B/lab/report.json" --logs "$B/lab/logs" "$@"
}

# Test totals across the suites, for the closing "N passed, N failed" line CI reads.
PASSED=0 FAILED=0
tally() { PASSED=$((PASSED + $1)); FAILED=$((FAILED + $2)); }
# suite NAME CMD...: runs a suite whose output ends with counts (ava's "N tests passed", or "N passed, M failed");
# a suite that fails without saying how many counts as one failure.
suite() {
    local name=$1; shift
    local out="$B/test-logs/$name.log" rc p f
    mkdir -p "$B/test-logs"
    "$@" 2>&1 | tee "$out"; rc=${PIPESTATUS[0]}
    p=$(grep -Eo '([0-9]+) (tests? )?passed' "$out" | tail -1 | grep -Eo '^[0-9]+' || true)
    f=$(grep -Eo '([0-9]+) (tests? )?failed' "$out" | tail -1 | grep -Eo '^[0-9]+' || true)
    p=${p:-0}; f=${f:-0}
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    tally "$p" "$f"
    return "$rc"
}
# The lab's scenarios, counted from its report.
lab_tally() {
    local r=$1
    if [ -f "$r" ]; then
        tally "$(jq '[.scenarios[] | select(.pass)] | length' "$r")" "$(jq '[.scenarios[] | select(.pass | not)] | length' "$r")"
    else tally 0 1; fi
}

# ./build.sh test's pass over the experiments: every lab sweep's code path, a few points each, in the test boot.
SMOKE_BENCH="fastivc.bench=fig10,fig11,fig12,rtt,geom,geomrr fastivc.bench_quick=1 fastivc.bench_repeat=1 fastivc.bench_with_tests=1"

cmd_test() {
    build_all
    local rc=0
    log "host tests: the DEM unit harness (the real common/evtmgr.c with shims)"
    suite xen-harness "$ROOT/test/xen/run.sh" || rc=1
    log "host tests: the tunnel protocol (guest-kmod/ivc_ring.h)"
    suite kmod-ring make -s -C "$ROOT/guest-kmod/tests" run OUT="$B/kmod-tests" || rc=1
    log "host tests: the Protocol Monitor's hooks end in tail calls (the module and the lab's DKMS build)"
    suite kmod-tailcalls "$ROOT/guest-kmod/tests/check-tailcalls.sh" "$B/kmod/fastivc.ko" "$B/lab/dkms/fastivc.ko" || rc=1
    log "host tests: ava"
    suite ava bash -c "cd '$ROOT' && npx ava" || rc=1
    log "packages: lintian, the systemd unit, install/remove in a Debian tree, the DKMS build for the lab kernel"
    suite packaging "$ROOT/packaging/check-debs.sh" || rc=1
    log "lab: fault injection (a domU that never comes up must fail its scenarios, within the timeout)"
    export -f lab_run; export B
    suite lab-fault "$ROOT/test/lab/fault-domU-noboot.sh" || rc=1
    log "host tests: the ring experiment, quick (experiments/ringbench between two processes)"
    suite bench-ring node "$B/ts/tui/src/cli.js" bench run ring --quick --repeat 1 --out "$B/experiments-smoke" || rc=1
    log "lab: end-to-end scenarios, and a quick pass of every lab experiment's points (fastivc bench)"
    # 2-vCPU domUs under TCG: the scenarios and the quick sweeps take 20-30 min here, past the runner's 1500 s default
    lab_run --dom0-cmdline-extra "$SMOKE_BENCH" --timeout-total 3000 || rc=1
    lab_tally "$B/lab/report.json"
    log "lab: the experiments' tables and plots from those points"
    node "$B/ts/tui/src/cli.js" bench report "$B/lab/report.json" --out "$B/experiments-smoke" > "$B/test-logs/bench-report.log" 2>&1 \
        || { cat "$B/test-logs/bench-report.log"; tally 0 1; rc=1; }
    [ $rc -eq 0 ] && log "all tests passed" || log "FAILED (see above; lab report: build/lab/report.json)"
    echo "fastivc: $PASSED passed, $FAILED failed"
    return $rc
}

cmd_demo() {
    build_all
    log "demo: booting the lab (Xen, dom0, two PV domUs), bringing tunnels up, then 60 s of traffic live in ivctop"
    lab_run --demo 60
}

# The experiments: `fastivc bench run` with the arguments given (experiment ids, --repeat N, --quick).
cmd_experiments() { build_all; (cd "$ROOT" && node "$B/ts/tui/src/cli.js" bench run "$@"); }

# Builds what is needed and boots the lab once; extra arguments go to `fastivc lab run` (e.g. --fault domU2-noboot).
cmd_lab_run() { build_all; lab_run "$@"; }

case "${1:-}" in
    deps|xen|kmod|native|ts|bench|debs|lab|test|demo|experiments) step=$1; shift; "cmd_$step" "$@" ;;
    lab-run) shift; cmd_lab_run "$@" ;;
    all) build_all ;;
    *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
