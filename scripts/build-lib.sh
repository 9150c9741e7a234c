# Shared helpers for build.sh and the lab image builder. Expects B (the build/ folder) and DEBIAN_SUITE to be set.

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'build: %s\n' "$*" >&2; exit 1; }

# A step reruns only when the files, folders and NAME=value strings it depends on change.
inputs_hash() {
    local a
    for a in "$@"; do
        if [ -d "$a" ]; then (cd "$a" && find . -type f ! -name '*.o' -print0 | LC_ALL=C sort -z | xargs -0r sha256sum)
        elif [ -f "$a" ]; then sha256sum "$a"
        else printf '%s\n' "$a"; fi
    done | sha256sum | cut -d' ' -f1
}
stamp_fresh() { [ -f "$B/stamps/$1" ] && [ "$(cat "$B/stamps/$1")" = "$2" ]; }
stamp_write() { mkdir -p "$B/stamps"; printf '%s' "$2" > "$B/stamps/$1"; }

# The machine's own Debian mirror for $DEBIAN_SUITE, read from its apt sources (no host name in our files).
debian_mirror() {
    awk -v suite="$DEBIAN_SUITE" 'BEGIN { RS = "" }
        $0 ~ ("Suites:[^\n]*" suite "([ \n]|$)") && /Types: deb/ {
            if (match($0, /URIs: *[^ \n]+/)) { s = substr($0, RSTART, RLENGTH); sub(/URIs: */, "", s); print s; exit }
        }' /etc/apt/sources.list.d/debian.sources
}

# copy_with_libs ROOTFS DEST PROGRAM...: copies each program from ROOTFS into DEST with the shared libraries and
# the dynamic loader it needs, as resolved by ldd inside ROOTFS.
copy_with_libs() {
    local rootfs=$1 dest=$2; shift 2
    local prog f
    for prog in "$@"; do
        [ -e "$rootfs$prog" ] || die "copy_with_libs: $prog not in $rootfs"
        printf '%s\n' "$prog"
        chroot "$rootfs" ldd "$prog" 2>/dev/null | awk '/=> \// { print $3 } /^\t\/[^ ]+ \(/ { print $1 }'
    done | sort -u | while read -r f; do
        mkdir -p "$dest$(dirname "$f")"
        cp -L "$rootfs$f" "$dest$f"
    done
}
