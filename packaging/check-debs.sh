#!/usr/bin/env bash
# ./build.sh test's checks of build/debs (after ./build.sh lab, which built them and the builder tree):
#   - lintian reports nothing (each override in packaging/*/lintian-overrides says why)
#   - systemd-analyze verify accepts fastivc-sync.service as the package installs it
#   - `dkms build` of fastivc-dkms for the lab kernel, in the builder tree (a Debian tree with dkms and the headers)
#   - install and remove as the install guide does (`apt-get install ./X.deb`, `apt-get purge`), in the builder tree:
#     the hypervisor beside Debian's own, the tools with their service enabled, the module package; nothing left after
# Prints one line per check and "N passed, M failed".
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B="$ROOT/build"; L="$B/lab"; D="$B/debs"; C="$L/builder"
. "$ROOT/lab/versions.env"

PASSED=0 FAILED=0
check() { # NAME CMD...: one check; its output is shown only when it fails
    local name=$1 out; shift
    if out=$("$@" 2>&1); then PASSED=$((PASSED + 1)); echo "ok    $name"
    else FAILED=$((FAILED + 1)); echo "FAIL  $name"; echo "$out" | tail -25 | sed 's/^/      /'; fi
}
deb() { echo "$D/$(jq -r --arg p "$1" '.[$p].file' "$D/index.json")"; }
in_c() { DEBIAN_FRONTEND=noninteractive chroot "$C" "$@"; }
install_c() { # DEB...: apt-get install ./X.deb inside the builder tree
    local d args=(); mkdir -p "$C/tmp/debs"
    for d in "$@"; do cp "$d" "$C/tmp/debs/"; args+=("/tmp/debs/$(basename "$d")"); done
    in_c apt-get install -y -q --no-install-recommends "${args[@]}"
}
installed() { [ "$(in_c dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]; }

[ -f "$D/index.json" ] || { echo "no build/debs (./build.sh debs)"; echo "0 passed, 1 failed"; exit 1; }
[ -x "$C/usr/sbin/dkms" ] || { echo "no builder tree (./build.sh lab)"; echo "0 passed, 1 failed"; exit 1; }
HYP=$(deb xen-hypervisor-4.17-fastivc-amd64); TOOLS=$(deb fastivc-tools); DKMS=$(deb fastivc-dkms)
MVER=$(dpkg-deb -f "$DKMS" Version); MVER=${MVER%-*}

# node (the tools) reads /proc; the builder tree gets it for the checks only
mountpoint -q "$C/proc" || mount -t proc proc "$C/proc"
# The checks install these packages into the builder tree, which the lab's DKMS build also uses: start from a tree
# without them, so that what is checked is this build's packages, not an earlier build of the same version.
for p in fastivc-tools fastivc-dkms xen-hypervisor-4.17-fastivc-amd64; do
    installed "$p" && { in_c apt-get purge -y -q "$p" > /dev/null 2>&1 || echo "warning: could not purge $p from the builder tree"; }
done
[ -e "$C/dev/fd" ] || ln -s /proc/self/fd "$C/dev/fd"
trap 'umount "$C/proc" 2>/dev/null; rm -rf "$C/tmp/debs"' EXIT

lintian_clean() { # DEB: no error or warning (lintian's default level; each override is explained in the package)
    local out; out=$(lintian --tag-display-limit 0 "$1" 2>&1 | grep -Ev '^running with root privileges') || true
    [ -z "$out" ] || { echo "$out"; return 1; }
}
for f in "$HYP" "$DKMS" "$TOOLS"; do check "lintian $(basename "$f")" lintian_clean "$f"; done

unit_verifies() { # the unit as installed, with its command resolved inside the unpacked package
    local t; t=$(mktemp -d); dpkg-deb -x "$TOOLS" "$t/root" || return 1
    sed "s#^\(Exec[A-Za-z]*=\)/usr/bin/#\1$t/root/usr/bin/#" "$t/root/lib/systemd/system/fastivc-sync.service" > "$t/fastivc-sync.service"
    # it exits 0 on some problems (an unknown key), so any output fails the check too
    local out rc=0; out=$(systemd-analyze verify --man=no "$t/fastivc-sync.service" 2>&1) || rc=$?
    rm -rf "$t"; echo "$out"; [ $rc -eq 0 ] && [ -z "$out" ]
}
check "systemd-analyze verify fastivc-sync.service" unit_verifies

# ---- the module package ----
dkms_installs() {
    installed fastivc-dkms || install_c "$DKMS" || return 1
    local st; st=$(in_c dkms status -m fastivc -v "$MVER" -k "$KERNEL_ABI")
    grep -q ': installed' <<< "$st" || { echo "$st"; echo "fastivc/$MVER is not installed for $KERNEL_ABI"; return 1; }
    local ko="$C/lib/modules/$KERNEL_ABI/updates/dkms/fastivc.ko"
    [ "$(modinfo -F vermagic "$ko" | cut -d' ' -f1)" = "$KERNEL_ABI" ] || { modinfo "$ko"; return 1; }
    [ "$(modinfo -F version "$ko")" = "$MVER" ] || { modinfo "$ko"; return 1; }
    grep -qx fastivc "$C/etc/modules-load.d/fastivc.conf" || return 1
    # every parameter the module has is documented in modprobe.d (fault_inject is lab-only)
    local p
    for p in $(modinfo -F parm "$ko" | cut -d: -f1); do
        [ "$p" = fault_inject ] || grep -q "^# $p: " "$C/etc/modprobe.d/fastivc.conf" || { echo "modprobe.d lacks $p"; return 1; }
    done
}
check "apt-get install ./fastivc-dkms: DKMS builds and installs fastivc.ko for $KERNEL_ABI" dkms_installs
dkms_rebuilds() { in_c dkms build -m fastivc -v "$MVER" -k "$KERNEL_ABI" --force; }
check "dkms build -m fastivc -v $MVER -k $KERNEL_ABI" dkms_rebuilds
dkms_purges() {
    in_c apt-get purge -y -q fastivc-dkms || return 1
    ! installed fastivc-dkms || return 1
    local left; left=$(cd "$C" && ls -d lib/modules/*/updates/dkms/fastivc.ko var/lib/dkms/fastivc usr/src/fastivc-* \
        etc/modules-load.d/fastivc.conf etc/modprobe.d/fastivc.conf 2>/dev/null)
    [ -z "$left" ] || { echo "left after purge: $left"; return 1; }
}
check "apt-get purge fastivc-dkms leaves no module, DKMS tree, source or configuration" dkms_purges

# ---- the hypervisor, beside Debian's ----
hyp_beside_stock() {
    in_c apt-get install -y -q --no-install-recommends "xen-hypervisor-4.17-amd64=$XEN_DEB_VERSION" || return 1
    install_c "$HYP" || return 1
    installed xen-hypervisor-4.17-amd64 && installed xen-hypervisor-4.17-fastivc-amd64 || { echo "not both installed"; return 1; }
    [ -f "$C/boot/xen-4.17-amd64.gz" ] || { ls "$C/boot"; echo "the stock hypervisor's image is gone"; return 1; }
    zcat "$C/boot/xen-4.17-fastivc-amd64.gz" | cmp - "$B/xen/xen" || { echo "/boot/xen-4.17-fastivc-amd64.gz is not build/xen/xen"; return 1; }
    [ "$(in_c dpkg-query -W -f='${Version}' xen-utils-4.17)" = "$XEN_DEB_VERSION" ] || { echo "xen-utils-4.17 is not $XEN_DEB_VERSION"; return 1; }
}
check "apt-get install ./xen-hypervisor-4.17-fastivc-amd64 beside xen-hypervisor-4.17-amd64" hyp_beside_stock
hyp_on_current_debian() { # with the newest xen-utils-4.17 and stock hypervisor the archive has (security updates)
    local out; out=$(in_c apt-get install -s -q xen-utils-4.17 xen-hypervisor-4.17-amd64 "/tmp/debs/$(basename "$HYP")" 2>&1)
    local rc=$?; echo "$out" | grep -E '^(Inst|Conf|Remv) |^E:|Depends' | head -20
    [ $rc -eq 0 ] && ! echo "$out" | grep -q '^Remv ' || return 1
    # and apt chose the newest toolstack, not a downgrade
    local newest; newest=$(in_c apt-cache policy xen-utils-4.17 | awk '/Candidate:/ { print $2 }')
    echo "$out" | grep '^Inst xen-utils-4.17 ' | grep -qF "($newest " || { echo "xen-utils-4.17 $newest not chosen"; return 1; }
}
mkdir -p "$C/tmp/debs"; cp "$HYP" "$C/tmp/debs/"
check "the hypervisor package installs on an up-to-date Debian 12 (newest 4.17 toolstack, simulated)" hyp_on_current_debian
grub_offers_both() { # Debian's own generator (grub-common's 20_linux_xen), with the lab kernel in /boot
    local k="$B/kernel/root/boot"
    cp "$k/vmlinuz-$KERNEL_ABI" "$k/config-$KERNEL_ABI" "$C/boot/"
    in_c env pkgdatadir=/usr/share/grub GRUB_DEVICE=/dev/xvda1 GRUB_FS=ext4 GRUB_DISTRIBUTOR=Debian \
        GRUB_CMDLINE_LINUX= GRUB_CMDLINE_LINUX_DEFAULT=quiet sh /etc/grub.d/20_linux_xen 2>/dev/null > "$C/tmp/grub.cfg"
    rm -f "$C/boot/vmlinuz-$KERNEL_ABI" "$C/boot/config-$KERNEL_ABI"
    grep -E "submenu 'Xen hypervisor, version|multiboot2" "$C/tmp/grub.cfg" | sed 's/\$menuentry.*//'
    # the first entry (GRUB's default) boots ours: the generator takes the newest by version, 4.17-fastivc > 4.17-amd64
    [ "$(awk '$1 == "multiboot2" { print $2; exit }' "$C/tmp/grub.cfg")" = /boot/xen-4.17-fastivc-amd64.gz ] || return 1
    grep -q "submenu 'Xen hypervisor, version 4.17-amd64'" "$C/tmp/grub.cfg" || { echo "the stock Xen is not offered"; return 1; }
}
check "GRUB's 20_linux_xen: the default entry boots ours, the stock Xen stays in the menu" grub_offers_both
hyp_purges() {
    in_c apt-get purge -y -q xen-hypervisor-4.17-fastivc-amd64 || return 1
    [ ! -e "$C/boot/xen-4.17-fastivc-amd64.gz" ] && [ ! -e "$C/boot/xen-4.17-fastivc-amd64.config" ] || { echo "files left in /boot"; return 1; }
    [ -f "$C/boot/xen-4.17-amd64.gz" ] && installed xen-hypervisor-4.17-amd64 || { echo "removing ours touched the stock hypervisor"; return 1; }
    in_c apt-get purge -y -q xen-hypervisor-4.17-amd64 >/dev/null
}
check "apt-get purge xen-hypervisor-4.17-fastivc-amd64 keeps the stock hypervisor" hyp_purges

# ---- the dom0 tools ----
tools_install() {
    install_c "$TOOLS" || return 1
    local v; v=$(in_c fastivc --version) || return 1
    [ "$v" = "$(dpkg-deb -f "$TOOLS" Version | sed 's/-[^-]*$//')" ] || { echo "fastivc --version says '$v'"; return 1; }
    # (read whole: grep -q would close the pipe early, and the CLIs end with EPIPE then)
    local help; help=$(in_c ivctop --help) || { echo "ivctop --help failed"; return 1; }
    grep -q -- '--once' <<< "$help" || { echo "ivctop --help lacks --once"; return 1; }
    # no hypervisor here: status still answers, with the DEM's error, and exits 0
    in_c fastivc status --json --no-xenstore | jq -e '.dem.error | type == "string"' >/dev/null || return 1
    [ -L "$C/etc/systemd/system/multi-user.target.wants/fastivc-sync.service" ] || { echo "fastivc-sync.service not enabled"; return 1; }
    [ -f "$C/usr/share/man/man1/fastivc.1.gz" ] && [ -f "$C/usr/share/man/man1/ivctop.1.gz" ] || { echo "no man pages"; return 1; }
}
check "apt-get install ./fastivc-tools: fastivc and ivctop run on the bundled node, the service is enabled" tools_install
tools_purge() {
    in_c apt-get purge -y -q fastivc-tools || return 1
    local left; left=$(cd "$C" && ls -d usr/lib/fastivc usr/bin/fastivc usr/bin/ivctop etc/default/fastivc \
        etc/systemd/system/multi-user.target.wants/fastivc-sync.service lib/systemd/system/fastivc-sync.service 2>/dev/null)
    [ -z "$left" ] || { echo "left after purge: $left"; return 1; }
}
check "apt-get purge fastivc-tools leaves nothing (service disabled, files gone)" tools_purge

echo "packages: $(jq -r '[.[] | "\(.file) \(.bytes)"] | join(", ")' "$D/index.json")"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
