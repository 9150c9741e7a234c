// SPDX-License-Identifier: GPL-2.0-only
/*
 * tcpsem checks of a connection's life cycle around its data:
 *   user_timeout           with TCP_USER_TIMEOUT 2000 ms and a peer that stops reading (its window stays zero),
 *                          a writer that filled the socket until EAGAIN gets ETIMEDOUT (SO_ERROR, or its next
 *                          send) 1.5..8 s after the first EAGAIN.
 *   so_linger              with SO_LINGER {1, 10}, send(512 KiB) + close() do not return before the data can have
 *                          been delivered: >= 1000 ms while the reader pauses 1500 ms; close() returns 0, and the
 *                          reader gets exactly the 512 KiB, then EOF (two connections, token.c).
 *   close_unread_switched  close() with unread data that arrived after the reader's last recv resets the
 *                          connection: the writer sees ECONNRESET or EPIPE within 2 s and no EOF before it
 *                          (two connections, token.c).
 *   linger_poll_reader     the reader drains everything with poll + non-blocking recv and then polls for the
 *                          end; the writer's close() with SO_LINGER {1, 5} returns within 1 s (nothing is left
 *                          unread), and the reader's POLLIN is its EOF (recv 0, never EAGAIN).
 *   disconnect_reconnect   connect(AF_UNSPEC) ends a connection (0), and the same descriptor then connects again:
 *                          on the second connection 1 MiB each way at once arrives exact (a data path left over
 *                          from the first connection would swallow it).
 * Each starts with a warm-up in the direction under test and a pause, so that on a tunnelled connection the part
 * under test travels in the tunnel.  Every wait here has its own bound (poll timeouts, SO_SNDTIMEO, SO_LINGER).
 */
#include "tcpsem.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define WARMUP (256u << 10) /* bytes before the part under test: the switch to a tunnel happens in them */
#define PAUSE_MS 300        /* after the warm-up */
#define STALL_MS 5000       /* the longest a transfer may go without progress */
#define CHUNK (64u << 10)

/* The server -> client stream of a check uses this seed. */
#define BACK_SEED(c) ((c)->check->seed + 1000)

/* ---- helpers ---- */

static void detail_append(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void detail_append(const char *fmt, ...)
{
	size_t k = strlen(detail);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail + k, sizeof(detail) - k, fmt, ap);
	va_end(ap);
}

enum { XFER_OK = 0, XFER_ERR = -1, XFER_STALL = -2, XFER_STOP = -3 };

/*
 * Sends n bytes of the pattern at *off without blocking in send (poll for POLLOUT, then MSG_DONTWAIT), *off
 * advanced by what went out.  XFER_OK; XFER_ERR with errno; XFER_STALL if nothing went out for stall_ms;
 * XFER_STOP once *stop is set.  Touches no detail, so a writer thread can use it.
 */
static int pat_send(int fd, uint32_t seed, uint64_t *off, size_t n, int stall_ms, atomic_int *stop)
{
	uint8_t buf[CHUNK];
	uint64_t end = *off + n;
	size_t k = 0; /* bytes of buf filled for *off; 0: to fill */
	double last = now_s(); /* the last progress */

	while (*off < end) {
		ssize_t r;
		int ev;

		if (stop && atomic_load(stop))
			return XFER_STOP;
		if (!k) {
			k = end - *off < CHUNK ? (size_t)(end - *off) : CHUNK;
			pat_fill(seed, *off, buf, k);
		}
		ev = wait_for(fd, POLLOUT, 100);
		if (ev < 0)
			return XFER_ERR;
		if (ev == 0) {
			if (ms_since(last) >= stall_ms)
				return XFER_STALL;
			continue;
		}
		r = send(fd, buf, k, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				return XFER_ERR;
			if (ms_since(last) >= stall_ms)
				return XFER_STALL;
			msleep(1); /* writable by poll, EAGAIN by send: don't spin */
			continue;
		}
		*off += (uint64_t)r;
		k = 0;
		last = now_s();
	}
	return XFER_OK;
}

/* pat_send for one side's own thread: 0, or -1 with the detail naming `what`. */
static int send_pat(int fd, uint32_t seed, uint64_t *off, size_t n, const char *what)
{
	uint64_t start = *off;
	int r = pat_send(fd, seed, off, n, STALL_MS, NULL);

	if (r == XFER_STALL)
		return fail("%s: no room to send for %d ms after %llu of %zu bytes", what, STALL_MS,
			    (unsigned long long)(*off - start), n);
	if (r < 0)
		return fail_sys("%s: send after %llu of %zu bytes", what, (unsigned long long)(*off - start), n);
	return 0;
}

