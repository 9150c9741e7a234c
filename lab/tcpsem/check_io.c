// SPDX-License-Identifier: GPL-2.0-only
/*
 * tcpsem checks on send/recv flags and modes: nonblocking, msg_peek,
 * msg_waitall, so_rcvtimeo, msg_oob.
 */
#include "tcpsem.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* "-1 <ERRNO>" or the number, for details. */
static const char *ret_str(ssize_t r, int e)
{
	static char b[2][40];
	static int i;

	i ^= 1;
	if (r < 0)
		snprintf(b[i], sizeof(b[i]), "-1 %s", errname(e));
	else
		snprintf(b[i], sizeof(b[i]), "%zd", r);
	return b[i];
}

/* r must be -1 with errno EAGAIN (== EWOULDBLOCK on Linux). */
static int expect_eagain(ssize_t r, const char *what)
{
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	return fail("%s returned %s, expected -1 EAGAIN", what, ret_str(r, errno));
}

/* ---- nonblocking ---- */

#define NB_CHUNK (64u << 10)
#define NB_FILL_MAX (256ull << 20) /* the peer does not read: EAGAIN long before */
#define NB_STALL_MS 300		   /* client: not writable this long = buffers full */
#define NB_SETTLE_MS 1000	   /* server: queue unchanged this long = client stalled */
#define NB_PEEK_MAX (32u << 20)

int nonblocking_client(int fd, struct ctx *c)
{
	static uint8_t buf[NB_CHUNK];
	char sv[LINE_MAX_LEN], *p;
	uint64_t total = 0, server_total;
	unsigned eagains = 0;
	double t_stall;
	long drain_ms;
	ssize_t r;
	int ev;

	if (set_nonblock(fd, 1) < 0)
		return -1;
	if (expect_eagain(recv(fd, buf, 1, 0), "O_NONBLOCK recv on an empty socket") < 0 ||
	    expect_eagain(read(fd, buf, 1), "O_NONBLOCK read on an empty socket") < 0)
		return -1;
	/* Fill until the socket stays unwritable for NB_STALL_MS (the peer is not reading). */
	for (;;) {
		pat_fill(c->check->seed, total, buf, NB_CHUNK);
		r = send(fd, buf, NB_CHUNK, MSG_NOSIGNAL);
		if (r > 0) {
			total += (uint64_t)r;
			if (total > NB_FILL_MAX)
				return fail("no EAGAIN after %llu bytes although the peer does not read",
					    (unsigned long long)total);
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (!(r < 0 && errno == EAGAIN))
			return fail("O_NONBLOCK send at offset %llu returned %s, expected > 0 or -1 EAGAIN",
				    (unsigned long long)total, ret_str(r, errno));
		eagains++;
		ev = wait_for(fd, POLLOUT, NB_STALL_MS);
		if (ev < 0)
			return fail_sys("poll(POLLOUT)");
		if (ev == 0)
			break;
	}
	t_stall = now_s();
	ev = wait_for(fd, POLLOUT, 10000);
	if (ev < 0)
		return fail_sys("poll(POLLOUT) while the peer drains");
	if (!(ev & POLLOUT))
		return fail("after EAGAIN at %llu bytes, poll(POLLOUT) gave 0x%x within 10 s of the peer draining",
			    (unsigned long long)total, ev);
	drain_ms = ms_since(t_stall);
	pat_fill(c->check->seed, total, buf, NB_CHUNK);
	r = send(fd, buf, NB_CHUNK, MSG_NOSIGNAL);
	if (r <= 0)
		return fail("send after POLLOUT returned %s, expected > 0", ret_str(r, errno));
	total += (uint64_t)r;
	if (set_nonblock(fd, 0) < 0)
		return -1;
	if (shutdown(fd, SHUT_WR) < 0)
		return fail_sys("shutdown(SHUT_WR)");
	if (read_verdict(fd, sv, sizeof(sv)) < 0)
		return -1;
	p = strstr(sv, "received ");
	if (!p)
		return fail("server verdict without a byte count: '%s'", sv);
	server_total = strtoull(p + 9, NULL, 10);
	if (server_total != total)
		return fail("sent %llu bytes, the server received %llu",
			    (unsigned long long)total, (unsigned long long)server_total);
	if (expect_eof(fd, 5000, "after the verdict") < 0)
		return -1;
	note("recv/read on an empty socket: -1 EAGAIN; wrote %llu bytes (%u EAGAIN) until unwritable for %d ms; POLLOUT %ld ms later as the peer drained; totals equal; server: %s",
	     (unsigned long long)total, eagains, NB_STALL_MS, drain_ms, sv);
	return 0;
}

int nonblocking_server(int fd, struct ctx *c)
{
	static uint8_t buf[NB_CHUNK];
	uint8_t *peek = malloc(NB_PEEK_MAX); /* only the touched pages are used */
	ssize_t q, last = -1;
	double t_changed = now_s(), t0 = t_changed;
	uint64_t off = 0;

	if (!peek)
		return send_verdict(fd, fail("out of memory"));
	/* Don't read until the queue has stopped growing: the client is blocked. */
	for (;;) {
		q = recv(fd, peek, NB_PEEK_MAX, MSG_PEEK | MSG_DONTWAIT);
		if (q < 0 && errno != EAGAIN && errno != EINTR) {
			free(peek);
			return send_verdict(fd, fail_sys("recv(MSG_PEEK|MSG_DONTWAIT)"));
		}
		if (q == 0) {
			free(peek);
			return send_verdict(fd, fail("EOF before any data"));
		}
		if (q != last) {
			last = q;
			t_changed = now_s();
		} else if (q > 0 && ms_since(t_changed) >= NB_SETTLE_MS) {
			break;
		}
		msleep(50);
	}
	free(peek);
	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return send_verdict(fd, fail_sys("recv at offset %llu", (unsigned long long)off));
		if (r == 0)
			break;
		if (pat_verify(c->check->seed, off, buf, (size_t)r, "server") < 0)
			return send_verdict(fd, -1);
		off += (uint64_t)r;
	}
	note("received %llu bytes to EOF, verified; started reading when %zd bytes had been queued for %d ms (%ld ms after the CHECK line)",
	     (unsigned long long)off, last, NB_SETTLE_MS, ms_since(t0));
	return send_verdict(fd, 0);
}

