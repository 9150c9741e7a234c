# fastivc-tools: the dom0 tools (`fastivc`, `ivctop`, the node-addon-api addon) and fastivc-sync.service, which
# keeps the DEM's IP table in step with the toolstack.
#
# The runtime comes with the package (/usr/lib/fastivc/node, the Node.js the tools are built and tested with):
# Debian 12's nodejs is 18, and the tools' pinned dependencies (ink 6, commander 14) require Node.js 20 or later;
# bundling keeps one tested runtime on every host instead of two, at the cost of ~100 MB installed and of following
# Node.js security releases with our own rebuilds (lintian's tags about it are explained in the overrides file).
#
# Layout: /usr/lib/fastivc/app is laid out as the repository is (package.json, build/ts, native/build/Release,
# node_modules, lab/guest, build/bench), so module resolution and every path the tools compute from their own
# location work the same from a checkout and from the package.
# Sourced by packaging/build-debs.sh: build_fastivc_tools OUTDIR.
TOOLS_PKG=fastivc-tools

tools_version() { node -p 'require(process.argv[1]).version' "$ROOT/package.json"; }

# stage_app DEST: the application tree (what /usr/lib/fastivc/app holds)
stage_app() {
    local dest=$1 m
    mkdir -p "$dest/native/build/Release" "$dest/build/bench" "$dest/lab"
    install -m 0644 "$ROOT/package.json" "$dest/"
    cp -r "$B/ts" "$dest/build/ts"
    install -m 0644 "$ROOT/native/build/Release/fastivc.node" "$dest/native/build/Release/"
    strip --strip-unneeded "$dest/native/build/Release/fastivc.node"
    # The experiments' scripts and the guest program they copy into the domUs (`fastivc bench run --remote`).
    cp -r "$ROOT/lab/guest" "$dest/lab/guest"
    (cd "$ROOT" && npm ls --omit=dev --all --parseable 2>/dev/null) | while read -r m; do
        # top-level packages only: a nested node_modules comes with the package that holds it
        case ${m#"$ROOT"/} in node_modules/*/node_modules/*) continue ;; node_modules/*) ;; *) continue ;; esac
        mkdir -p "$dest/$(dirname "${m#"$ROOT"/}")"
        cp -r "$m" "$dest/${m#"$ROOT"/}"
    done
    # Nothing in the tree is run directly: /usr/bin/fastivc and /usr/bin/ivctop run it with the bundled node.
    find "$dest" -type d -exec chmod 0755 {} +
    find "$dest" -type f -exec chmod 0644 {} +
    install -m 0755 "$B/bench/ivcbench" "$dest/build/bench/"
    strip --strip-unneeded "$dest/build/bench/ivcbench"
}

# man_page NAME SECTION_TEXT HELP_FILE > page: a man page around a command's --help text
man_page() {
    local name=$1 what=$2 help=$3 ver=$4
    printf '.TH %s 1 "" "fastivc %s" "fastivc"\n.SH NAME\n%s \\- %s\n.SH DESCRIPTION\n.nf\n' \
        "$(echo "$name" | tr a-z A-Z)" "$ver" "$name" "$what"
    sed 's/\\/\\e/g; s/^\./\\\&./; s/^'"'"'/\\\&'"'"'/' "$help"
    printf '.fi\n.SH SEE ALSO\n/usr/share/doc/fastivc-tools/README.md\n'
}

build_fastivc_tools() {
    local out=$1 s="$B/debs/stage/$TOOLS_PKG" ver app name
    ver="$(tools_version)-1+$DEB_BUILD_TAG"; app="$s/usr/lib/fastivc/app"
    [ -f "$ROOT/native/build/Release/fastivc.node" ] || die "no addon (run ./build.sh native)"
    [ -f "$B/bench/ivcbench" ] || die "no build/bench/ivcbench (run ./build.sh bench)"
    rm -rf "$s"; mkdir -p "$s/DEBIAN" "$s/usr/bin" "$s/lib/systemd/system" "$s/etc/default" "$s/usr/share/man/man1"
    stage_app "$app"
    install -m 0755 "$(command -v node)" "$s/usr/lib/fastivc/node"
    strip --strip-unneeded "$s/usr/lib/fastivc/node"
    printf '#!/bin/sh\nexec /usr/lib/fastivc/node /usr/lib/fastivc/app/build/ts/tui/src/cli.js "$@"\n' > "$s/usr/bin/fastivc"
    printf '#!/bin/sh\nexec /usr/lib/fastivc/node /usr/lib/fastivc/app/build/ts/tui/src/ivctop/cli.js "$@"\n' > "$s/usr/bin/ivctop"
    chmod 0755 "$s/usr/bin/fastivc" "$s/usr/bin/ivctop"
    install -m 0644 "$ROOT/packaging/fastivc-tools/fastivc-sync.service" "$s/lib/systemd/system/"
    install -m 0644 "$ROOT/packaging/fastivc-tools/default" "$s/etc/default/fastivc"
    echo /etc/default/fastivc > "$s/DEBIAN/conffiles"
    for name in fastivc ivctop; do
        node "$app/build/ts/tui/src/$([ $name = fastivc ] && echo cli.js || echo ivctop/cli.js)" --help > "$B/debs/$name.help" 2>&1 \
            || die "$name --help failed"
        man_page "$name" "$([ $name = fastivc ] && echo 'fast inter-VM communication on Xen: DEM table, status, experiments' \
            || echo 'live monitor of fastivc tunnels and pending events')" "$B/debs/$name.help" "$(tools_version)" \
            | gzip -9n > "$s/usr/share/man/man1/$name.1.gz"
    done
    deb_docs "$s" "$TOOLS_PKG" "$ver" fastivc "fastivc developers" "Files: usr/lib/fastivc/node
Copyright: Node.js contributors and others
License: Expat and others
 Node.js $(node --version), as built for Debian 12. Its license and the licenses of the libraries it
 includes are in /usr/share/doc/fastivc-tools/nodejs.LICENSE.

Files: usr/lib/fastivc/app/node_modules/*
Copyright: the authors of each package
License: Expat and others
 Each package's license is in its own folder."
    install -m 0644 "$(dirname "$(readlink -f "$(command -v node)")")/../share/doc/nodejs/LICENSE" \
        "$s/usr/share/doc/$TOOLS_PKG/nodejs.LICENSE" 2>/dev/null \
        || install -m 0644 /usr/share/doc/nodejs/LICENSE "$s/usr/share/doc/$TOOLS_PKG/nodejs.LICENSE"
    install -m 0644 "$ROOT/README.md" "$s/usr/share/doc/$TOOLS_PKG/README.md"
    mkdir -p "$s/usr/share/lintian/overrides"
    install -m 0644 "$ROOT/packaging/fastivc-tools/lintian-overrides" "$s/usr/share/lintian/overrides/$TOOLS_PKG"
    install -m 0755 "$ROOT/packaging/fastivc-tools/postinst" "$ROOT/packaging/fastivc-tools/prerm" \
        "$ROOT/packaging/fastivc-tools/postrm" "$s/DEBIAN/"
    cat > "$s/DEBIAN/control" <<CONTROL
Package: $TOOLS_PKG
Version: $ver
Architecture: amd64
Maintainer: $DEB_MAINTAINER
Depends: libc6 (>= 2.28), libstdc++6 (>= 12), libgcc-s1 (>= 3.0), xenstore-utils
Recommends: xen-hypervisor-4.17-fastivc-amd64
Section: admin
Priority: optional
Description: fastivc dom0 tools: DEM table sync, status, ivctop and the experiments
 The dom0 side of fastivc (fast TCP between co-resident Xen domains over shared
 memory): fastivc-sync.service keeps the hypervisor's Domain Event Manager
 table of domain addresses in step with the toolstack; \`fastivc status\` shows
 (or exports as OpenMetrics) the DEM's counters and the guests' tunnels;
 \`ivctop\` is a live monitor of tunnels and pending events; \`fastivc bench\`
 runs the experiments against two domUs.
 .
 It brings its own Node.js runtime (the tools need Node.js 20 or later).
CONTROL
    deb_build "$s" "$out"
}