/* Receives and verifies n bytes of the pattern at *off, each wait bounded by stall_ms: 0, or -1 (detail set). */
static int recv_pat(int fd, uint32_t seed, uint64_t *off, size_t n, int stall_ms, const char *what)
{
	static uint8_t buf[CHUNK];
	uint64_t start = *off, end = *off + n;

	while (*off < end) {
		size_t k = end - *off < CHUNK ? (size_t)(end - *off) : CHUNK;
		int ev = wait_for(fd, POLLIN, stall_ms);
		ssize_t r;

		if (ev < 0)
			return fail_sys("%s: poll", what);
		if (ev == 0)
			return fail("%s: no data for %d ms after %llu of %zu bytes", what, stall_ms,
				    (unsigned long long)(*off - start), n);
		r = recv(fd, buf, k, MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			continue;
		if (r < 0)
			return fail_sys("%s: recv after %llu of %zu bytes", what, (unsigned long long)(*off - start),
					n);
		if (r == 0)
			return fail("%s: EOF after %llu of %zu bytes", what, (unsigned long long)(*off - start), n);
		if (pat_verify(seed, *off, buf, (size_t)r, what) < 0)
			return -1;
		*off += (uint64_t)r;
	}
	return 0;
}

/* The server's verdict, waited for at most ms. */
static int verdict_within(int fd, char *sv, size_t size, int ms)
{
	int ev = wait_for(fd, POLLIN, ms);

	if (ev < 0)
		return fail_sys("poll for the server's verdict");
	if (ev == 0)
		return fail("no verdict from the server within %d s", ms / 1000);
	return read_verdict(fd, sv, size);
}

/* A writer thread: n bytes of the pattern at off, as pat_send. */
struct writer {
	pthread_t th;
	int fd;
	uint32_t seed;
	uint64_t off; /* where it starts; after the join, where it got to */
	size_t n;
	atomic_int stop;
	int rc, err;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	w->rc = pat_send(w->fd, w->seed, &w->off, w->n, STALL_MS, &w->stop);
	w->err = errno;
	return NULL;
}

/*
 * Both directions at once on fd: a thread sends n bytes of send_seed's stream while this thread receives and
 * verifies n bytes of recv_seed's stream, both from stream offset off.  0, or -1 (detail set).
 */
static int both_ways(int fd, uint32_t send_seed, uint32_t recv_seed, uint64_t off, size_t n, const char *who)
{
	struct writer w = { .fd = fd, .seed = send_seed, .off = off, .n = n };
	uint64_t roff = off;
	int rc, e;

	atomic_init(&w.stop, 0);
	e = pthread_create(&w.th, NULL, writer_main, &w);
	if (e) {
		errno = e;
		return fail_sys("%s: pthread_create", who);
	}
	rc = recv_pat(fd, recv_seed, &roff, n, STALL_MS, who);
	if (rc < 0)
		atomic_store(&w.stop, 1);
	pthread_join(w.th, NULL);
	if (rc < 0) {
		detail_append(" (its writer had sent %llu of %zu bytes)", (unsigned long long)(w.off - off), n);
		return -1;
	}
	if (w.rc == XFER_STALL)
		return fail("%s: writer: no room to send for %d ms after %llu of %zu bytes (all %zu received)", who,
			    STALL_MS, (unsigned long long)(w.off - off), n, n);
	if (w.rc < 0) {
		errno = w.err;
		return fail_sys("%s: writer: send after %llu of %zu bytes", who, (unsigned long long)(w.off - off), n);
	}
	return 0;
}

/* ---- user_timeout ---- */

/*
 * Linux TCP aborts a connection whose peer keeps a zero window for longer than TCP_USER_TIMEOUT (the zero-window
 * probes are answered, but the timeout counts from the first probe): the error is ETIMEDOUT.  The client sends
 * the warm-up, which the server reads and acknowledges with a verdict line; then the server reads nothing more
 * (it sleeps UT_SERVER_SLEEP_S, bounded by its alarm) and the client fills the socket until EAGAIN.
 */
#define UT_TIMEOUT_MS 2000
#define UT_WAIT_MS 10000         /* for the error, from the first EAGAIN */
#define UT_MIN_MS 1500
#define UT_MAX_MS 8000
#define UT_FILL_MAX (256u << 20) /* a socket that takes this much without EAGAIN: the peer reads after all */
#define UT_SERVER_QUIET_MS 6000  /* the client's timeout comes 1.5..8 s after its EAGAIN, well within: it reports */
#define UT_SERVER_END_MS 6000    /* then the server reads on, and must find the end within this */

int user_timeout_client(int fd, struct ctx *c)
{
	static uint8_t buf[CHUNK];
	uint32_t seed = c->check->seed;
	unsigned to = UT_TIMEOUT_MS;
	char sv[LINE_MAX_LEN];
	uint64_t off = 0, to_eagain;
	double t_eagain, deadline;
	const char *how = NULL;
	int err = 0;
	long ms;

	if (send_pat(fd, seed, &off, WARMUP, "the warm-up") < 0 || verdict_within(fd, sv, sizeof(sv), STALL_MS) < 0)
		return -1;
	msleep(PAUSE_MS);
	if (setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &to, sizeof(to)) < 0)
		return fail_sys("setsockopt(TCP_USER_TIMEOUT, %u ms)", to);
	/* O_NONBLOCK writes until EAGAIN: the server does not read any more */
	for (;;) {
		ssize_t r;

		pat_fill(seed, off, buf, CHUNK);
		r = send(fd, buf, CHUNK, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r > 0) {
			off += (uint64_t)r;
			if (off - WARMUP > UT_FILL_MAX)
				return fail("no EAGAIN after %u bytes, though the server does not read", UT_FILL_MAX);
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		return r < 0 ? fail_sys("send after %llu bytes, before any EAGAIN", (unsigned long long)(off - WARMUP))
			     : fail("send(%u) returned 0", CHUNK);
	}
	to_eagain = off - WARMUP;
	t_eagain = now_s();
	deadline = t_eagain + UT_WAIT_MS / 1000.0;
	/* then wait for the socket's error: SO_ERROR once poll says something, else the next send */
	while (!how) {
		int left = (int)((deadline - now_s()) * 1000.0), ev, soerr = 0;
		socklen_t sl = sizeof(soerr);
		ssize_t r;

		if (left <= 0)
			return fail("no error within %d ms of the first EAGAIN (%llu bytes written until then, %llu in all; the server does not read)",
				    UT_WAIT_MS, (unsigned long long)to_eagain, (unsigned long long)(off - WARMUP));
		ev = wait_for(fd, POLLOUT | POLLERR, left);
		if (ev < 0)
			return fail_sys("poll(POLLOUT|POLLERR)");
		if (ev == 0)
			continue;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			return fail_sys("getsockopt(SO_ERROR)");
		if (soerr) {
			err = soerr;
			how = "SO_ERROR";
			break;
		}
		pat_fill(seed, off, buf, CHUNK);
		r = send(fd, buf, CHUNK, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r > 0) {
			off += (uint64_t)r;
			continue;
		}
		if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			err = errno;
			how = "send";
			break;
		}
		if (!(ev & POLLOUT))
			msleep(20); /* an event without an error yet: don't spin */
	}
	ms = ms_since(t_eagain);
	if (err != ETIMEDOUT)
		return fail("%s gave %s %ld ms after the first EAGAIN, expected ETIMEDOUT (TCP_USER_TIMEOUT %u ms; %llu bytes written until EAGAIN)",
			    how, errname(err), ms, UT_TIMEOUT_MS, (unsigned long long)to_eagain);
	if (ms < UT_MIN_MS || ms > UT_MAX_MS)
		return fail("ETIMEDOUT (%s) %ld ms after the first EAGAIN, expected %d..%d ms (TCP_USER_TIMEOUT %u ms; %llu bytes written until EAGAIN)",
			    how, ms, UT_MIN_MS, UT_MAX_MS, UT_TIMEOUT_MS, (unsigned long long)to_eagain);
	/* then the socket is done, as TCP leaves it (tcp_done()): POLLIN|POLLHUP, and a read ends at EOF */
	{
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int pr = poll(&p, 1, 0);
		ssize_t r;
		uint8_t b;

		if (pr != 1 || (p.revents & (POLLIN | POLLHUP)) != (POLLIN | POLLHUP))
			return fail("after ETIMEDOUT poll(POLLIN) gave revents 0x%x, expected POLLIN|POLLHUP (the socket is done)",
				    pr == 1 ? (unsigned)p.revents : 0u);
		r = recv(fd, &b, 1, MSG_DONTWAIT);
		if (r != 0)
			return r < 0 ? fail_sys("recv after ETIMEDOUT, expected 0 (EOF)")
				     : fail("recv after ETIMEDOUT returned %zd byte(s), expected 0 (EOF)", r);
	}
	note("TCP_USER_TIMEOUT %u ms, the server stopped reading: %llu bytes written until EAGAIN (%llu in all); %s ETIMEDOUT %ld ms after the first EAGAIN, then POLLIN|POLLHUP and EOF; server: %s",
	     UT_TIMEOUT_MS, (unsigned long long)to_eagain, (unsigned long long)(off - WARMUP), how, ms, sv);
	return 0;
}

