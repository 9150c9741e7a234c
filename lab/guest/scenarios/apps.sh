# Scenarios with unmodified applications from the XWAY list, over whatever path the kernel gives them (the normal
# netfront -> bridge -> netback path, or a fastivc tunnel when one is up). The applications are Debian's, as
# installed in the domUs by lab/images/build-images.sh; nothing in them knows about fastivc.
# Functions only: dom0/run.sh decides which of them run and under which names.

FTP_BYTES=$((64 << 20))
FTP_REPEAT=3    # downloads per scenario: the median is reported, since one transfer of a second or two is noisy under TCG

# scn_ftp_get CLIENT_IP SERVER_IP: the client fetches a 64 MiB random file from vsftpd on the server (anonymous,
# passive mode) with busybox's ftpget, FTP_REPEAT times; each download is timed inside the client (ftpget from start
# to exit: login, transfer, quit), checked by size and sha256, and the median time gives the rate. FTP_MOVED: the
# bytes all downloads carried, for the caller's counters.
scn_ftp_get() {
    local client=$1 server=$2
    [ -n "$client" ] && [ -n "$server" ] || { fail "scn_ftp_get needs CLIENT_IP SERVER_IP"; return 1; }
    local bytes=$FTP_BYTES name=ftp-get.bin i out rc t0 t1 secs sum1 sum2 got free times=()
    agent "$server" "pidof vsftpd >/dev/null" \
        || { fail "vsftpd is not running on $server: $(agent "$server" cat /var/log/vsftpd.log 2>&1 | tr '\n' ' ')"; return 1; }
    # The download lands in the client's /tmp (tmpfs, half the domU's RAM): a scenario that failed before cleaning
    # up can leave too little room, which would otherwise show up as a short transfer.
    agent "$client" rm -f "/tmp/$name"
    free=$(agent "$client" "df -k /tmp | awk 'NR == 2 { print \$4 }'" 2>/dev/null | tr -d ' \n')
    if [ -z "$free" ] || [ "$free" -lt $((bytes / 1024 + 1024)) ]; then
        fail "only ${free:-?} KiB free in /tmp on $client for the $((bytes >> 20)) MiB download; largest there: $(agent "$client" "du -sk /tmp/* 2>/dev/null | sort -rn | head -3" | tr '\n\t' '; ')"
        return 1
    fi
    if ! agent "$server" "head -c $bytes /dev/urandom > /srv/ftp/$name && chmod 644 /srv/ftp/$name && sha256sum /srv/ftp/$name" \
        > "$OUT/ftp.src" 2>&1; then
        agent "$server" rm -f "/srv/ftp/$name"
        agent "$server" "df -k / /tmp; free -k; dmesg | tail -5"
        fail "cannot make the test file in /srv/ftp on $server: $(tr '\n' ' ' < "$OUT/ftp.src")"; return 1
    fi
    sum1=$(cut -d' ' -f1 "$OUT/ftp.src")
    FTP_MOVED=0
    for i in $(seq 1 "$FTP_REPEAT"); do
        # bounded well inside the lab's idle timeout, so a stuck transfer fails this scenario with its diagnostics
        out=$(agent "$client" "rm -f /tmp/$name; t0=\$(cut -d' ' -f1 /proc/uptime); timeout 120 ftpget -u anonymous -p lab@ $server /tmp/$name $name > /tmp/ftp.get 2>&1; rc=\$?; t1=\$(cut -d' ' -f1 /proc/uptime); echo \$rc \$t0 \$t1; cat /tmp/ftp.get")
        read -r rc t0 t1 <<< "$(head -n 1 <<< "$out")"
        tail -n +2 <<< "$out" > "$OUT/ftp.get"
        got=$(agent "$client" "wc -c < /tmp/$name" 2>/dev/null | tr -d ' \n'); [ -n "$got" ] || got=0
        sum2=$(agent "$client" sha256sum "/tmp/$name" 2>/dev/null | cut -d' ' -f1)
        secs=$(awk -v a="${t0:-0}" -v b="${t1:-0}" 'BEGIN { printf "%.2f", b - a }')
        echo "download $i: sent $sum1 received $sum2 ($got bytes) in $secs s, ftpget exit ${rc:-?}"
        FTP_MOVED=$((FTP_MOVED + got))
        if [ "${rc:-1}" -ne 0 ] || [ "$got" -ne "$bytes" ] || [ -z "$sum1" ] || [ "$sum1" != "$sum2" ]; then
            # The files take 64 MiB of RAM each in the domUs' initramfs and tmpfs: free it for the next scenario.
            agent "$client" rm -f "/tmp/$name"; agent "$server" rm -f "/srv/ftp/$name"
            [ "${rc:-1}" -eq 0 ] || { fail "ftpget from $server exited ${rc:-?} after $got of $bytes bytes: $(tail -n 2 "$OUT/ftp.get" | tr '\n' ' ')"; return 1; }
            [ "$got" -eq "$bytes" ] || { fail "ftpget got $got of $bytes bytes"; return 1; }
            fail "sha256 differs after the FTP download"; return 1
        fi
        times+=("$secs")
    done
    agent "$client" rm -f "/tmp/$name"; agent "$server" rm -f "/srv/ftp/$name"
    secs=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ t[NR] = $1 } END { print t[int((NR + 1) / 2)] }')
    metrics "$(jq -cn --argjson b "$bytes" --argjson s "$secs" --argjson n "$FTP_REPEAT" \
        --argjson lo "$(printf '%s\n' "${times[@]}" | sort -n | head -n 1)" --argjson hi "$(printf '%s\n' "${times[@]}" | sort -n | tail -n 1)" \
        '{bytes: $b, downloads: $n, seconds: $s, seconds_min: $lo, seconds_max: $hi,
          throughput_MBps: (if $s > 0 then ($b / $s / 1e6) * 100 | round / 100 else null end), sha256_match: true}')"
    awk -v s="$secs" 'BEGIN { exit !(s > 0) }' || { fail "no time measured for the downloads (${times[*]})"; return 1; }
}