/* ---- msg_peek ---- */

int msg_peek_client(int fd, struct ctx *c)
{
	uint8_t a[100], b[100], d[100];
	uint32_t seed = c->check->seed;
	ssize_t r, q;

	q = wait_queued(fd, 100, 2000);
	if (q != 100)
		return q < 0 ? fail_sys("recv(MSG_PEEK|MSG_DONTWAIT)")
			     : fail("MSG_PEEK saw %zd of the server's 100 bytes within 2 s", q);
	r = recv(fd, a, 100, MSG_PEEK);
	if (r != 100)
		return fail("first recv(100, MSG_PEEK) returned %s, expected 100", ret_str(r, errno));
	if (pat_verify(seed, 0, a, 100, "first peek") < 0)
		return -1;
	r = recv(fd, b, 100, MSG_PEEK);
	if (r != 100 || memcmp(a, b, 100))
		return fail("second recv(100, MSG_PEEK) returned %s%s", ret_str(r, errno),
			    r == 100 ? " with different bytes" : ", expected 100");
	r = recv(fd, d, 100, 0);
	if (r != 100 || memcmp(a, d, 100))
		return fail("recv(100) after the peeks returned %s%s", ret_str(r, errno),
			    r == 100 ? " with bytes other than the peeked ones" : ", expected 100");
	if (expect_eagain(recv(fd, d, 1, MSG_PEEK | MSG_DONTWAIT),
			  "recv(MSG_PEEK|MSG_DONTWAIT) on the drained socket") < 0)
		return -1;
	/* The server now writes 30 then (50 ms later) 70 bytes. */
	if (send_exact(fd, "n", 1, "go byte") < 0)
		return -1;
	q = wait_queued(fd, 100, 2000);
	if (q != 100)
		return q < 0 ? fail_sys("recv(MSG_PEEK|MSG_DONTWAIT)")
			     : fail("MSG_PEEK across two writes (30 + 70 bytes) saw %zd bytes within 2 s", q);
	r = recv(fd, a, 100, MSG_PEEK);
	if (r != 100)
		return fail("recv(100, MSG_PEEK) across two writes returned %s, expected 100",
			    ret_str(r, errno));
	if (pat_verify(seed, 100, a, 100, "peek across two writes") < 0)
		return -1;
	r = recv(fd, d, 30, 0);
	if (r != 30 || memcmp(a, d, 30))
		return fail("recv(30) returned %s%s", ret_str(r, errno),
			    r == 30 ? " with bytes other than the peeked ones" : ", expected 30");
	r = recv(fd, b, 100, MSG_PEEK);
	if (r != 70 || memcmp(a + 30, b, 70))
		return fail("recv(100, MSG_PEEK) with 70 left returned %s%s", ret_str(r, errno),
			    r == 70 ? " with other bytes" : ", expected 70");
	r = recv(fd, d, 100, 0);
	if (r != 70 || memcmp(a + 30, d, 70))
		return fail("recv(100) with 70 left returned %s%s", ret_str(r, errno),
			    r == 70 ? " with other bytes" : ", expected 70");
	if (send_exact(fd, "q", 1, "done byte") < 0 || expect_eof(fd, 5000, "after the data") < 0)
		return -1;
	note("peek(100) twice = recv(100); EAGAIN when drained; peek(100) across writes of 30+70 = 100; recv(30), peek -> 70, recv -> 70");
	return 0;
}