/*
 * Once the client timed out, the server reads what it had not read, and then must find the connection reset: over
 * TCP its window updates draw a reset from the client's closed socket; over a tunnel nothing goes out on TCP, so the
 * client's module must reset the connection itself. A reader that waits on would wait for good. A failure is the
 * server's only: it goes to the server's stderr (the lab's scenarios look there).
 */
static int ut_server_sees_end(int fd, uint32_t seed, uint64_t off)
{
	static uint8_t buf[65536];
	struct timeval tv = { UT_SERVER_END_MS / 1000, (UT_SERVER_END_MS % 1000) * 1000 };
	uint64_t start = off;

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return fail_sys("setsockopt(SO_RCVTIMEO)");
	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);

		if (r > 0) {
			if (pat_verify(seed, off, buf, (size_t)r, "the bytes after the warm-up") < 0)
				return -1;
			off += (uint64_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == ECONNRESET) {
			note("after the client's timeout: read %llu more bytes, exact, then ECONNRESET",
			     (unsigned long long)(off - start));
			return 0;
		}
		if (r == 0)
			return fail("after the client's timeout: EOF after %llu more bytes, expected a reset",
				    (unsigned long long)(off - start));
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return fail("after the client's timeout: no end of the connection within %d ms of reading on (%llu more bytes read)",
				    UT_SERVER_END_MS, (unsigned long long)(off - start));
		return fail_sys("after the client's timeout: recv");
	}
}

