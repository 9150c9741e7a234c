// SPDX-License-Identifier: GPL-2.0-only
/*
 * tcpsem checks on the data itself: bulk_both_ways, many_small_writes,
 * partial_reads, readv_writev, sendfile, sendfile_first, splice_read,
 * rr_ping_pong.
 */
#include "tcpsem.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/* The server -> client stream of a check that sends both ways uses this seed. */
#define BACK_SEED(c) ((c)->check->seed + 1000)

/* ---- bulk_both_ways ---- */

#define BULK_BYTES (8u << 20)
#define BULK_WRITE (64u << 10)
#define WRITER_SHORT 255 /* writer exit status: a blocking send returned short */

/*
 * Forks a process that sends BULK_BYTES of the seed's pattern in blocking
 * 64 KiB send() calls (each must return 65536).  Exit status 0, the errno of
 * a failed send, or WRITER_SHORT.  Returns its pid, or -1 (detail set).
 */
static pid_t bulk_writer(int fd, uint32_t seed, double timeout)
{
	static uint8_t buf[BULK_WRITE];
	uint64_t off;
	pid_t pid = fork();

	if (pid < 0)
		return fail_sys("fork");
	if (pid > 0)
		return pid;
	alarm((unsigned)timeout + 1); /* fork does not inherit the alarm */
	for (off = 0; off < BULK_BYTES; off += BULK_WRITE) {
		ssize_t r;

		pat_fill(seed, off, buf, BULK_WRITE);
		do
			r = send(fd, buf, BULK_WRITE, MSG_NOSIGNAL);
		while (r < 0 && errno == EINTR);
		if (r < 0)
			_exit(errno > 0 && errno < WRITER_SHORT ? errno : 1);
		if (r != BULK_WRITE)
			_exit(WRITER_SHORT);
	}
	_exit(0);
}

/* Waits for a writer from bulk_writer: 0 if it sent everything, else -1 (detail set). */
static int writer_status(pid_t pid, const char *who)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return fail_sys("%s writer: waitpid", who);
	if (WIFSIGNALED(st))
		return fail("%s writer killed by signal %d%s", who, WTERMSIG(st),
			    WTERMSIG(st) == SIGALRM ? " (timed out)" : "");
	if (WEXITSTATUS(st) == WRITER_SHORT)
		return fail("%s writer: a blocking send(65536) returned short", who);
	if (WEXITSTATUS(st)) {
		errno = WEXITSTATUS(st);
		return fail_sys("%s writer: send", who);
	}
	return 0;
}

/*
 * Both directions at once: a forked writer sends send_seed's stream while
 * this process reads and verifies exactly BULK_BYTES of recv_seed's stream.
 */
static int bulk_run(int fd, uint32_t send_seed, uint32_t recv_seed, double timeout,
		    const char *who, unsigned *recvs)
{
	static uint8_t buf[BULK_WRITE];
	uint64_t off = 0;
	pid_t w = bulk_writer(fd, send_seed, timeout);

	if (w < 0)
		return -1;
	*recvs = 0;
	while (off < BULK_BYTES) {
		size_t want = BULK_BYTES - off < BULK_WRITE ? BULK_BYTES - off : BULK_WRITE;
		ssize_t r = recv(fd, buf, want, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r < 0)
				fail_sys("%s: recv at offset %llu", who, (unsigned long long)off);
			else
				fail("%s: EOF after %llu of %u bytes", who,
				     (unsigned long long)off, BULK_BYTES);
			goto kill_writer;
		}
		if (pat_verify(recv_seed, off, buf, (size_t)r, who) < 0)
			goto kill_writer;
		off += (uint64_t)r;
		++*recvs;
	}
	return writer_status(w, who);
kill_writer:
	kill(w, SIGKILL);
	waitpid(w, NULL, 0);
	return -1;
}

int bulk_both_ways_client(int fd, struct ctx *c)
{
	char sv[LINE_MAX_LEN];
	unsigned recvs;

	if (bulk_run(fd, c->check->seed, BACK_SEED(c), c->o->timeout, "client", &recvs) < 0 ||
	    read_verdict(fd, sv, sizeof(sv)) < 0 || expect_eof(fd, 5000, "after the verdict") < 0)
		return -1;
	note("%u bytes each way at once, 64 KiB blocking writes; client verified in %u recvs; server: %s",
	     BULK_BYTES, recvs, sv);
	return 0;
}

