// SPDX-License-Identifier: GPL-2.0-only
/* tcpsem checks on readiness notification: poll_in, epoll_lt_et. */
#include "tcpsem.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- poll_in ---- */

#define POLL_DELAY_MS 300 /* the server writes this long after the CHECK line */
#define POLL_BYTES 64

int poll_in_client(int fd, struct ctx *c)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint8_t buf[POLL_BYTES];
	double t0 = now_s();
	long ms0, ms1;
	int r;

	r = poll(&p, 1, 200);
	ms0 = ms_since(t0);
	if (r != 0)
		return r < 0 ? fail_sys("poll(POLLIN, 200 ms)")
			     : fail("poll(POLLIN, 200 ms) with no data returned %d (revents 0x%x) after %ld ms, expected 0",
				    r, p.revents, ms0);
	if (ms0 < 150)
		return fail("poll(POLLIN, 200 ms) timed out after only %ld ms", ms0);
	p.revents = 0;
	r = poll(&p, 1, 2000);
	ms1 = ms_since(t0);
	if (r != 1 || !(p.revents & POLLIN))
		return r < 0 ? fail_sys("poll(POLLIN, 2 s)")
			     : fail("poll(POLLIN, 2 s) returned %d (revents 0x%x) %ld ms after the CHECK line; the server writes after %d ms",
				    r, p.revents, ms1, POLL_DELAY_MS);
	if (recv_exact(fd, buf, sizeof(buf), "data") < 0 ||
	    pat_verify(c->check->seed, 0, buf, sizeof(buf), "data") < 0 ||
	    expect_eof(fd, 5000, "after the data") < 0)
		return -1;
	note("poll 200 ms -> 0 after %ld ms; poll 2 s -> POLLIN at %ld ms (server wrote %d bytes at >= %d ms)",
	     ms0, ms1, POLL_BYTES, POLL_DELAY_MS);
	return 0;
}

int poll_in_server(int fd, struct ctx *c)
{
	uint8_t buf[POLL_BYTES];

	msleep(POLL_DELAY_MS);
	pat_fill(c->check->seed, 0, buf, sizeof(buf));
	return send_exact(fd, buf, sizeof(buf), "data");
}

/* ---- epoll_lt_et ---- */

