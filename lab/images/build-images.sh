#!/usr/bin/env bash
# Builds the lab images under build/lab/ from the pinned Debian packages, our Xen tools version and our own programs:
#
#   rootfs/      debootstrap (minbase) + xen-utils-4.17 at exactly $XEN_DEB_VERSION + the programs the guests run;
#                the one Debian tree both images are cut from.                                   (cached: slow)
#   builder/     rootfs + dkms + the lab kernel's headers (+ grub-common): where fastivc-dkms builds the module the domUs load, as
#                it builds on a real guest (and where packaging/check-debs.sh installs and removes the packages).
#   dkms/fastivc.ko  the module DKMS built there from build/debs/fastivc-dkms_*.deb.              (cached)
#   dom0.img     dom0's initramfs: rootfs + the packages a real dom0 installs (build/debs: the hypervisor and
#                fastivc-tools, with `apt-get install ./*.deb`) + dom0's kernel modules + dom0/init.  (cached)
#   xen          the hypervisor the lab boots: the /boot/xen-*.gz that the hypervisor package installed in dom0's
#                tree, uncompressed (QEMU's multiboot loader takes an ELF image).
#   domU-base.cpio.gz  the PV domU's userland: busybox plus real Debian programs (iperf3, sshd, ...) copied from
#                rootfs with their libraries, and its kernel modules.                             (cached)
#   input.img    a raw disk (a tar archive) that dom0 unpacks at boot: the lab scripts, our guest programs, the module,
#                the domU kernel and initramfs. Cheap to rebuild, so lab scripts change without rebuilding images.
#
# Each artefact is rebuilt only when a hash of its inputs changes (build/stamps/).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
B="$ROOT/build"
L="$B/lab"
. "$ROOT/lab/versions.env"
. "$ROOT/scripts/build-lib.sh"

mkdir -p "$L"

# Debian packages in the lab. dom0 needs the Xen toolstack (pinned below); the domUs take their programs from here.
ROOTFS_PACKAGES=iproute2,kmod,procps,jq,iperf3,openssh-server,openssh-client,busybox,ca-certificates,vsftpd
XEN_TOOL_PACKAGES=(xen-utils-4.17 xen-utils-common xenstore-utils libxenmisc4.17 libxenstore4 libxengnttab1
                   libxenevtchn1 libxencall1 libxenforeignmemory1 libxendevicemodel1 libxentoolcore1
                   libxentoollog1 libxenhypfs1)

build_rootfs() {
    # What the tree is made of, not this whole script: a change elsewhere here must not redo the debootstrap.
    local h; h=$(inputs_hash "$(declare -f build_rootfs)" "PACKAGES=$ROOTFS_PACKAGES" "XEN_TOOLS=${XEN_TOOL_PACKAGES[*]}" \
        "SUITE=$DEBIAN_SUITE" "XEN=$XEN_DEB_VERSION")
    if stamp_fresh rootfs "$h" && [ -x "$L/rootfs/usr/sbin/xl" ]; then return 0; fi
    local mirror; mirror=$(debian_mirror)
    [ -n "$mirror" ] || die "cannot find the Debian mirror in /etc/apt/sources.list.d/debian.sources"
    log "lab: debootstrap $DEBIAN_SUITE (minbase)"
    rm -rf "$L/rootfs"
    debootstrap --variant=minbase --include="$ROOTFS_PACKAGES" "$DEBIAN_SUITE" "$L/rootfs" "$mirror" \
        > "$L/debootstrap.log" 2>&1 || { tail -20 "$L/debootstrap.log" >&2; die "debootstrap failed"; }
    # Nothing may start services inside the chroot.
    printf '#!/bin/sh\nexit 101\n' > "$L/rootfs/usr/sbin/policy-rc.d"; chmod +x "$L/rootfs/usr/sbin/policy-rc.d"
    local pins=() p
    for p in "${XEN_TOOL_PACKAGES[@]}"; do pins+=("$p=$XEN_DEB_VERSION"); done
    log "lab: install the Xen tools $XEN_DEB_VERSION in the rootfs"
    cp /etc/apt/sources.list.d/debian.sources "$L/rootfs/etc/apt/sources.list.d/" 2>/dev/null || true
    rm -f "$L/rootfs/etc/apt/sources.list"
    chroot "$L/rootfs" apt-get update -q > "$L/rootfs-apt.log" 2>&1
    DEBIAN_FRONTEND=noninteractive chroot "$L/rootfs" apt-get install -y -q --no-install-recommends "${pins[@]}" \
        >> "$L/rootfs-apt.log" 2>&1 || { tail -20 "$L/rootfs-apt.log" >&2; die "installing the Xen tools failed"; }
    chroot "$L/rootfs" apt-get clean
    stamp_write rootfs "$h"
}