int bulk_both_ways_server(int fd, struct ctx *c)
{
	unsigned recvs;
	int rc = bulk_run(fd, BACK_SEED(c), c->check->seed, c->o->timeout, "server", &recvs);

	if (rc == 0)
		note("verified %u bytes in %u recvs", BULK_BYTES, recvs);
	return send_verdict(fd, rc);
}

/* ---- many_small_writes ---- */

#define SMALL_COUNT 20000
#define SMALL_READ 4096

/* SMALL_COUNT send() calls of 1 byte, each must return 1. */
static int small_writes(int fd, uint32_t seed, const char *who)
{
	int i;

	for (i = 0; i < SMALL_COUNT; i++) {
		uint8_t b = pat_byte(seed, (uint64_t)i);
		ssize_t r;

		do
			r = send(fd, &b, 1, MSG_NOSIGNAL);
		while (r < 0 && errno == EINTR);
		if (r != 1)
			return r < 0 ? fail_sys("%s: send #%d of 1 byte", who, i)
				     : fail("%s: send #%d of 1 byte returned %zd", who, i, r);
	}
	return 0;
}

/* Reads `count` bytes (to EOF if to_eof) with recv(4096) calls; exact. */
static int small_reads(int fd, uint32_t seed, int to_eof, const char *who, unsigned *reads)
{
	static uint8_t buf[SMALL_READ];
	uint64_t off = 0;

	*reads = 0;
	for (;;) {
		size_t want = SMALL_READ;
		ssize_t r;

		if (!to_eof) {
			if (off == SMALL_COUNT)
				return 0;
			if (SMALL_COUNT - off < want)
				want = SMALL_COUNT - off;
		}
		r = recv(fd, buf, want, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fail_sys("%s: recv at offset %llu", who, (unsigned long long)off);
		if (r == 0) {
			if (off != SMALL_COUNT)
				return fail("%s: EOF after %llu bytes, expected %d", who,
					    (unsigned long long)off, SMALL_COUNT);
			return 0;
		}
		if (off + (uint64_t)r > SMALL_COUNT)
			return fail("%s: more than %d bytes (%llu)", who, SMALL_COUNT,
				    (unsigned long long)(off + (uint64_t)r));
		if (pat_verify(seed, off, buf, (size_t)r, who) < 0)
			return -1;
		off += (uint64_t)r;
		++*reads;
	}
}

int many_small_writes_client(int fd, struct ctx *c)
{
	char sv[LINE_MAX_LEN];
	unsigned reads;

	if (small_writes(fd, c->check->seed, "client") < 0)
		return -1;
	if (shutdown(fd, SHUT_WR) < 0)
		return fail_sys("shutdown(SHUT_WR)");
	if (small_reads(fd, BACK_SEED(c), 0, "client", &reads) < 0 ||
	    read_verdict(fd, sv, sizeof(sv)) < 0 || expect_eof(fd, 5000, "after the verdict") < 0)
		return -1;
	note("%d one-byte writes each way; client read them in %u recv(4096); server: %s",
	     SMALL_COUNT, reads, sv);
	return 0;
}

int many_small_writes_server(int fd, struct ctx *c)
{
	unsigned reads = 0;
	int rc = small_reads(fd, c->check->seed, 1, "server", &reads);
	char mine[DETAIL_MAX];

	snprintf(mine, sizeof(mine), "%s", detail);
	if (small_writes(fd, BACK_SEED(c), "server") < 0)
		return -1; /* the client sees a short stream */
	if (rc == 0)
		note("read %d bytes in %u recv(4096) up to EOF", SMALL_COUNT, reads);
	else
		note("%s", mine);
	return send_verdict(fd, rc);
}

/* ---- partial_reads ---- */

#define PARTIAL_BYTES 10000

int partial_reads_client(int fd, struct ctx *c)
{
	static const size_t sizes[] = { 1, 7, 100, 4096 };
	uint8_t buf[4096];
	size_t off = 0;
	ssize_t q, r = 0;
	unsigned calls = 0;

	/* All 10000 bytes queued first, so every recv's return value is exact. */
	q = wait_queued(fd, PARTIAL_BYTES, 2000);
	if (q < 0)
		return fail_sys("recv(MSG_PEEK|MSG_DONTWAIT)");
	if (q < PARTIAL_BYTES)
		return fail("only %zd of %d bytes queued after 2 s", q, PARTIAL_BYTES);
	while (off < PARTIAL_BYTES) {
		size_t want = sizes[calls % 4];
		size_t exp = PARTIAL_BYTES - off < want ? PARTIAL_BYTES - off : want;

		r = recv(fd, buf, want, 0);
		if (r < 0)
			return fail_sys("recv(%zu) at offset %zu", want, off);
		if ((size_t)r != exp)
			return fail("recv(%zu) at offset %zu returned %zd, expected %zu", want, off,
				    r, exp);
		if (pat_verify(c->check->seed, off, buf, (size_t)r, "recv") < 0)
			return -1;
		off += (size_t)r;
		calls++;
	}
	q = recv(fd, buf, 1, MSG_DONTWAIT);
	if (!(q < 0 && errno == EAGAIN))
		return q < 0 ? fail_sys("recv(MSG_DONTWAIT) after all %d bytes, expected EAGAIN",
					PARTIAL_BYTES)
			     : fail("recv(MSG_DONTWAIT) after all %d bytes returned %zd, expected -1 EAGAIN",
				    PARTIAL_BYTES, q);
	if (send_exact(fd, "x", 1, "done byte") < 0 || expect_eof(fd, 5000, "after the data") < 0)
		return -1;
	note("one %d-byte write read by %u recvs of 1/7/100/4096 bytes, each exact (last %zd), then EAGAIN",
	     PARTIAL_BYTES, calls, r);
	return 0;
}

int partial_reads_server(int fd, struct ctx *c)
{
	uint8_t buf[PARTIAL_BYTES], b;
	ssize_t r;

	pat_fill(c->check->seed, 0, buf, sizeof(buf));
	r = send(fd, buf, sizeof(buf), MSG_NOSIGNAL);
	if (r != PARTIAL_BYTES)
		return r < 0 ? fail_sys("send(%d)", PARTIAL_BYTES)
			     : fail("send(%d) returned %zd", PARTIAL_BYTES, r);
	return recv_exact(fd, &b, 1, "done byte");
}

/* ---- readv_writev ---- */

#define NIOV 64
#define IOV_GAP 3 /* poisoned bytes between two iovecs' buffers */
#define POISON 0xee

/* Two different partitions of the same total into 64 odd sizes. */
static size_t layout(int side, size_t sizes[NIOV])
{
	size_t total = 0, sum = 0;
	int k;

	for (k = 0; k < NIOV; k++)
		total += 2 * ((size_t)(k * 29) % 97) + 1;
	for (k = 0; k < NIOV; k++) {
		if (side == 0)
			sizes[k] = 2 * ((size_t)(k * 29) % 97) + 1;
		else
			sizes[k] = k < NIOV - 1 ? 2 * ((size_t)(k * 53 + 11) % 89) + 1 : total - sum;
		sum += sizes[k];
	}
	return total;
}

/* 64 iovecs over buf, IOV_GAP bytes apart; returns the total. */
static size_t make_iov(int side, uint8_t *buf, struct iovec iov[NIOV])
{
	size_t sizes[NIOV], total = layout(side, sizes), pos = 0;
	int k;

	for (k = 0; k < NIOV; k++) {
		iov[k].iov_base = buf + pos;
		iov[k].iov_len = sizes[k];
		pos += sizes[k] + IOV_GAP;
	}
	return total;
}

#define IOV_BUF (7000 + NIOV * IOV_GAP)

/* One writev() of the 64 iovecs of `side`'s layout; it must return the total. */
static int iov_send(int fd, int side, uint32_t seed, const char *who, size_t *total)
{
	static uint8_t buf[IOV_BUF];
	struct iovec iov[NIOV];
	size_t off = 0;
	ssize_t r;
	int k;

	*total = make_iov(side, buf, iov);
	for (k = 0; k < NIOV; k++) {
		pat_fill(seed, off, iov[k].iov_base, iov[k].iov_len);
		off += iov[k].iov_len;
	}
	r = writev(fd, iov, NIOV);
	if (r < 0)
		return fail_sys("%s: writev of %d iovecs", who, NIOV);
	if ((size_t)r != *total)
		return fail("%s: writev of %d iovecs (%zu bytes) returned %zd", who, NIOV, *total, r);
	return 0;
}

/* readv() into the 64 iovecs of `side`'s layout until all are full; verified. */
static int iov_recv(int fd, int side, uint32_t seed, const char *who, unsigned *calls)
{
	static uint8_t buf[IOV_BUF];
	struct iovec iov[NIOV], cur[NIOV];
	size_t total, got = 0, off = 0, pos = 0;
	int k, first = 0;

	memset(buf, POISON, sizeof(buf));
	total = make_iov(side, buf, iov);
	memcpy(cur, iov, sizeof(iov));
	*calls = 0;
	while (got < total) {
		ssize_t r = readv(fd, cur + first, NIOV - first);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fail_sys("%s: readv at offset %zu", who, got);
		if (r == 0)
			return fail("%s: EOF after %zu of %zu bytes", who, got, total);
		++*calls;
		got += (size_t)r;
		while (r > 0) {
			size_t n = (size_t)r < cur[first].iov_len ? (size_t)r : cur[first].iov_len;

			cur[first].iov_base = (uint8_t *)cur[first].iov_base + n;
			cur[first].iov_len -= n;
			r -= (ssize_t)n;
			if (!cur[first].iov_len)
				first++;
		}
	}
	for (k = 0; k < NIOV; k++) {
		if (pat_verify(seed, off, iov[k].iov_base, iov[k].iov_len, who) < 0)
			return -1;
		off += iov[k].iov_len;
		pos = (size_t)((uint8_t *)iov[k].iov_base - buf) + iov[k].iov_len;
		for (size_t g = pos; g < pos + IOV_GAP && g < sizeof(buf); g++)
			if (buf[g] != POISON)
				return fail("%s: readv wrote past iovec %d", who, k);
	}
	return 0;
}

int readv_writev_client(int fd, struct ctx *c)
{
	char sv[LINE_MAX_LEN];
	size_t total;
	unsigned calls;

	if (iov_send(fd, 0, c->check->seed, "client", &total) < 0 ||
	    iov_recv(fd, 0, BACK_SEED(c), "client", &calls) < 0 ||
	    read_verdict(fd, sv, sizeof(sv)) < 0 || expect_eof(fd, 5000, "after the verdict") < 0)
		return -1;
	note("writev of %d odd-sized iovecs (%zu bytes) returned %zu; readv into %d others in %u calls, exact; server: %s",
	     NIOV, total, total, NIOV, calls, sv);
	return 0;
}

int readv_writev_server(int fd, struct ctx *c)
{
	size_t total;
	unsigned calls;
	int rc = iov_recv(fd, 1, c->check->seed, "server", &calls);
	char mine[DETAIL_MAX];

	snprintf(mine, sizeof(mine), "%s", detail);
	if (iov_send(fd, 1, BACK_SEED(c), "server", &total) < 0)
		return -1;
	if (rc == 0)
		note("readv into %d iovecs in %u calls, exact; writev returned %zu", NIOV, calls, total);
	else
		note("%s", mine);
	return send_verdict(fd, rc);
}

/* ---- sendfile ---- */

#define SENDFILE_BYTES (4u << 20)

int sendfile_client(int fd, struct ctx *c)
{
	static uint8_t buf[64 << 10];
	char sv[LINE_MAX_LEN];
	uint64_t off = 0;

	if (read_verdict(fd, sv, sizeof(sv)) < 0)
		return -1;
	while (off < SENDFILE_BYTES) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fail_sys("recv at offset %llu", (unsigned long long)off);
		if (r == 0)
			return fail("EOF after %llu of %u bytes", (unsigned long long)off,
				    SENDFILE_BYTES);
		if (off + (uint64_t)r > SENDFILE_BYTES)
			return fail("more than %u bytes", SENDFILE_BYTES);
		if (pat_verify(c->check->seed, off, buf, (size_t)r, "data") < 0)
			return -1;
		off += (uint64_t)r;
	}
	if (expect_eof(fd, 5000, "after the file") < 0)
		return -1;
	note("%u bytes sent with sendfile() from a file in /tmp, verified, then EOF", SENDFILE_BYTES);
	return 0;
}