int user_timeout_server(int fd, struct ctx *c)
{
	uint64_t off = 0;
	int rc = recv_pat(fd, c->check->seed, &off, WARMUP, STALL_MS, "the warm-up");

	if (rc == 0)
		note("warm-up of %u bytes verified; reading nothing more", WARMUP);
	if (send_verdict(fd, rc) < 0)
		return -1;
	/* The client's TCP_USER_TIMEOUT ends the connection on its side; this side stays silent meanwhile. */
	msleep(UT_SERVER_QUIET_MS);
	return ut_server_sees_end(fd, c->check->seed, off);
}

/* ---- so_linger ---- */

/*
 * Two connections (token.c): the control one ("CHECK so_linger") gets the token and, at the end, the data
 * server's verdict; on the data one ("CHECK so_linger.data") the client sends 1 KiB, 1 KiB more PAUSE_MS later,
 * then with SO_LINGER {1, 10} 512 KiB in a blocking send, and closes.  The server reads the 2 KiB, pauses
 * SL_SERVER_PAUSE_MS, then reads exactly 512 KiB and EOF.  Over TCP the 512 KiB cannot all be acknowledged before
 * the server reads (its receive buffer is smaller), so send + close take about the pause.
 */
#define SL_SMALL 1024
#define SL_BYTES (512u << 10)
#define SL_SERVER_PAUSE_MS 1500
#define SL_MIN_MS 1000
#define SL_LINGER_S 10

