#!/usr/bin/env bash
# Make a git work tree of the patched Xen for editing the series: build/xen-work.
#
#   xen-patches/scripts/worktree.sh [--force] [--config]
#
# 1. Unpacks Debian's Xen source package (build/downloads/xen/xen_$XEN_DEB_VERSION.dsc, fetched by ./build.sh xen)
#    into build/xen-work with dpkg-source -x, exactly as ./build.sh xen does.
# 2. Makes it a git repository whose first commit is that pristine tree, tagged `pristine`.
# 3. Applies every patch of xen-patches/series as its own commit (git am; a patch that is not a git mail is applied
#    with git apply and committed under its file name).
#
# Edit there, commit (one commit per series patch; `git commit --fixup` + `git rebase -i --autosquash pristine` to
# change an earlier one), then run xen-patches/scripts/export.sh to regenerate xen-patches/NNNN-*.patch and series.
# The committed patch files are the only source of truth: the work tree is a disposable view of them.
#
#   --force   replace an existing build/xen-work (its unexported commits are lost)
#   --config  also copy xen-patches/xen.config to xen/.config and run olddefconfig, for incremental builds there
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../../lab/versions.env
. "$ROOT/lab/versions.env"
WORK=${XEN_WORK:-$ROOT/build/xen-work}
DSC="$ROOT/build/downloads/xen/xen_${XEN_DEB_VERSION}.dsc"
PATCHES="$ROOT/xen-patches"

force= config=
for a in "$@"; do
    case $a in
        --force) force=1 ;;
        --config) config=1 ;;
        *) echo "usage: worktree.sh [--force] [--config]" >&2; exit 2 ;;
    esac
done

[ -f "$DSC" ] || { echo "worktree: $DSC missing (run ./build.sh xen once to download it)" >&2; exit 1; }
if [ -e "$WORK" ]; then
    if [ -z "$force" ]; then
        echo "worktree: $WORK exists; export its commits first, then rerun with --force to recreate it" >&2
        exit 1
    fi
    rm -rf "$WORK"
fi
mkdir -p "$(dirname "$WORK")"

# Fixed identity and dates: the work tree's commits are reproducible, and patches keep their own author dates.
export GIT_AUTHOR_NAME=fastivc GIT_AUTHOR_EMAIL=fastivc@localhost
export GIT_COMMITTER_NAME=fastivc GIT_COMMITTER_EMAIL=fastivc@localhost
g() { git -C "$WORK" -c core.autocrlf=false -c core.safecrlf=false -c advice.detachedHead=false "$@"; }

echo "worktree: unpack $(basename "$DSC")" >&2
# apt checked the .dsc against the signed Sources index; dpkg-source cannot check the inline signature here.
dpkg-source -x "$DSC" "$WORK" >/dev/null 2>&1 || { echo "worktree: cannot unpack $DSC" >&2; exit 1; }

g init -q
g config user.name fastivc
g config user.email fastivc@localhost
g config core.abbrev 12
# Everything dpkg-source produced except quilt's bookkeeping, even files Xen's .gitignore would skip.
g add -A -f -- . ':!.pc'
echo /.pc/ >> "$WORK/.git/info/exclude"
GIT_AUTHOR_DATE='2000-01-01T00:00:00Z' GIT_COMMITTER_DATE='2000-01-01T00:00:00Z' \
    g commit -q --no-verify -m "pristine: Debian xen $XEN_DEB_VERSION (dpkg-source -x)"
g tag pristine

n=0
while IFS= read -r line || [ -n "$line" ]; do
    line=${line%%#*}; line=$(printf '%s' "$line" | tr -d '[:space:]')
    [ -n "$line" ] || continue
    p="$PATCHES/$line"
    [ -f "$p" ] || { echo "worktree: $line is listed in series but missing" >&2; exit 1; }
    if head -1 "$p" | grep -q '^From [0-9a-f]\{40\} '; then
        g am -q --committer-date-is-author-date --whitespace=nowarn "$p" \
            || { g am --abort || true; echo "worktree: $line does not apply (git am)" >&2; exit 1; }
    else
        g apply --index --whitespace=nowarn "$p" || { echo "worktree: $line does not apply (git apply)" >&2; exit 1; }
        g commit -q --no-verify -m "${line%.patch}"
    fi
    n=$((n + 1))
done < "$PATCHES/series"

if [ -n "$config" ]; then
    cp "$PATCHES/xen.config" "$WORK/xen/.config"
    make -s -C "$WORK/xen" olddefconfig >/dev/null
fi
echo "worktree: $WORK ready, $n patch(es) applied on tag pristine" >&2
