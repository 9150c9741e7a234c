// SPDX-License-Identifier: GPL-2.0-only
/*
 * tcpsem checks of the corners a reader can take without blocking in recv:
 *   recv_zero      recv(fd, buf, 0, flags) as TCP answers it: on an empty socket EAGAIN at once with MSG_DONTWAIT,
 *                  0 after one wait (here SO_RCVTIMEO's) when blocking; with data queued 0 at once, taking nothing.
 *   o_async_sigio  a reader that never blocks (O_NONBLOCK | O_ASYNC, F_SETOWN) and waits for SIGIO between its
 *                  reads receives 1 MiB byte-exact, each wait for the signal bounded (a reader without a
 *                  wait-queue entry must still be told about new data).
 * Each starts with 256 KiB from the server, so that on a tunnelled connection the rest travels in the tunnel.
 */
#include "tcpsem.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WARMUP (256u << 10)   /* bytes before the part under test: the switch to a tunnel happens in them */
#define ASYNC_BYTES (1u << 20)
#define SIGIO_WAIT_S 3        /* one wait for SIGIO, at most (the module's safety net wakes within 1 s) */

/* ---- recv_zero ---- */

/* One recv(fd, buf, 0, flags): what it returned, and how long it took. */
static ssize_t recv0(int fd, int flags, int *e, long *ms)
{
	uint8_t b;
	double t0 = now_s();
	ssize_t r = recv(fd, &b, 0, flags);

	*e = errno;
	*ms = ms_since(t0);
	return r;
}

int recv_zero_client(int fd, struct ctx *c)
{
	struct timeval tv = { 0, 300000 };
	uint64_t off = 0;
	long ms0, ms1, ms2;
	ssize_t r;
	int e;

	if (recv_pattern(fd, c->check->seed, &off, WARMUP, "the first 256 KiB") < 0)
		return -1;
	/* empty, non-blocking: EAGAIN at once (TCP's tcp_recvmsg with len 0 finds nothing and may not wait) */
	r = recv0(fd, MSG_DONTWAIT, &e, &ms0);
	if (!(r < 0 && e == EAGAIN) || ms0 > 1000)
		return fail("recv(0 bytes, MSG_DONTWAIT) on an empty socket: %zd %s after %ld ms, expected -1 EAGAIN at once",
			    r, r < 0 ? errname(e) : "", ms0);
	/* empty, blocking with SO_RCVTIMEO: TCP waits for data once, then returns 0 (here: after the timeout) */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return fail_sys("setsockopt(SO_RCVTIMEO, 300 ms)");
	r = recv0(fd, 0, &e, &ms1);
	if (r != 0 || ms1 < 250 || ms1 > 2000)
		return fail("recv(0 bytes) with SO_RCVTIMEO 300 ms on an empty socket: %zd %s after %ld ms, expected 0 after 250..2000 ms",
			    r, r < 0 ? errname(e) : "", ms1);
	tv.tv_sec = 0;
	tv.tv_usec = 0;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return fail_sys("setsockopt(SO_RCVTIMEO, none)");
	/* with a byte queued: 0 at once, and the byte stays */
	if (send_exact(fd, "y", 1, "ready") < 0 || wait_queued(fd, 1, 5000) != 1)
		return fail("the server's last byte did not come within 5 s");
	r = recv0(fd, 0, &e, &ms2);
	if (r != 0 || ms2 > 1000)
		return fail("recv(0 bytes) with a byte queued: %zd %s after %ld ms, expected 0 at once", r,
			    r < 0 ? errname(e) : "", ms2);
	if (recv_pattern(fd, c->check->seed, &off, 1, "the byte after the zero-length reads") < 0)
		return -1;
	if (shutdown(fd, SHUT_WR) < 0)
		return fail_sys("shutdown(SHUT_WR)");
	if (expect_eof(fd, 5000, "at the end") < 0)
		return -1;
	note("recv of 0 bytes: EAGAIN at once (MSG_DONTWAIT), 0 after %ld ms (SO_RCVTIMEO 300 ms), 0 at once with data, nothing taken",
	     ms1);
	return 0;
}

