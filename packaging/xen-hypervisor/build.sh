# xen-hypervisor-4.17-fastivc-amd64: our Xen 4.17 (Debian's source package + xen-patches/series) as /boot/xen-*.gz
# beside Debian's own xen-hypervisor-4.17-amd64, never replacing it: GRUB's 20_linux_xen offers every /boot/xen*.gz,
# so the stock Xen stays one menu entry away. Its version is the Debian source's plus +fastivcN and the build tag.
# It needs xen-utils-4.17 of that Debian version or a later 4.17 one: the lab runs exactly that version, and a pin to
# it (=) would make the package uninstallable as soon as Debian publishes a 4.17 security update of the toolstack
# (4.17.7 already is), or hold those updates back; the hypervisor/toolstack interfaces (domctl, sysctl versions)
# do not change within a Xen release.
# Sourced by packaging/build-debs.sh: build_xen_hypervisor OUTDIR.
XEN_PKG=xen-hypervisor-4.17-fastivc-amd64
XEN_PKG_SUFFIX=+fastivc1          # bump when the patch series changes without a new Debian source
XEN_BOOT_NAME=xen-4.17-fastivc-amd64

build_xen_hypervisor() {
    local out=$1 s="$B/debs/stage/$XEN_PKG" ver="$XEN_DEB_VERSION$XEN_PKG_SUFFIX+$DEB_BUILD_TAG" p
    [ -f "$B/xen/xen.gz" ] || die "no build/xen/xen.gz (run ./build.sh xen)"
    rm -rf "$s"; mkdir -p "$s/DEBIAN" "$s/boot"
    install -m 0644 "$B/xen/xen.gz" "$s/boot/$XEN_BOOT_NAME.gz"
    install -m 0644 "$B/xen/src/xen/.config" "$s/boot/$XEN_BOOT_NAME.config"
    deb_docs "$s" "$XEN_PKG" "$ver" "Xen with the fastivc Domain Event Manager" \
        "Xen Project contributors (Xen); fastivc developers (the Domain Event Manager patches)"
    # The patches this hypervisor carries, as applied to Debian's source (GPL-2: the changes travel with the binary).
    mkdir -p "$s/usr/share/doc/$XEN_PKG/patches"
    while read -r p; do
        case $p in ''|'#'*) continue ;; esac
        gzip -9nc "$ROOT/xen-patches/$p" > "$s/usr/share/doc/$XEN_PKG/patches/$p.gz"
    done < "$ROOT/xen-patches/series"
    cat > "$s/DEBIAN/control" <<CONTROL
Package: $XEN_PKG
Version: $ver
Architecture: amd64
Maintainer: $DEB_MAINTAINER
Depends: xen-utils-4.17 (>= $XEN_DEB_VERSION), xen-utils-4.17 (<< 4.18~)
Recommends: xen-hypervisor-common
Provides: xen-hypervisor, xen-hypervisor-4.17
Section: kernel
Priority: optional
Homepage: https://xenproject.org/
Description: Xen Hypervisor on AMD64, with the fastivc Domain Event Manager
 Debian's Xen $XEN_DEB_VERSION
 with the fastivc patch series: the Domain Event Manager (IP-to-domain table,
 per-connection event records, a VIRQ and a privileged query for dom0 tools)
 that the fastivc guest module uses to move TCP connections between
 co-resident domains onto shared-memory tunnels.
 .
 It installs as /boot/$XEN_BOOT_NAME.gz beside Debian's
 hypervisor package, which it neither replaces nor conflicts with: GRUB lists
 both, and the stock Xen stays bootable.
CONTROL
    # GRUB's menu is generated: regenerate it when a /boot/xen*.gz appears or goes, as Debian's hypervisor does.
    for p in postinst postrm; do
        cat > "$s/DEBIAN/$p" <<'SCRIPT'
#!/bin/sh
set -e
case "$1" in
    configure|remove|purge)
        if command -v update-grub >/dev/null 2>&1 && [ -e /boot/grub/grub.cfg ]; then
            update-grub || echo "xen-hypervisor-4.17-fastivc-amd64: update-grub failed; run it by hand" >&2
        fi ;;
esac
exit 0
SCRIPT
    done
    mkdir -p "$s/usr/share/lintian/overrides"
    install -m 0644 "$ROOT/packaging/xen-hypervisor/lintian-overrides" "$s/usr/share/lintian/overrides/$XEN_PKG"
    deb_build "$s" "$out"
}