int sendfile_server(int fd, struct ctx *c)
{
	static uint8_t buf[64 << 10];
	char path[] = "/tmp/tcpsem-sendfile-XXXXXX";
	off_t off = 0;
	unsigned calls = 0;
	int tfd = mkstemp(path);

	if (tfd < 0) {
		fail_sys("mkstemp(%s)", path);
		return send_verdict(fd, -1);
	}
	unlink(path);
	for (uint64_t o = 0; o < SENDFILE_BYTES; o += sizeof(buf)) {
		pat_fill(c->check->seed, o, buf, sizeof(buf));
		if (netutil_write_full(tfd, buf, sizeof(buf)) < 0) {
			fail_sys("write %s", path);
			close(tfd);
			return send_verdict(fd, -1);
		}
	}
	note("file ready");
	if (send_verdict(fd, 0) < 0) {
		close(tfd);
		return -1;
	}
	while (off < (off_t)SENDFILE_BYTES) {
		ssize_t r = sendfile(fd, tfd, &off, SENDFILE_BYTES - (size_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r < 0)
				fail_sys("sendfile at offset %lld", (long long)off);
			else
				fail("sendfile returned 0 at offset %lld", (long long)off);
			close(tfd);
			return -1;
		}
		calls++;
	}
	close(tfd);
	note("sendfile: %u bytes in %u calls", SENDFILE_BYTES, calls);
	return 0;
}