int msg_peek_server(int fd, struct ctx *c)
{
	uint8_t buf[200], b;

	pat_fill(c->check->seed, 0, buf, sizeof(buf));
	if (send_exact(fd, buf, 100, "first 100 bytes") < 0 ||
	    recv_exact(fd, &b, 1, "go byte") < 0 ||
	    send_exact(fd, buf + 100, 30, "30 bytes") < 0)
		return -1;
	msleep(50);
	if (send_exact(fd, buf + 130, 70, "70 bytes") < 0 || recv_exact(fd, &b, 1, "done byte") < 0)
		return -1;
	return 0;
}

/* ---- msg_waitall ---- */

#define WAITALL_WRITES 10
#define WAITALL_SIZE 1000
#define WAITALL_GAP_MS 20

int msg_waitall_client(int fd, struct ctx *c)
{
	uint8_t buf[WAITALL_WRITES * WAITALL_SIZE];
	double t0 = now_s();
	ssize_t r;
	long ms;

	r = recv(fd, buf, sizeof(buf), MSG_WAITALL);
	ms = ms_since(t0);
	if (r != (ssize_t)sizeof(buf))
		return fail("recv(%zu, MSG_WAITALL) returned %s after %ld ms", sizeof(buf),
			    ret_str(r, errno), ms);
	if (pat_verify(c->check->seed, 0, buf, sizeof(buf), "data") < 0)
		return -1;
	/* The last write is at least 9 x 20 ms after the first. */
	if (ms < 150)
		return fail("recv(MSG_WAITALL) returned all %zu bytes after %ld ms, before the last write could have been sent",
			    sizeof(buf), ms);
	if (expect_eof(fd, 5000, "after the data") < 0)
		return -1;
	note("one recv(%zu, MSG_WAITALL) returned %zu after %ld ms (%d writes of %d bytes %d ms apart)",
	     sizeof(buf), sizeof(buf), ms, WAITALL_WRITES, WAITALL_SIZE, WAITALL_GAP_MS);
	return 0;
}

int msg_waitall_server(int fd, struct ctx *c)
{
	uint8_t buf[WAITALL_SIZE];
	int i;

	for (i = 0; i < WAITALL_WRITES; i++) {
		if (i)
			msleep(WAITALL_GAP_MS);
		pat_fill(c->check->seed, (uint64_t)i * WAITALL_SIZE, buf, sizeof(buf));
		if (send_exact(fd, buf, sizeof(buf), "write") < 0)
			return -1;
	}
	return 0;
}

/* ---- so_rcvtimeo ---- */