/*
 * The server side of both checks: WARMUP bytes, then, once the client says it is ready ('y'), `rest` more bytes
 * after `delay_ms` (so a client that waits is already waiting), then the client's EOF.
 */
static int serve_after_ready(int fd, uint32_t seed, size_t rest, int delay_ms, const char *what)
{
	uint64_t off = 0;
	uint8_t b;

	if (send_pattern(fd, seed, &off, WARMUP, "the first 256 KiB") < 0)
		return -1;
	if (recv_exact(fd, &b, 1, "ready") < 0)
		return -1;
	if (delay_ms)
		msleep(delay_ms);
	if (send_pattern(fd, seed, &off, rest, what) < 0)
		return -1;
	return expect_eof(fd, 10000, "at the end");
}

int recv_zero_server(int fd, struct ctx *c)
{
	return serve_after_ready(fd, c->check->seed, 1, 0, "the last byte");
}

/* ---- o_async_sigio ---- */

int o_async_sigio_client(int fd, struct ctx *c)
{
	static uint8_t buf[65536];
	struct timespec to = { SIGIO_WAIT_S, 0 };
	uint64_t off = 0;
	unsigned waits = 0;
	long worst = 0;
	sigset_t io;
	int fl;

	if (recv_pattern(fd, c->check->seed, &off, WARMUP, "the first 256 KiB") < 0)
		return -1;
	sigemptyset(&io);
	sigaddset(&io, SIGIO);
	if (sigprocmask(SIG_BLOCK, &io, NULL) < 0)
		return fail_sys("sigprocmask(SIGIO)");
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETOWN, getpid()) < 0 || fcntl(fd, F_SETFL, fl | O_ASYNC | O_NONBLOCK) < 0)
		return fail_sys("fcntl(F_SETOWN, O_ASYNC | O_NONBLOCK)");
	if (send_exact(fd, "y", 1, "ready") < 0)
		return -1;
	while (off < WARMUP + ASYNC_BYTES) {
		size_t want = WARMUP + ASYNC_BYTES - off;
		ssize_t r = recv(fd, buf, want < sizeof(buf) ? want : sizeof(buf), 0);

		if (r > 0) {
			if (pat_verify(c->check->seed, off, buf, (size_t)r, "the O_ASYNC data") < 0)
				return -1;
			off += (uint64_t)r;
			continue;
		}
		if (r == 0)
			return fail("EOF after %llu of %u bytes", (unsigned long long)(off - WARMUP), ASYNC_BYTES);
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return fail_sys("recv (O_ASYNC)");
		{
			double t0 = now_s();
			long ms;

			if (sigtimedwait(&io, NULL, &to) < 0) {
				if (errno == EAGAIN)
					return fail("no SIGIO within %d s with %llu of %u bytes read", SIGIO_WAIT_S,
						    (unsigned long long)(off - WARMUP), ASYNC_BYTES);
				if (errno != EINTR)
					return fail_sys("sigtimedwait(SIGIO)");
			}
			ms = ms_since(t0);
			if (ms > worst)
				worst = ms;
			waits++;
		}
	}
	if (fcntl(fd, F_SETFL, fl) < 0)
		return fail_sys("fcntl(F_SETFL)");
	if (shutdown(fd, SHUT_WR) < 0)
		return fail_sys("shutdown(SHUT_WR)");
	if (expect_eof(fd, 5000, "at the end") < 0)
		return -1;
	note("1 MiB read between SIGIOs, byte-exact: %u waits, the longest %ld ms", waits, worst);
	return 0;
}

int o_async_sigio_server(int fd, struct ctx *c)
{
	/* the client waits for SIGIO before the data comes */
	return serve_after_ready(fd, c->check->seed, ASYNC_BYTES, 100, "the O_ASYNC data");
}