/* ---- sendfile_first ---- */

/*
 * The server's very first bytes are a sendfile(), as on an FTP data connection: the tunnel is created on the first
 * page and the switch can fall inside a batch of pages that TCP holds back (MSG_SENDPAGE_NOTLAST). The client reads
 * with a stall limit, so bytes stuck before the switch fail the check instead of timing it out.
 */
#define SENDFILE_FIRST_BYTES (1u << 20)
#define SENDFILE_FIRST_STALL_MS 5000

int sendfile_first_client(int fd, struct ctx *c)
{
	static uint8_t buf[64 << 10];
	uint64_t off = 0;

	while (off < SENDFILE_FIRST_BYTES) {
		int ev = wait_for(fd, POLLIN, SENDFILE_FIRST_STALL_MS);
		ssize_t r;

		if (ev < 0)
			return fail_sys("poll at offset %llu", (unsigned long long)off);
		if (ev == 0)
			return fail("stalled: %llu of %u bytes after %d ms without data", (unsigned long long)off,
				    SENDFILE_FIRST_BYTES, SENDFILE_FIRST_STALL_MS);
		r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			return fail_sys("recv at offset %llu", (unsigned long long)off);
		if (r == 0)
			return fail("EOF after %llu of %u bytes", (unsigned long long)off, SENDFILE_FIRST_BYTES);
		if (off + (uint64_t)r > SENDFILE_FIRST_BYTES)
			return fail("more than %u bytes", SENDFILE_FIRST_BYTES);
		if (pat_verify(c->check->seed + 1000, off, buf, (size_t)r, "data") < 0)
			return -1;
		off += (uint64_t)r;
	}
	if (expect_eof(fd, 5000, "after the file") < 0)
		return -1;
	note("%u bytes, the server's first, sent with sendfile(), verified, then EOF", SENDFILE_FIRST_BYTES);
	return 0;
}