int so_linger_client(int fd, struct ctx *c)
{
	static uint8_t buf[SL_BYTES];
	struct linger lg = { .l_onoff = 1, .l_linger = SL_LINGER_S };
	struct timeval sto = { .tv_sec = SL_LINGER_S };
	uint32_t seed = c->check->seed;
	char sv[LINE_MAX_LEN];
	uint64_t off = 0;
	size_t sent = 0;
	unsigned calls = 0;
	long ms_send, ms_all;
	double t0;
	int data = token_connect(fd, c->o, "so_linger"), rc, e;

	if (data < 0)
		return -1;
	if (send_pat(data, seed, &off, SL_SMALL, "the first 1 KiB") < 0)
		goto out;
	msleep(PAUSE_MS);
	if (send_pat(data, seed, &off, SL_SMALL, "the second 1 KiB") < 0)
		goto out;
	if (setsockopt(data, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0) {
		fail_sys("setsockopt(SO_LINGER, {1, %d})", SL_LINGER_S);
		goto out;
	}
	/* bounds the blocking send (close is bounded by the linger time) */
	if (setsockopt(data, SOL_SOCKET, SO_SNDTIMEO, &sto, sizeof(sto)) < 0) {
		fail_sys("setsockopt(SO_SNDTIMEO, %d s)", SL_LINGER_S);
		goto out;
	}
	pat_fill(seed, off, buf, SL_BYTES);
	t0 = now_s();
	while (sent < SL_BYTES) {
		ssize_t r = send(data, buf + sent, SL_BYTES - sent, MSG_NOSIGNAL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			fail("blocking send of %u bytes: no progress for %d s (SO_SNDTIMEO) after %zu bytes", SL_BYTES,
			     SL_LINGER_S, sent);
			goto out;
		}
		if (r <= 0) {
			if (r < 0)
				fail_sys("blocking send of %u bytes, after %zu", SL_BYTES, sent);
			else
				fail("blocking send of %u bytes returned 0 after %zu", SL_BYTES, sent);
			goto out;
		}
		sent += (size_t)r;
		calls++;
	}
	ms_send = ms_since(t0);
	rc = close(data);
	e = errno;
	ms_all = ms_since(t0);
	if (rc != 0) {
		errno = e;
		return fail_sys("close() with SO_LINGER {1, %d} (after %ld ms)", SL_LINGER_S, ms_all);
	}
	if (ms_all < SL_MIN_MS)
		return fail("send of %u bytes + close() with SO_LINGER {1, %d} took %ld ms (send %ld ms), expected >= %d ms: the server does not read for %d ms, so the data cannot all have been delivered",
			    SL_BYTES, SL_LINGER_S, ms_all, ms_send, SL_MIN_MS, SL_SERVER_PAUSE_MS);
	if (verdict_within(fd, sv, sizeof(sv), 25000) < 0 || expect_eof(fd, 5000, "after the verdict") < 0)
		return -1;
	note("SO_LINGER {1, %d}: send of %u bytes (%u call%s) %ld ms, + close() -> 0: %ld ms; server: %s", SL_LINGER_S,
	     SL_BYTES, calls, calls == 1 ? "" : "s", ms_send, ms_all, sv);
	return 0;
out:
	close(data);
	return -1;
}

int so_linger_server(int fd, struct ctx *c)
{
	(void)c;
	return token_verdict_server(fd, "so_linger", 20000);
}

/* The data connection: 2 KiB, a pause without reading, then exactly SL_BYTES and EOF. */
static int sl_observe(int fd, uint32_t seed)
{
	uint64_t off = 0;
	double t;

	if (recv_pat(fd, seed, &off, 2 * SL_SMALL, STALL_MS, "the first 2 KiB") < 0)
		return -1;
	msleep(SL_SERVER_PAUSE_MS);
	t = now_s();
	if (recv_pat(fd, seed, &off, SL_BYTES, STALL_MS, "the lingering data") < 0 ||
	    expect_eof(fd, STALL_MS, "after the lingering data") < 0)
		return -1;
	note("2 KiB, %d ms without reading, then exactly %u bytes, verified, and EOF within %ld ms", SL_SERVER_PAUSE_MS,
	     SL_BYTES, ms_since(t));
	return 0;
}

int so_linger_data_server(int fd, struct ctx *c)
{
	char token[32];

	if (token_read(fd, token, sizeof(token)) < 0)
		return -1;
	return token_report("so_linger", token, sl_observe(fd, c->check->seed));
}

/* ---- close_unread_switched ---- */

/*
 * As close_unread, but the unread data arrives after the reader's last recv (on a tunnelled connection: in the
 * tunnel, after the switch).  Data connection ("CHECK close_unread_switched.data"): the server sends 1 KiB, the
 * client reads it and sends 'g'; CUS_DELAY_MS after the 'g' the server sends 64 KiB; the client closes
 * CUS_CLOSE_MS after the 'g' without reading again.  The server must see ECONNRESET (recv) or EPIPE/ECONNRESET
 * (send) within CUS_WINDOW_MS of the first event on the socket, and no EOF before it (TCP resets at once).
 */
#define CUS_FIRST 1024
#define CUS_BYTES (64u << 10)
#define CUS_DELAY_MS 300
#define CUS_CLOSE_MS 600
#define CUS_WINDOW_MS 2000

int close_unread_switched_client(int fd, struct ctx *c)
{
	char sv[LINE_MAX_LEN];
	uint64_t off = 0;
	int data = token_connect(fd, c->o, "close_unread_switched");

	if (data < 0)
		return -1;
	if (recv_pat(data, BACK_SEED(c), &off, CUS_FIRST, STALL_MS, "the first 1 KiB") < 0 ||
	    send_exact(data, "g", 1, "'g'") < 0) {
		close(data);
		return -1;
	}
	msleep(CUS_CLOSE_MS);
	if (close(data) < 0)
		return fail_sys("close() of the data connection");
	if (verdict_within(fd, sv, sizeof(sv), 25000) < 0 || expect_eof(fd, 5000, "after the verdict") < 0)
		return -1;
	note("read %u bytes, sent 'g', closed %d ms later with the server's %u bytes (sent %d ms after the 'g') unread; server: %s",
	     CUS_FIRST, CUS_CLOSE_MS, CUS_BYTES, CUS_DELAY_MS, sv);
	return 0;
}

int close_unread_switched_server(int fd, struct ctx *c)
{
	(void)c;
	return token_verdict_server(fd, "close_unread_switched", 20000);
}

static int cus_observe(int fd, uint32_t seed)
{
	uint64_t off = 0;
	double t_sent, t_event, t_eof = 0;
	const char *how;
	int ev, e, sends = 0, r;
	ssize_t n;
	char g;

	if (send_pat(fd, seed, &off, CUS_FIRST, "the first 1 KiB") < 0)
		return -1;
	ev = wait_for(fd, POLLIN, STALL_MS);
	if (ev <= 0)
		return ev < 0 ? fail_sys("poll for 'g'") : fail("no 'g' within %d ms of the first 1 KiB", STALL_MS);
	n = recv(fd, &g, 1, MSG_DONTWAIT);
	if (n != 1 || g != 'g')
		return n < 0 ? fail_sys("recv 'g'") : n == 0 ? fail("EOF where 'g' was expected")
							      : fail("expected 'g', got 0x%02x", (uint8_t)g);
	msleep(CUS_DELAY_MS);
	r = pat_send(fd, seed, &off, CUS_BYTES, STALL_MS, NULL);
	if (r == XFER_ERR && (errno == ECONNRESET || errno == EPIPE)) {
		note("the %u-byte send -> %s after %llu bytes (no EOF before it)", CUS_BYTES, errname(errno),
		     (unsigned long long)(off - CUS_FIRST));
		return 0;
	}
	if (r == XFER_STALL)
		return fail("no room to send for %d ms after %llu of %u bytes", STALL_MS,
			    (unsigned long long)(off - CUS_FIRST), CUS_BYTES);
	if (r < 0)
		return fail_sys("send of the %u bytes", CUS_BYTES);
	t_sent = now_s();
	ev = wait_for(fd, POLLIN | POLLRDHUP, STALL_MS);
	if (ev < 0)
		return fail_sys("poll");
	if (ev == 0)
		return fail("no event on the socket within %d ms of sending the %u bytes (the client closes about %d ms after)",
			    STALL_MS, CUS_BYTES, CUS_CLOSE_MS - CUS_DELAY_MS);
	t_event = now_s();
	for (;;) {
		uint8_t b;

		n = recv(fd, &b, 1, MSG_DONTWAIT);
		e = errno;
		if (n < 0 && e == ECONNRESET) {
			how = "recv";
			break;
		}
		if (n == 0) {
			if (!t_eof)
				t_eof = now_s();
		} else if (n > 0) {
			return fail("recv returned data (0x%02x) after the 'g'; the client sends nothing more", b);
		} else if (e != EAGAIN && e != EWOULDBLOCK && e != EINTR) {
			errno = e;
			return fail_sys("%srecv", t_eof ? "after EOF, " : "");
		}
		n = send(fd, "z", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		e = errno;
		if (n < 0 && (e == ECONNRESET || e == EPIPE)) {
			how = "send";
			break;
		}
		if (n == 1) {
			sends++;
		} else if (n < 0 && e != EAGAIN && e != EWOULDBLOCK && e != EINTR) {
			errno = e;
			return fail_sys("%ssend", t_eof ? "after EOF, " : "");
		}
		if (ms_since(t_event) > CUS_WINDOW_MS)
			return fail("%sno ECONNRESET/EPIPE within %d ms of the first event (%d one-byte sends succeeded)",
				    t_eof ? "EOF (recv 0), then " : "", CUS_WINDOW_MS, sends);
		msleep(20);
	}
	if (t_eof)
		return fail("recv returned 0 (EOF) %ld ms before the reset (%s -> %s, %ld ms after the first event): TCP resets a connection closed with data unread, without an EOF first",
			    ms_since(t_eof), how, errname(e), ms_since(t_event));
	note("%s -> %s %ld ms after the first event (%ld ms after the %u-byte send; %d one-byte sends before), no EOF before it",
	     how, errname(e), ms_since(t_event), ms_since(t_sent), CUS_BYTES, sends);
	return 0;
}

int close_unread_switched_data_server(int fd, struct ctx *c)
{
	char token[32];

	if (token_read(fd, token, sizeof(token)) < 0)
		return -1;
	return token_report("close_unread_switched", token, cus_observe(fd, BACK_SEED(c)));
}

/* ---- disconnect_reconnect ---- */

/*
 * After a warm-up both ways on the first connection, the client dissolves it with connect(AF_UNSPEC) and
 * connects the same descriptor to the server again ("CHECK disconnect_reconnect.second").  On the second
 * connection DR_BYTES go each way at once (a writer thread per side); both streams continue at offset WARMUP, so
 * that a byte of the first connection cannot pass for one of the second.  The first connection's server ends
 * quietly at its reset or EOF (what it sees goes to the server's stderr only).
 */
#define DR_BYTES (1u << 20)
#define DR_END_MS 10000 /* the first connection's server: its end, at most this after the warm-up */

static unsigned local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char a[64];
	unsigned port = 0;

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		netutil_addr_str(&ss, a, sizeof(a), &port);
	return port;
}

/* Connects fd (not connected) to the server again, bounded by CONNECT_WAIT_S: 0, or -1 (detail set). */
static int reconnect(int fd, const struct opts *o, int *attempts)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char unresolved[256];
	double deadline = now_s() + CONNECT_WAIT_S;

	if (netutil_resolve(o->host, o->port, &ss, &len, unresolved, sizeof(unresolved)) < 0)
		return fail("cannot resolve host '%s'", unresolved);
	if (set_nonblock(fd, 1) < 0)
		return -1;
	for (*attempts = 1;; ++*attempts) {
		int e = connect(fd, (struct sockaddr *)&ss, len) == 0 ? 0 : errno;

		if (e == EINPROGRESS || e == EALREADY || e == EINTR) {
			int left = (int)((deadline - now_s()) * 1000.0), ev;
			socklen_t sl = sizeof(e);

			ev = wait_for(fd, POLLOUT, left > 0 ? left : 0);
			if (ev < 0)
				return fail_sys("poll for the second connect");
			if (ev == 0)
				e = ETIMEDOUT;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) < 0)
				return fail_sys("getsockopt(SO_ERROR) after the second connect");
		}
		if (e == 0)
			break;
		if (e == EISCONN)
			return fail("connect() after connect(AF_UNSPEC): EISCONN, the socket is still connected");
		if ((e == ECONNREFUSED || e == EAGAIN || e == EADDRNOTAVAIL) && now_s() + 0.1 < deadline) {
			msleep(100);
			continue;
		}
		errno = e;
		return fail_sys("connect the same socket again to %s:%u (attempt %d)", o->host, o->port, *attempts);
	}
	return set_nonblock(fd, 0);
}

