#!/usr/bin/env bash
# Apply xen-patches/series, in order, to an unpacked Xen source tree. Fails on the first patch that does not apply
# cleanly (no fuzz), naming it.
set -euo pipefail
tree=${1:?usage: apply-series.sh XEN_SOURCE_TREE}
dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
n=0
while IFS= read -r line || [ -n "$line" ]; do
    line=${line%%#*}; line=$(printf '%s' "$line" | tr -d '[:space:]')
    [ -n "$line" ] || continue
    [ -f "$dir/$line" ] || { echo "apply-series: $line is listed in series but missing" >&2; exit 1; }
    patch -d "$tree" -p1 -F0 -N -s < "$dir/$line" || { echo "apply-series: $line does not apply" >&2; exit 1; }
    n=$((n + 1))
done < "$dir/series"
echo "apply-series: $n patch(es) applied" >&2