int sendfile_first_server(int fd, struct ctx *c)
{
	static uint8_t buf[64 << 10];
	char path[] = "/tmp/tcpsem-sendfile-first-XXXXXX";
	off_t off = 0;
	int tfd = mkstemp(path);

	if (tfd < 0)
		return fail_sys("mkstemp(%s)", path);
	unlink(path);
	for (uint64_t o = 0; o < SENDFILE_FIRST_BYTES; o += sizeof(buf)) {
		pat_fill(c->check->seed + 1000, o, buf, sizeof(buf));
		if (netutil_write_full(tfd, buf, sizeof(buf)) < 0) {
			close(tfd);
			return fail_sys("write %s", path);
		}
	}
	while (off < (off_t)SENDFILE_FIRST_BYTES) {
		ssize_t r = sendfile(fd, tfd, &off, SENDFILE_FIRST_BYTES - (size_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			close(tfd);
			return r < 0 ? fail_sys("sendfile at offset %lld", (long long)off)
				     : fail("sendfile returned 0 at offset %lld", (long long)off);
		}
	}
	close(tfd);
	return 0;
}

/* ---- splice_read ---- */

/*
 * The client reads with splice() from the socket into a pipe, then read()s the pipe: over a tunnel the data must
 * come through splice as it does with TCP's own zero-copy splice.
 */
#define SPLICE_BYTES (1u << 20)
#define SPLICE_STALL_MS 5000

/* Exactly n bytes from a pipe that holds at least n: n, or -1. */
static ssize_t read_pipe(int fd, uint8_t *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

int splice_read_client(int fd, struct ctx *c)
{
	static uint8_t buf[64 << 10];
	uint64_t off = 0;
	int p[2], rc = -1;

	if (pipe(p) < 0)
		return fail_sys("pipe");
	for (;;) {
		int ev = wait_for(fd, POLLIN, SPLICE_STALL_MS);
		ssize_t n, r;

		if (ev < 0) {
			fail_sys("poll at offset %llu", (unsigned long long)off);
			break;
		}
		if (ev == 0) {
			fail("stalled: %llu of %u bytes after %d ms without data", (unsigned long long)off, SPLICE_BYTES,
			     SPLICE_STALL_MS);
			break;
		}
		n = splice(fd, NULL, p[1], NULL, sizeof(buf), SPLICE_F_NONBLOCK);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			fail_sys("splice at offset %llu", (unsigned long long)off);
			break;
		}
		if (n == 0) { /* EOF */
			if (off == SPLICE_BYTES) {
				note("%u bytes read with splice() into a pipe, verified, then EOF", SPLICE_BYTES);
				rc = 0;
			} else {
				fail("EOF after %llu of %u bytes", (unsigned long long)off, SPLICE_BYTES);
			}
			break;
		}
		if (off + (uint64_t)n > SPLICE_BYTES) {
			fail("more than %u bytes", SPLICE_BYTES);
			break;
		}
		r = read_pipe(p[0], buf, (size_t)n);
		if (r != n) {
			fail_sys("read %zd spliced bytes from the pipe (got %zd)", n, r);
			break;
		}
		if (pat_verify(c->check->seed + 1000, off, buf, (size_t)n, "data") < 0)
			break;
		off += (uint64_t)n;
	}
	close(p[0]);
	close(p[1]);
	return rc;
}

int splice_read_server(int fd, struct ctx *c)
{
	static uint8_t buf[64 << 10];

	for (uint64_t o = 0; o < SPLICE_BYTES; o += sizeof(buf)) {
		pat_fill(c->check->seed + 1000, o, buf, sizeof(buf));
		if (send_exact(fd, buf, sizeof(buf), "data") < 0)
			return -1;
	}
	return 0;
}

/* ---- rr_ping_pong ---- */

#define RR_COUNT 2000

int rr_ping_pong_client(int fd, struct ctx *c)
{
	char sv[LINE_MAX_LEN];
	double t0;
	int i;

	if (set_nodelay(fd) < 0)
		return -1;
	t0 = now_s();
	for (i = 0; i < RR_COUNT; i++) {
		uint8_t b = pat_byte(c->check->seed, (uint64_t)i), reply;
		ssize_t r = send(fd, &b, 1, MSG_NOSIGNAL);

		if (r != 1)
			return r < 0 ? fail_sys("send of request %d", i)
				     : fail("send of request %d returned %zd", i, r);
		do
			r = recv(fd, &reply, 1, 0);
		while (r < 0 && errno == EINTR);
		if (r != 1)
			return r < 0 ? fail_sys("recv of reply %d", i)
				     : fail("recv of reply %d returned %zd (EOF)", i, r);
		if (reply != (uint8_t)(b + 1))
			return fail("reply %d is 0x%02x, expected 0x%02x (request + 1)", i, reply,
				    (uint8_t)(b + 1));
	}
	if (shutdown(fd, SHUT_WR) < 0)
		return fail_sys("shutdown(SHUT_WR)");
	if (read_verdict(fd, sv, sizeof(sv)) < 0 || expect_eof(fd, 5000, "after the verdict") < 0)
		return -1;
	note("%d one-byte round trips, each reply = request + 1, mean %.1f us; server: %s",
	     RR_COUNT, (now_s() - t0) * 1e6 / RR_COUNT, sv);
	return 0;
}

int rr_ping_pong_server(int fd, struct ctx *c)
{
	int count = 0, rc = 0;

	if (set_nodelay(fd) < 0)
		return send_verdict(fd, -1);
	for (;;) {
		uint8_t b;
		ssize_t r = recv(fd, &b, 1, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fail_sys("recv of request %d", count);
		if (r == 0)
			break;
		if (rc == 0 && b != pat_byte(c->check->seed, (uint64_t)count))
			rc = fail("request %d is 0x%02x, expected 0x%02x", count, b,
				  pat_byte(c->check->seed, (uint64_t)count));
		b++;
		if (send_exact(fd, &b, 1, "reply") < 0)
			return -1;
		count++;
	}
	if (rc == 0 && count != RR_COUNT)
		rc = fail("%d requests before EOF, expected %d", count, RR_COUNT);
	if (rc == 0)
		note("answered %d requests, then EOF", count);
	return send_verdict(fd, rc);
}