int disconnect_reconnect_client(int fd, struct ctx *c)
{
	struct sockaddr unspec;
	uint32_t seed = c->check->seed;
	char sv[LINE_MAX_LEN], line[80];
	uint64_t off = 0, boff = 0;
	unsigned port1, port2;
	int attempts = 0, n;

	if (send_pat(fd, seed, &off, WARMUP, "client: the warm-up") < 0 ||
	    recv_pat(fd, BACK_SEED(c), &boff, WARMUP, STALL_MS, "client: the server's warm-up") < 0)
		return -1;
	msleep(PAUSE_MS);
	port1 = local_port(fd);
	memset(&unspec, 0, sizeof(unspec));
	unspec.sa_family = AF_UNSPEC;
	if (connect(fd, &unspec, sizeof(unspec)) != 0)
		return fail_sys("connect(AF_UNSPEC) on the first connection");
	if (reconnect(fd, c->o, &attempts) < 0)
		return -1;
	port2 = local_port(fd);
	n = snprintf(line, sizeof(line), "CHECK %s.second\n", c->check->name);
	if (send_exact(fd, line, (size_t)n, "the second connection's CHECK line") < 0)
		return -1;
	if (both_ways(fd, seed, BACK_SEED(c), WARMUP, DR_BYTES, "client") < 0 ||
	    verdict_within(fd, sv, sizeof(sv), 20000) < 0 || expect_eof(fd, 5000, "after the verdict") < 0)
		return -1;
	note("%u bytes each way, connect(AF_UNSPEC) -> 0, connected again (%d attempt%s, local port %u, was %u); %u bytes each way at once, client verified; server: %s",
	     WARMUP, attempts, attempts == 1 ? "" : "s", port2, port1, DR_BYTES, sv);
	return 0;
}

