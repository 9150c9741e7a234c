# Helpers for packaging/build-debs.sh: a binary package from a staged tree, the way dpkg-buildpackage would leave it
# (md5sums, Installed-Size, a compressed changelog, the copyright file, root-owned files), without a source package.
# Sourced; expects log/die from scripts/build-lib.sh.

# The one maintainer field of every package. example.org is reserved (RFC 2606): a real host's admin reaches the
# project through its repository, not this address.
DEB_MAINTAINER="fastivc developers <fastivc@example.org>"

# deb_docs STAGE PACKAGE VERSION UPSTREAM COPYRIGHT [EXTRA]: /usr/share/doc/PACKAGE/{copyright,changelog.Debian.gz};
# EXTRA: more copyright paragraphs (files bundled under other licenses), placed before the license texts. Every
# package here is GPL-2 (the module, the tools and Xen alike), whose text Debian ships in /usr/share/common-licenses.
deb_docs() {
    local s=$1 pkg=$2 ver=$3 upstream=$4 holders=$5 extra=${6:-} doc="$1/usr/share/doc/$2"
    mkdir -p "$doc"
    cat > "$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: $upstream

Files: *
Copyright: 2025-2026 $holders
License: GPL-2
${extra:+
$extra
}
License: GPL-2
 This program is free software; you can redistribute it and/or modify it under the terms of the GNU General Public
 License version 2 as published by the Free Software Foundation.
 .
 On Debian systems, the full text of the GNU General Public License version 2 can be found in
 /usr/share/common-licenses/GPL-2.
COPYRIGHT
    # One entry: what this build is. The date is the build's input, not the clock, so a rebuild is byte-identical.
    {
        echo "$pkg ($ver) unstable; urgency=medium"
        echo
        echo "  * Built by ./build.sh debs from the fastivc repository (see its CHANGES.md)."
        echo
        echo " -- $DEB_MAINTAINER  $(date -R -u -d "@${SOURCE_DATE_EPOCH:-0}")"
    } | gzip -9n > "$doc/changelog.Debian.gz"
}

# deb_build STAGE OUTDIR: writes OUTDIR/<Package>_<Version>_<Architecture>.deb from STAGE (which has DEBIAN/control
# without Installed-Size). Prints the file's path.
deb_build() {
    local s=$1 out=$2 pkg ver arch f
    find "$s" -path "$s/DEBIAN" -prune -o -type f -printf '%P\0' | sort -z \
        | (cd "$s" && xargs -0 -r md5sum) > "$s/DEBIAN/md5sums"
    [ -s "$s/DEBIAN/md5sums" ] || rm -f "$s/DEBIAN/md5sums"
    sed -i '/^Installed-Size:/d' "$s/DEBIAN/control"
    echo "Installed-Size: $(du -sk --apparent-size --exclude=DEBIAN "$s" | cut -f1)" >> "$s/DEBIAN/control"
    chmod 0755 "$s/DEBIAN"; chmod 0644 "$s/DEBIAN/control" "$s/DEBIAN/md5sums" 2>/dev/null || true
    for f in preinst postinst prerm postrm; do [ -f "$s/DEBIAN/$f" ] && chmod 0755 "$s/DEBIAN/$f"; done
    find "$s" -path "$s/DEBIAN" -prune -o -exec touch -h -d "@${SOURCE_DATE_EPOCH:-0}" {} +
    pkg=$(sed -n 's/^Package: //p' "$s/DEBIAN/control"); ver=$(sed -n 's/^Version: //p' "$s/DEBIAN/control")
    arch=$(sed -n 's/^Architecture: //p' "$s/DEBIAN/control")
    mkdir -p "$out"
    rm -f "$out/${pkg}_"*"_$arch.deb"
    f="$out/${pkg}_${ver#*:}_$arch.deb"
    dpkg-deb --root-owner-group -Zxz --build "$s" "$f" >/dev/null || die "dpkg-deb failed for $pkg"
    echo "$f"
}