/* epoll_wait for one event: the count (0 or 1), events in *ev; -1 with the detail set. */
static int ewait(int ep, int ms, uint32_t *ev, const char *what)
{
	struct epoll_event e = { 0 };
	int r;

	do
		r = epoll_wait(ep, &e, 1, ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return fail_sys("%s: epoll_wait", what);
	*ev = r ? e.events : 0;
	return r;
}

/* epoll_wait(ms) must return want events (0 or 1, with `bit` set if 1). */
static int expect_ewait(int ep, int ms, int want, uint32_t bit, const char *what)
{
	uint32_t ev;
	int r = ewait(ep, ms, &ev, what);

	if (r < 0)
		return -1;
	if (r != want || (want && !(ev & bit)))
		return fail("%s: epoll_wait(%d ms) returned %d (events 0x%x), expected %d%s", what, ms,
			    r, ev, want, want ? (bit == EPOLLIN ? " with EPOLLIN" : " with EPOLLOUT") : "");
	return 0;
}

static int ctl(int ep, int op, int fd, uint32_t events, const char *what)
{
	struct epoll_event e = { .events = events, .data.fd = fd };

	if (epoll_ctl(ep, op, fd, &e) < 0)
		return fail_sys("epoll_ctl %s", what);
	return 0;
}

/* Reads exactly n bytes (stream offset off) and verifies them. */
static int take(int fd, uint32_t seed, uint64_t off, size_t n, const char *what)
{
	uint8_t buf[256];

	if (recv_exact(fd, buf, n, what) < 0)
		return -1;
	return pat_verify(seed, off, buf, n, what);
}

static int epoll_steps(int ep, int fd, uint32_t seed, char *split, size_t split_size)
{
	uint32_t ev;
	int r;

	/* An idle connected socket is writable. */
	if (ctl(ep, EPOLL_CTL_ADD, fd, EPOLLOUT, "ADD EPOLLOUT") < 0 ||
	    expect_ewait(ep, 0, 1, EPOLLOUT, "idle socket, EPOLLOUT") < 0)
		return -1;
	/* Level-triggered EPOLLIN. */
	if (ctl(ep, EPOLL_CTL_MOD, fd, EPOLLIN, "MOD EPOLLIN") < 0 ||
	    expect_ewait(ep, 100, 0, 0, "LT, no data") < 0 ||
	    send_exact(fd, "1", 1, "LT go byte") < 0 ||
	    expect_ewait(ep, 2000, 1, EPOLLIN, "LT, server wrote 100 bytes") < 0)
		return -1;
	if (wait_queued(fd, 100, 2000) < 100)
		return fail("LT: the server's 100 bytes did not all arrive within 2 s");
	if (expect_ewait(ep, 0, 1, EPOLLIN, "LT, 100 bytes unread (again)") < 0 ||
	    expect_ewait(ep, 0, 1, EPOLLIN, "LT, 100 bytes unread (third time)") < 0 ||
	    take(fd, seed, 0, 40, "LT read 40") < 0 ||
	    expect_ewait(ep, 0, 1, EPOLLIN, "LT, 60 bytes left") < 0 ||
	    take(fd, seed, 40, 60, "LT read 60") < 0 ||
	    expect_ewait(ep, 0, 0, 0, "LT, all read") < 0)
		return -1;
	/* Edge-triggered EPOLLIN, armed with nothing queued. */
	if (ctl(ep, EPOLL_CTL_MOD, fd, EPOLLIN | EPOLLET, "MOD EPOLLIN|EPOLLET") < 0 ||
	    expect_ewait(ep, 100, 0, 0, "ET, no data") < 0 ||
	    send_exact(fd, "2", 1, "ET go byte") < 0 ||
	    expect_ewait(ep, 2000, 1, EPOLLIN, "ET, server wrote 100 bytes") < 0)
		return -1;
	if (wait_queued(fd, 100, 2000) < 100)
		return fail("ET: the server's 100 bytes did not all arrive within 2 s");
	/* One more edge is allowed if the 100 bytes arrived in pieces; then none. */
	r = ewait(ep, 0, &ev, "ET, after the edge");
	if (r < 0)
		return -1;
	snprintf(split, split_size, "%s", r ? " (the 100 bytes came in 2+ pieces: 2 edges)" : "");
	if (expect_ewait(ep, 0, 0, 0, "ET, 100 bytes unread, no new data") < 0 ||
	    take(fd, seed, 100, 40, "ET read 40") < 0 ||
	    expect_ewait(ep, 0, 0, 0, "ET, 60 bytes left, no new data") < 0 ||
	    send_exact(fd, "3", 1, "ET go byte 2") < 0 ||
	    expect_ewait(ep, 2000, 1, EPOLLIN, "ET, server wrote 50 more bytes") < 0 ||
	    take(fd, seed, 140, 110, "ET read 110") < 0)
		return -1;
	return 0;
}

int epoll_lt_et_client(int fd, struct ctx *c)
{
	char split[80];
	int ep = epoll_create1(EPOLL_CLOEXEC), rc;

	if (ep < 0)
		return fail_sys("epoll_create1");
	rc = epoll_steps(ep, fd, c->check->seed, split, sizeof(split));
	close(ep);
	if (rc < 0)
		return -1;
	if (send_exact(fd, "q", 1, "done byte") < 0 || expect_eof(fd, 5000, "at the end") < 0)
		return -1;
	note("EPOLLOUT on an idle socket; LT: 0 without data, EPOLLIN repeated while 100/60 bytes unread, 0 when read; ET: one EPOLLIN per write%s, none while data stays unread, a new one for new data",
	     split);
	return 0;
}

int epoll_lt_et_server(int fd, struct ctx *c)
{
	char cmd;

	/* '1': stream bytes 0..99 (LT), '2': 100..199 and '3': 200..249 (ET). */
	for (;;) {
		uint8_t data[150];
		ssize_t r = recv(fd, &cmd, 1, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fail_sys("recv command");
		if (r == 0)
			return fail("EOF before the done byte");
		switch (cmd) {
		case '1':
			pat_fill(c->check->seed, 0, data, 100);
			break;
		case '2':
			pat_fill(c->check->seed, 100, data, 100);
			break;
		case '3':
			pat_fill(c->check->seed, 200, data, 50);
			break;
		case 'q':
			return 0;
		default:
			return fail("unexpected command byte 0x%02x", (uint8_t)cmd);
		}
		if (send_exact(fd, data, cmd == '3' ? 50 : 100, "data") < 0)
			return -1;
	}
}