/* The first connection: the warm-up both ways, then its end (EOF or reset), quietly. */
int disconnect_reconnect_server(int fd, struct ctx *c)
{
	uint64_t off = 0, boff = 0;
	double t0;

	if (recv_pat(fd, c->check->seed, &off, WARMUP, STALL_MS, "server: the client's warm-up") < 0 ||
	    send_pat(fd, BACK_SEED(c), &boff, WARMUP, "server: the warm-up") < 0)
		return -1;
	t0 = now_s();
	for (;;) {
		long left = DR_END_MS - ms_since(t0);
		int ev = wait_for(fd, POLLIN | POLLRDHUP, left > 0 ? (int)left : 0);
		uint8_t b;
		ssize_t r;

		if (ev < 0)
			return fail_sys("poll for the end of the first connection");
		if (ev == 0)
			return fail("the first connection did not end (EOF or reset) within %d ms of the warm-up",
				    DR_END_MS);
		r = recv(fd, &b, 1, MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			return 0;
		if (r > 0)
			return fail("data (0x%02x) on the first connection after the warm-up (the second connection's?)",
				    b);
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return fail_sys("recv at the end of the first connection");
		msleep(10);
	}
}

int disconnect_reconnect_second_server(int fd, struct ctx *c)
{
	int rc = both_ways(fd, BACK_SEED(c), c->check->seed, WARMUP, DR_BYTES, "server");

	if (rc == 0)
		note("%u bytes each way at once on the second connection, server verified", DR_BYTES);
	return send_verdict(fd, rc);
}

/* ---- linger_poll_reader ---- */

#define LP_TAIL 1000u       /* after the warm-up: a channel the reader reads to its end before the writer's close */
#define LP_LINGER_S 5
#define LP_CLOSE_MAX_MS 1000

int linger_poll_reader_client(int fd, struct ctx *c)
{
	struct linger lg = { .l_onoff = 1, .l_linger = LP_LINGER_S };
	uint32_t seed = c->check->seed;
	uint64_t off = 0;
	uint8_t b = 0;
	double t0;
	long ms;
	int ev, rc;

	if (send_pat(fd, seed, &off, WARMUP, "the warm-up") < 0)
		return -1;
	msleep(PAUSE_MS);
	if (send_pat(fd, seed, &off, LP_TAIL, "the last 1000 bytes") < 0)
		return -1;
	/* the server read all of it with poll + non-blocking recv, and says so */
	ev = wait_for(fd, POLLIN, STALL_MS);
	if (ev <= 0 || recv(fd, &b, 1, MSG_DONTWAIT) != 1 || b != 'd')
		return ev < 0 ? fail_sys("poll for the server's 'drained'") : fail("no 'drained' byte from the server");
	if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0)
		return fail_sys("setsockopt(SO_LINGER, {1, %d})", LP_LINGER_S);
	t0 = now_s();
	rc = close(fd); /* the harness closes fd again: EBADF, harmless */
	ms = ms_since(t0);
	if (rc < 0)
		return fail_sys("close() with SO_LINGER {1, %d}", LP_LINGER_S);
	if (ms > LP_CLOSE_MAX_MS)
		return fail("close() with SO_LINGER {1, %d} took %ld ms, though the reader had read everything (limit %d ms)",
			    LP_LINGER_S, ms, LP_CLOSE_MAX_MS);
	note("%u + %u bytes read by a polling reader; close() with SO_LINGER {1, %d} returned 0 after %ld ms", WARMUP,
	     LP_TAIL, LP_LINGER_S, ms);
	return 0;
}

int linger_poll_reader_server(int fd, struct ctx *c)
{
	uint64_t off = 0;
	ssize_t r;
	uint8_t b;
	int ev;

	if (recv_pat(fd, c->check->seed, &off, WARMUP + LP_TAIL, STALL_MS, "server: the data, by poll and non-blocking recv") < 0 ||
	    send_exact(fd, "d", 1, "server: 'drained'") < 0)
		return -1;
	ev = wait_for(fd, POLLIN, (LP_LINGER_S + 5) * 1000);
	if (ev < 0)
		return fail_sys("server: poll for the end");
	if (ev == 0)
		return fail("server: no POLLIN (EOF) within %d s of reading everything", LP_LINGER_S + 5);
	r = recv(fd, &b, 1, MSG_DONTWAIT);
	if (r < 0)
		return fail_sys("server: recv after POLLIN, expected EOF");
	if (r > 0)
		return fail("server: %zd unexpected byte(s) where EOF was expected", r);
	return 0;
}
