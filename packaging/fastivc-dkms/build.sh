# fastivc-dkms: guest-kmod/'s source with a dkms.conf. Installing it builds fastivc.ko for every installed kernel
# that has its headers, and DKMS rebuilds it on each kernel update (AUTOINSTALL). It also ships the boot-time load
# (modules-load.d) and the documented module parameters (modprobe.d, every line commented out: the defaults are the
# measured ones). Installed in the domUs (and in dom0 for dom0 <-> domU tunnels).
# Sourced by packaging/build-debs.sh: build_fastivc_dkms OUTDIR.
DKMS_PKG=fastivc-dkms

# The module's version, from the one place that defines it.
fastivc_module_version() { sed -n 's/^#define FASTIVC_VERSION "\(.*\)"$/\1/p' "$ROOT/guest-kmod/fastivc.h"; }

build_fastivc_dkms() {
    local out=$1 s="$B/debs/stage/$DKMS_PKG" mver ver src
    mver=$(fastivc_module_version); [ -n "$mver" ] || die "no FASTIVC_VERSION in guest-kmod/fastivc.h"
    ver="$mver-1+$DEB_BUILD_TAG"; src="$s/usr/src/fastivc-$mver"
    [ -f "$B/kmod/fastivc.ko" ] || die "no build/kmod/fastivc.ko to read the parameters from (run ./build.sh kmod)"
    rm -rf "$s"; mkdir -p "$s/DEBIAN" "$src" "$s/etc/modules-load.d" "$s/etc/modprobe.d"
    # The module's sources only: its host tests (guest-kmod/tests) are not part of a build.
    install -m 0644 "$ROOT"/guest-kmod/*.c "$ROOT"/guest-kmod/*.h "$ROOT/guest-kmod/Kbuild" "$ROOT/guest-kmod/Makefile" "$src/"
    sed "s/@VERSION@/$mver/" "$ROOT/packaging/fastivc-dkms/dkms.conf" > "$src/dkms.conf"
    chmod 0644 "$src/dkms.conf"
    install -m 0644 "$ROOT/packaging/fastivc-dkms/modules-load.conf" "$s/etc/modules-load.d/fastivc.conf"
    {
        echo "# fastivc.ko's parameters (modinfo -p fastivc). The defaults are the measured ones (README, \"Measured\");"
        echo "# uncomment a line to change one at boot, or write /sys/module/fastivc/parameters/NAME at run time."
        echo "#"
        modinfo -p "$B/kmod/fastivc.ko" | sort | grep -v '^fault_inject:' | while IFS= read -r l; do
            echo "# ${l%%:*}: ${l#*:}"
        done
        echo "#"
        echo "#options fastivc enable=1 auto_bytes=1048576"
    } > "$s/etc/modprobe.d/fastivc.conf"
    chmod 0644 "$s/etc/modprobe.d/fastivc.conf"
    printf '/etc/modprobe.d/fastivc.conf\n/etc/modules-load.d/fastivc.conf\n' > "$s/DEBIAN/conffiles"
    deb_docs "$s" "$DKMS_PKG" "$ver" fastivc "fastivc developers"
    install -m 0644 "$ROOT/guest-kmod/README.md" "$s/usr/share/doc/$DKMS_PKG/README.md"
    sed "s/@VERSION@/$mver/g" "$ROOT/packaging/fastivc-dkms/postinst" > "$s/DEBIAN/postinst"
    sed "s/@VERSION@/$mver/g" "$ROOT/packaging/fastivc-dkms/prerm" > "$s/DEBIAN/prerm"
    cat > "$s/DEBIAN/control" <<CONTROL
Package: $DKMS_PKG
Version: $ver
Architecture: all
Maintainer: $DEB_MAINTAINER
Depends: dkms (>= 2.1.0.0), kmod
Recommends: linux-headers-amd64
Section: kernel
Priority: optional
Description: fastivc guest module (DKMS): TCP between Xen domains over shared memory
 fastivc.ko swaps a TCP socket's operations onto a tunnel of shared-memory
 channels when the peer is a domain on the same Xen host (as the hypervisor's
 Domain Event Manager reports), and leaves every other connection on TCP.
 Unmodified programs, no kernel patch.
 .
 This package builds the module with DKMS for every installed kernel that has
 its headers and rebuilds it on kernel updates. It needs a hypervisor with the
 Domain Event Manager (xen-hypervisor-4.17-fastivc-amd64); on any other host
 the module keeps every connection on TCP.
CONTROL
    mkdir -p "$s/usr/share/lintian/overrides"
    install -m 0644 "$ROOT/packaging/fastivc-dkms/lintian-overrides" "$s/usr/share/lintian/overrides/$DKMS_PKG"
    deb_build "$s" "$out"
}