# Copies the kernel modules named in $2.. (and what they depend on) from the unpacked kernel into $1, then depmod.
install_modules() {
    local dest=$1; shift
    local src="$B/kernel/root/lib/modules/$KERNEL_ABI" m
    rm -rf "$dest/lib/modules"; mkdir -p "$dest/lib/modules/$KERNEL_ABI"
    cp "$src"/modules.order "$src"/modules.builtin "$src"/modules.builtin.modinfo "$dest/lib/modules/$KERNEL_ABI/"
    for m in "$@"; do
        modprobe -d "$B/kernel/root" -S "$KERNEL_ABI" --show-depends "$m" 2>/dev/null | awk '$1 == "insmod" { print $2 }'
    done | sort -u | while read -r f; do
        mkdir -p "$dest$(dirname "${f#"$B/kernel/root"}")"
        cp "$f" "$dest${f#"$B/kernel/root"}"
    done
    depmod -b "$dest" "$KERNEL_ABI"
}

# loop and xen-blkback give a domU a virtual disk (the FTP-from-disk experiment); the domUs mount it with ext4.
DOM0_MODULES=(xenfs xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xen-netback bridge virtio_pci virtio_blk loop xen-blkback tls)
DOMU_MODULES=(xen-netfront xen-privcmd xen-evtchn xen-blkfront ext4 crc32c_generic tls veth) # tls: tcpsem ulp_slot (kTLS); veth: netns-domU-domU-tunnel

# deb_file PACKAGE: build/debs/'s file of PACKAGE (packaging/build-debs.sh's index)
deb_file() {
    local f; f=$(jq -r --arg p "$1" '.[$p].file // empty' "$B/debs/index.json" 2>/dev/null)
    [ -n "$f" ] && [ -f "$B/debs/$f" ] || die "no $1 package in build/debs (run ./build.sh debs)"
    echo "$B/debs/$f"
}

# apt_install_debs ROOT DEB...: `apt-get install ./X.deb` inside ROOT, as the install guide tells a real host to do
apt_install_debs() {
    local r=$1 d; shift
    local args=()
    mkdir -p "$r/tmp/debs"
    for d in "$@"; do cp "$d" "$r/tmp/debs/"; args+=("/tmp/debs/$(basename "$d")"); done
    local rc=0
    # --reinstall: two builds of one commit carry the same version (git<time>.<sha>) and, when their control fields
    # match, apt would keep the package already installed in a reused tree (the builder) and its old module
    DEBIAN_FRONTEND=noninteractive chroot "$r" apt-get install --reinstall -y -q --no-install-recommends "${args[@]}" || rc=$?
    rm -rf "$r/tmp/debs"
    return $rc
}

# The guests' module build, as on a real guest: Debian's dkms and the kernel's headers in a Debian tree. Kept
# separate from rootfs so that neither image carries a compiler.
# grub-common: Debian's GRUB menu generator, which packaging/check-debs.sh runs against the installed hypervisors.
BUILDER_PACKAGES=(dkms "linux-headers-$KERNEL_ABI" grub-common)
build_builder() {
    local h; h=$(inputs_hash "$B/stamps/rootfs" "${BUILDER_PACKAGES[@]}")
    if stamp_fresh builder "$h" && [ -x "$L/builder/usr/sbin/dkms" ]; then return 0; fi
    log "lab: builder tree (rootfs + ${BUILDER_PACKAGES[*]})"
    umount "$L/builder/proc" 2>/dev/null || true    # never delete through a mounted /proc
    rm -rf --one-file-system "$L/builder"; cp -a "$L/rootfs" "$L/builder"
    DEBIAN_FRONTEND=noninteractive chroot "$L/builder" apt-get install -y -q --no-install-recommends "${BUILDER_PACKAGES[@]}" \
        > "$L/builder-apt.log" 2>&1 || { tail -20 "$L/builder-apt.log" >&2; die "installing ${BUILDER_PACKAGES[*]} in the builder failed"; }
    chroot "$L/builder" apt-get clean
    ln -sfn /proc/self/fd "$L/builder/dev/fd"     # dkms reads process substitutions
    stamp_write builder "$h"
}

# fastivc.ko for the lab, built by DKMS from the fastivc-dkms package (its postinst builds for every kernel with headers)
build_dkms_module() {
    local deb; deb=$(deb_file fastivc-dkms)
    local h; h=$(inputs_hash "$B/stamps/builder" "$deb")
    if stamp_fresh dkms "$h" && [ -f "$L/dkms/fastivc.ko" ]; then return 0; fi
    log "lab: fastivc.ko by DKMS ($(basename "$deb"))"
    rm -rf "$L/dkms"; mkdir -p "$L/dkms"
    [ -e "$L/builder/dev/fd" ] || ln -s /proc/self/fd "$L/builder/dev/fd"
    mountpoint -q "$L/builder/proc" || mount -t proc proc "$L/builder/proc"   # dkms needs /proc
    trap 'umount "$L/builder/proc" 2>/dev/null' EXIT
    local rc=0
    apt_install_debs "$L/builder" "$deb" > "$L/dkms/install.log" 2>&1 || rc=$?
    umount "$L/builder/proc" 2>/dev/null || true
    trap - EXIT
    [ $rc -eq 0 ] || { tail -30 "$L/dkms/install.log" >&2; die "installing $(basename "$deb") in the builder failed"; }
    local ko="$L/builder/lib/modules/$KERNEL_ABI/updates/dkms/fastivc.ko"
    [ -f "$ko" ] || { tail -30 "$L/dkms/install.log" >&2; die "DKMS did not install fastivc.ko for $KERNEL_ABI"; }
    cp "$ko" "$L/dkms/fastivc.ko"
    chroot "$L/builder" dkms status > "$L/dkms/status.txt" 2>&1 || true
    cp "$L/builder"/var/lib/dkms/fastivc/*/build/make.log "$L/dkms/make.log" 2>/dev/null || true
    stamp_write dkms "$h"
}

build_dom0() {
    local hyp tools
    hyp=$(deb_file xen-hypervisor-4.17-fastivc-amd64); tools=$(deb_file fastivc-tools)
    local h; h=$(inputs_hash "$B/stamps/rootfs" "$B/stamps/kernel" "$ROOT/lab/images" "$ROOT/lab/guest/dom0/init" "$hyp" "$tools")
    if stamp_fresh dom0 "$h" && [ -f "$L/dom0.img" ] && [ -f "$L/xen" ]; then return 0; fi
    log "lab: dom0 image (with $(basename "$hyp") and $(basename "$tools"))"
    local s="$L/stage-dom0"
    rm -rf "$s"; cp -a "$L/rootfs" "$s"
    apt_install_debs "$s" "$hyp" "$tools" > "$L/dom0-debs.log" 2>&1 \
        || { tail -20 "$L/dom0-debs.log" >&2; die "installing the dom0 packages failed (build/lab/dom0-debs.log)"; }
    local xgz; xgz=$(dpkg-deb -c "$hyp" | awk '$NF ~ /^\.\/boot\/xen-.*\.gz$/ { print substr($NF, 2) }')
    [ -n "$xgz" ] && [ -f "$s$xgz" ] || die "the hypervisor package installed no /boot/xen-*.gz"
    zcat "$s$xgz" > "$L/xen.tmp" && mv "$L/xen.tmp" "$L/xen"
    rm -rf "$s"/usr/share/{doc,man,info,locale} "$s"/var/cache/apt/* "$s"/var/lib/apt/lists/*
    install_modules "$s" "${DOM0_MODULES[@]}"
    install -m 0755 "$ROOT/lab/guest/dom0/init" "$s/init"
    (cd "$s" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 > "$L/dom0.img.tmp"
    mv "$L/dom0.img.tmp" "$L/dom0.img"
    rm -rf "$s"
    stamp_write dom0 "$h"
}

# Programs copied from the Debian rootfs into the domU, with their shared libraries.
DOMU_PROGRAMS=(/usr/bin/iperf3 /usr/sbin/sshd /usr/bin/ssh /usr/bin/scp /usr/lib/openssh/sftp-server
               /usr/bin/ssh-keygen /usr/bin/sha256sum /usr/sbin/vsftpd)

build_domU_base() {
    local h; h=$(inputs_hash "$B/stamps/rootfs" "$B/stamps/kernel" "$ROOT/lab/images")
    if stamp_fresh domU-base "$h" && [ -f "$L/domU-base.cpio.gz" ] && [ -f "$L/lab-root-key" ]; then return 0; fi
    log "lab: domU base image"
    local s="$L/stage-domU"
    rm -rf "$s"; mkdir -p "$s"/{bin,sbin,etc,proc,sys,dev,run,tmp,root,var/empty,usr/bin,usr/sbin}
    cp /bin/busybox "$s/bin/busybox"   # busybox-static: no libraries
    chroot "$s" /bin/busybox --install -s /bin 2>/dev/null || true
    copy_with_libs "$L/rootfs" "$s" "${DOMU_PROGRAMS[@]}"
    # Users: sshd's privilege separation and vsftpd's anonymous "ftp". sshd: host keys and a lab-only root key (both
    # domUs share them: lab use only).
    printf '%s\n' root:x:0:0:root:/root:/bin/sh sshd:x:100:65534::/run/sshd:/bin/false \
        'ftp:x:101:101:ftp daemon:/srv/ftp:/bin/false' nobody:x:65534:65534::/:/bin/false > "$s/etc/passwd"
    printf '%s\n' root:x:0: ftp:x:101: nogroup:x:65534: > "$s/etc/group"
    printf 'root::19000:0:99999:7:::\n' > "$s/etc/shadow"; chmod 600 "$s/etc/shadow"
    mkdir -p "$s/etc/ssh" "$s/root/.ssh"
    ssh-keygen -q -t ed25519 -N '' -f "$s/etc/ssh/ssh_host_ed25519_key" -C lab-host
    ssh-keygen -q -t ed25519 -N '' -f "$s/root/.ssh/id_ed25519" -C lab-root
    cp "$s/root/.ssh/id_ed25519.pub" "$s/root/.ssh/authorized_keys"
    # dom0 logs in with it too (bench-remote-dom0: fastivc bench run --remote over ssh); build_input ships it
    install -m 0600 "$s/root/.ssh/id_ed25519" "$L/lab-root-key"; install -m 0644 "$s/root/.ssh/id_ed25519.pub" "$L/lab-root-key.pub"
    chmod 700 "$s/root/.ssh"; chmod 600 "$s/root/.ssh/authorized_keys"
    cat > "$s/etc/ssh/sshd_config" <<'EOF'
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
    printf 'Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n' > "$s/etc/ssh/ssh_config"
    # vsftpd (an unmodified server from the XWAY list): standalone, anonymous read-only downloads from /srv/ftp (the
    # domU's init creates it, scenarios put files there), no local users, so PAM is never asked (it is only linked).
    # No seccomp sandbox and no namespaces (isolate*): the busybox domU has no use for them. Passive data ports are
    # fixed so the tunnel sees a known range; busybox's ftpget is the client.
    mkdir -p "$s/var/run/vsftpd/empty"; chmod 755 "$s/var/run/vsftpd/empty"
    cat > "$s/etc/vsftpd.conf" <<'EOF'
listen=YES
listen_ipv6=NO
background=YES
anonymous_enable=YES
no_anon_password=YES
anon_root=/srv/ftp
ftp_username=ftp
local_enable=NO
write_enable=NO
anon_upload_enable=NO
anon_mkdir_write_enable=NO
anon_other_write_enable=NO
secure_chroot_dir=/var/run/vsftpd/empty
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
pasv_enable=YES
pasv_min_port=7100
pasv_max_port=7110
connect_from_port_20=NO
xferlog_enable=NO
syslog_enable=NO
dirmessage_enable=NO
tcp_wrappers=NO
EOF
    install_modules "$s" "${DOMU_MODULES[@]}"
    (cd "$s" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 > "$L/domU-base.cpio.gz.tmp"
    mv "$L/domU-base.cpio.gz.tmp" "$L/domU-base.cpio.gz"
    rm -rf "$s"
    stamp_write domU-base "$h"
}

# The disk dom0 reads at boot: a tar of everything that changes often. The domU's initramfs is its cached base plus
# a small overlay archive (Linux unpacks concatenated cpio archives in order).
build_input() {
    local h; h=$(inputs_hash "$ROOT/lab/guest" "$B/bench" "$B/kmod/dem_hcall.ko" "$L/dkms/fastivc.ko" \
        "$L/domU-base.cpio.gz" "$B/kernel/vmlinuz")
    if stamp_fresh input "$h" && [ -f "$L/input.img" ]; then return 0; fi
    log "lab: input disk"
    local s="$L/stage-input"
    rm -rf "$s"; mkdir -p "$s/domU-overlay/usr/local/bin" "$s/domU-overlay/lib/fastivc" "$s/lab"
    cp -r "$ROOT/lab/guest/." "$s/lab/"
    install -D -m 0600 "$L/lab-root-key" "$s/lab/ssh/id_ed25519"   # the domUs' lab-only root key (bench-remote-dom0)
    install -m 0755 "$ROOT/lab/guest/domU/init" "$s/domU-overlay/init"
    install -m 0755 "$B/bench/ivcbench" "$B/bench/lab-agent" "$B/bench/dem-probe" "$B/bench/tcpsem" "$s/domU-overlay/usr/local/bin/"
    install -m 0644 "$L/dkms/fastivc.ko" "$B/kmod/dem_hcall.ko" "$s/domU-overlay/lib/fastivc/"
    mkdir -p "$s/lab/bin" "$s/lab/domU"
    install -m 0755 "$B/bench/ivcbench" "$B/bench/lab-agent" "$B/bench/dem-probe" "$B/bench/tcpsem" "$s/lab/bin/"
    install -m 0644 "$L/dkms/fastivc.ko" "$s/lab/bin/"
    cp "$B/kernel/vmlinuz" "$s/lab/domU/vmlinuz"
    (cd "$s/domU-overlay" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 > "$s/overlay.cpio.gz"
    cat "$L/domU-base.cpio.gz" "$s/overlay.cpio.gz" > "$s/lab/domU/initrd.img"
    tar -C "$s/lab" -cf "$L/input.img.tmp" .
    mv "$L/input.img.tmp" "$L/input.img"
    rm -rf "$s"
    stamp_write input "$h"
}

build_rootfs
build_builder
build_dkms_module
build_dom0
build_domU_base
build_input
log "lab: images ready ($(du -h "$L/dom0.img" | cut -f1) dom0, $(du -h "$L/input.img" | cut -f1) input disk)"
