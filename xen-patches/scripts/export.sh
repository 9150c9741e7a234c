#!/usr/bin/env bash
# Regenerate xen-patches/NNNN-*.patch and xen-patches/series from the commits of build/xen-work (pristine..HEAD),
# made by xen-patches/scripts/worktree.sh.
#
#   xen-patches/scripts/export.sh           rewrite the patch files and series
#   xen-patches/scripts/export.sh --check   only compare; exit 1 if the committed files differ from the work tree
#
# The output is stable: the same commits always give byte-identical files (zeroed commit ids, no signature, no
# "n/N" numbering in subjects, fixed abbreviation length, each patch keeps its author date), so exporting an
# unchanged work tree twice changes nothing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${XEN_WORK:-$ROOT/build/xen-work}
PATCHES="$ROOT/xen-patches"

check=
case ${1:-} in
    '') ;;
    --check) check=1 ;;
    *) echo "usage: export.sh [--check]" >&2; exit 2 ;;
esac

[ -d "$WORK/.git" ] || { echo "export: no work tree at $WORK (run xen-patches/scripts/worktree.sh)" >&2; exit 1; }
g() {
    git -C "$WORK" -c core.abbrev=12 -c diff.noprefix=false -c diff.mnemonicPrefix=false -c diff.renames=true \
        -c diff.algorithm=myers -c format.signature= -c format.coverLetter=false -c format.numbered=false \
        -c format.thread=false "$@"
}
g rev-parse -q --verify pristine >/dev/null || { echo "export: $WORK has no tag pristine" >&2; exit 1; }
if [ -n "$(g status --porcelain --untracked-files=no)" ]; then
    echo "export: warning: $WORK has uncommitted changes; they are not exported" >&2
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
g format-patch -q --no-signature --zero-commit --no-numbered --no-binary --stat=80 --subject-prefix=PATCH \
    --start-number=1 -o "$out" pristine..HEAD >/dev/null

{
    sed -n '/^#/p' "$PATCHES/series"
    (cd "$out" && LC_ALL=C ls -1 -- *.patch 2>/dev/null || true)
} > "$out/series"

if [ -n "$check" ]; then
    rc=0
    diff -u "$PATCHES/series" "$out/series" || rc=1
    for f in "$out"/*.patch; do
        [ -e "$f" ] || continue
        cmp -s "$f" "$PATCHES/$(basename "$f")" || { echo "export: $(basename "$f") differs" >&2; rc=1; }
    done
    for f in "$PATCHES"/[0-9][0-9][0-9][0-9]-*.patch; do
        [ -e "$f" ] || continue
        [ -e "$out/$(basename "$f")" ] || { echo "export: $(basename "$f") is not in the work tree" >&2; rc=1; }
    done
    [ $rc = 0 ] && echo "export: xen-patches matches $WORK" >&2
    exit $rc
fi

rm -f "$PATCHES"/[0-9][0-9][0-9][0-9]-*.patch
n=0
for f in "$out"/*.patch; do
    [ -e "$f" ] || continue
    cp "$f" "$PATCHES/"
    n=$((n + 1))
done
cp "$out/series" "$PATCHES/series"
echo "export: $n patch(es) written to xen-patches/ from $WORK" >&2
