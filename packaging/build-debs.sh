#!/usr/bin/env bash
# ./build.sh debs: the three packages a real Debian 12 Xen host installs, into build/debs/:
#
#   xen-hypervisor-4.17-fastivc-amd64   dom0's boot: our Xen beside Debian's (packaging/xen-hypervisor/build.sh)
#   fastivc-tools                       dom0: fastivc, ivctop, the addon, fastivc-sync.service (fastivc-tools/build.sh)
#   fastivc-dkms                        every guest that tunnels: fastivc.ko built by DKMS (fastivc-dkms/build.sh)
#
# Inputs are the build's own outputs (build/xen, build/ts, the addon, build/kmod for the parameter list, build/bench);
# ./build.sh debs builds those first. Rebuilt only when an input changes (build/stamps/debs).
set -euo pipefail
shopt -s inherit_errexit      # the package builders run in $(...): a failing step must stop the build there too
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B="$ROOT/build"
. "$ROOT/lab/versions.env"
. "$ROOT/scripts/build-lib.sh"
. "$ROOT/packaging/lib.sh"
. "$ROOT/packaging/xen-hypervisor/build.sh"
. "$ROOT/packaging/fastivc-dkms/build.sh"
. "$ROOT/packaging/fastivc-tools/build.sh"

OUT="$B/debs"
# Reproducible: file times and changelog dates from the last commit (or 0 outside a checkout).
SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)
export SOURCE_DATE_EPOCH
# Every build of a new commit gets a higher version than the one before, so that `apt-get install ./X.deb` over an
# older build replaces it (the same version would be "already the newest"): +git<commit time>.<commit>.
DEB_BUILD_TAG=$(git -C "$ROOT" log -1 --format='git%cd.%h' --date=format-local:%Y%m%d%H%M 2>/dev/null || echo local)
export TZ=UTC DEB_BUILD_TAG

h=$(inputs_hash "$ROOT/packaging" "$B/xen/xen.gz" "$B/xen/src/xen/.config" "$ROOT/xen-patches" "$ROOT/guest-kmod" \
    "$B/kmod/fastivc.ko" "$B/ts" "$ROOT/native/build/Release/fastivc.node" "$ROOT/package.json" "$ROOT/package-lock.json" \
    "$ROOT/lab/guest" "$B/bench/ivcbench" "$ROOT/README.md" "NODE=$(node --version)" "XEN=$XEN_DEB_VERSION" \
    "EPOCH=$SOURCE_DATE_EPOCH")
if stamp_fresh debs "$h" && [ -f "$OUT/index.json" ]; then log "debs: up to date"; exit 0; fi
log "debs: building into build/debs/"
rm -rf "$OUT"; mkdir -p "$OUT"
files=()
files+=("$(build_xen_hypervisor "$OUT")")
files+=("$(build_fastivc_dkms "$OUT")")
files+=("$(build_fastivc_tools "$OUT")")
rm -rf "$OUT/stage" "$OUT"/*.help
# index.json: which file is which package, for the lab's image builder and the checks.
for f in "${files[@]}"; do
    jq -cn --arg file "$(basename "$f")" --arg package "$(dpkg-deb -f "$f" Package)" \
        --arg version "$(dpkg-deb -f "$f" Version)" --argjson bytes "$(stat -c %s "$f")" \
        --argjson installed_kib "$(dpkg-deb -f "$f" Installed-Size)" \
        '{package: $package, version: $version, file: $file, bytes: $bytes, installed_kib: $installed_kib}'
done | jq -s 'map({key: .package, value: .}) | from_entries' > "$OUT/index.json"
stamp_write debs "$h"
jq -r '.[] | "  \(.file)  \(.bytes / 1048576 * 10 | floor / 10) MiB"' "$OUT/index.json"