int so_rcvtimeo_client(int fd, struct ctx *c)
{
	struct timeval tv = { 0, 300000 };
	uint8_t b;
	double t0;
	ssize_t r;
	long ms;
	int e;

	(void)c;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return fail_sys("setsockopt(SO_RCVTIMEO, 300 ms)");
	t0 = now_s();
	r = recv(fd, &b, 1, 0);
	e = errno;
	ms = ms_since(t0);
	if (!(r < 0 && (e == EAGAIN || e == EWOULDBLOCK)))
		return fail("recv with SO_RCVTIMEO 300 ms on an empty socket returned %s after %ld ms, expected -1 EAGAIN",
			    ret_str(r, e), ms);
	if (ms < 250 || ms > 2000)
		return fail("recv with SO_RCVTIMEO 300 ms gave EAGAIN after %ld ms (expected 250..2000)", ms);
	/* The connection still works afterwards. */
	tv.tv_usec = 0;
	tv.tv_sec = 5;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return fail_sys("setsockopt(SO_RCVTIMEO, 5 s)");
	if (send_exact(fd, "x", 1, "ping") < 0 || recv_exact(fd, &b, 1, "pong") < 0)
		return -1;
	if (b != 'y')
		return fail("pong is 0x%02x, expected 'y'", b);
	if (shutdown(fd, SHUT_WR) < 0)
		return fail_sys("shutdown(SHUT_WR)");
	if (expect_eof(fd, 5000, "after the pong") < 0)
		return -1;
	note("recv -> -1 EAGAIN after %ld ms; the connection still works", ms);
	return 0;
}

int so_rcvtimeo_server(int fd, struct ctx *c)
{
	uint8_t b;

	(void)c;
	if (recv_exact(fd, &b, 1, "ping") < 0)
		return -1;
	if (b != 'x')
		return fail("ping is 0x%02x, expected 'x'", b);
	if (send_exact(fd, "y", 1, "pong") < 0)
		return -1;
	return expect_eof(fd, 10000, "after the pong");
}

/* ---- msg_oob ---- */

int msg_oob_client(int fd, struct ctx *c)
{
	char inband[16];
	size_t got = 0;
	int ev, mark0, mark1, pri, tries = 0, e = 0;
	ssize_t r;
	char oob = 0;
	double t0 = now_s();

	(void)c;
	ev = wait_for(fd, POLLPRI, 2000);
	if (ev < 0)
		return fail_sys("poll(POLLPRI)");
	pri = !!(ev & POLLPRI);
	mark0 = sockatmark(fd);
	/* recv(MSG_OOB) never blocks: EAGAIN/EINVAL until the urgent byte is in. */
	for (;;) {
		tries++;
		r = recv(fd, &oob, 1, MSG_OOB);
		e = errno;
		if (r >= 0 || (e != EAGAIN && e != EINVAL && e != EINTR) || ms_since(t0) > 2000)
			break;
		msleep(10);
	}
	/* In-band: everything up to 3 bytes (or what arrives within 2 s). */
	while (got < 3) {
		ssize_t n;

		if (wait_for(fd, POLLIN, 2000) <= 0)
			break;
		n = recv(fd, inband + got, sizeof(inband) - got, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	mark1 = sockatmark(fd);
	if (shutdown(fd, SHUT_WR) < 0)
		return fail_sys("shutdown(SHUT_WR)");
	/* Whatever follows up to EOF is in-band too (e.g. an inline urgent byte). */
	for (;;) {
		ssize_t n;

		if (wait_for(fd, POLLIN, 5000) <= 0 || got == sizeof(inband))
			break;
		n = recv(fd, inband + got, sizeof(inband) - got, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	note("server sent \"abc\" then '!' with MSG_OOB: POLLPRI %s; sockatmark %d before, %d after the in-band read; recv(MSG_OOB) %s%s%s after %d tries; in-band \"%.*s\" (%zu bytes) then EOF",
	     pri ? "seen" : "not seen within 2 s", mark0, mark1,
	     r >= 0 ? "returned " : "-> ", ret_str(r, e),
	     r == 1 ? (oob == '!' ? " '!'" : " (not '!')") : "", tries, (int)got, inband, got);
	if (r == 1 && oob == '!' && got == 3 && !memcmp(inband, "abc", 3))
		return 0;
	return -1;
}

int msg_oob_server(int fd, struct ctx *c)
{
	ssize_t r;

	(void)c;
	if (send_exact(fd, "abc", 3, "in-band bytes") < 0)
		return -1;
	r = send(fd, "!", 1, MSG_OOB | MSG_NOSIGNAL);
	if (r != 1)
		return r < 0 ? fail_sys("send(1, MSG_OOB)") : fail("send(1, MSG_OOB) returned %zd", r);
	return expect_eof(fd, 15000, "after the urgent byte");
}
