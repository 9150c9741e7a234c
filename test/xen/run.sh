#!/usr/bin/env bash
# Build and run the DEM unit harness against the patched Xen tree (default build/xen/src, made by ./build.sh xen;
# XEN_SRC=... to use another, e.g. build/xen-work). Exit status: the harness's (non-zero on any failure).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
XEN_SRC=${XEN_SRC:-$ROOT/build/xen/src}
[ -d "$XEN_SRC" ] || { echo "test/xen: no Xen tree at $XEN_SRC (run ./build.sh xen)" >&2; exit 1; }
XEN_SRC=$(cd "$XEN_SRC" && pwd)
OUT=${OUT:-$ROOT/build/test-xen}
SANITIZE=${SANITIZE:-}
if [ -z "$SANITIZE" ]; then
    # Sanitizers when this compiler can link them.
    if printf 'int main(void){return 0;}\n' | cc -x c -fsanitize=address,undefined -o /dev/null - 2>/dev/null; then
        SANITIZE=1
    else
        SANITIZE=0
        echo "test/xen: no ASan/UBSan here, building without" >&2
    fi
fi
make -s -C "$ROOT/test/xen" XEN_SRC="$XEN_SRC" OUT="$OUT" SANITIZE="$SANITIZE" all
XEN_SRC="$XEN_SRC" exec "$OUT/test_evtmgr" "$@"
