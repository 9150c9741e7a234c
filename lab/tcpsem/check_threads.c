// SPDX-License-Identifier: GPL-2.0-only
/*
 * tcpsem checks that drive one socket from two threads of the client:
 * threads_two_senders, threads_switch_senders, threads_recv_epoll, threads_close_in_recv.
 *
 * A worker thread runs one step at a time: the main thread starts a step
 * (worker_go), can wait until the worker sleeps inside the step's blocking
 * call (worker_wait_asleep: the thread's state in /proc is 'S' after it
 * announced the step), and waits for the step's end with a timeout
 * (worker_wait).  A worker that never returns is left where it is: the
 * check's timer ends the whole process.
 */
#include "tcpsem.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- worker threads ---- */

struct worker {
	pthread_t th;
	int go[2], done[2];        /* pipes: step numbers in, one byte out per finished step */
	int id;
	void (*step)(struct worker *w, int n);
	void *arg;                 /* the check's state */
	atomic_int tid;            /* the thread's id, for /proc/self/task/TID/stat */
	atomic_int armed;          /* the step the thread is about to block in (-1: none yet) */
	/* the last step's outcome, read by the main thread after its done byte */
	ssize_t r;
	int err;
	uint32_t events;
	double t_end;
	char why[DETAIL_MAX];
};

static void *worker_main(void *p)
{
	struct worker *w = p;
	int n;

	atomic_store(&w->tid, (int)gettid());
	while (read(w->go[0], &n, sizeof(n)) == (ssize_t)sizeof(n) && n >= 0) {
		w->why[0] = 0;
		w->step(w, n);
		w->t_end = now_s();
		if (write(w->done[1], "d", 1) != 1)
			break;
	}
	return NULL;
}

static int worker_start(struct worker *w, int id, void (*step)(struct worker *, int), void *arg)
{
	int e;

	memset(w, 0, sizeof(*w));
	w->id = id;
	w->step = step;
	w->arg = arg;
	atomic_store(&w->armed, -1);
	if (pipe2(w->go, O_CLOEXEC) < 0 || pipe2(w->done, O_CLOEXEC) < 0)
		return fail_sys("pipe for thread %d", id);
	e = pthread_create(&w->th, NULL, worker_main, w);
	if (e) {
		errno = e;
		return fail_sys("pthread_create");
	}
	return 0;
}

static int worker_go(struct worker *w, int n)
{
	if (write(w->go[1], &n, sizeof(n)) != (ssize_t)sizeof(n))
		return fail_sys("starting thread %d", w->id);
	return 0;
}

/* Waits up to ms for the worker's current step to end: 1 ended, 0 not yet, -1 error (detail set). */
static int worker_wait(struct worker *w, int ms)
{
	char b;
	int ev = wait_for(w->done[0], POLLIN, ms);

	if (ev < 0)
		return fail_sys("poll on thread %d", w->id);
	if (ev == 0)
		return 0;
	if (read(w->done[0], &b, 1) != 1)
		return fail_sys("thread %d's done pipe", w->id);
	return 1;
}

/* Ends a worker whose step has ended (the thread waits for its next step). */
static void worker_stop(struct worker *w)
{
	int n = -1;

	if (write(w->go[1], &n, sizeof(n)) == (ssize_t)sizeof(n))
		pthread_join(w->th, NULL);
}

/* The state letter (R, S, D, ...) of thread tid, from /proc/self/task/TID/stat; 0 if unknown. */
static char thread_state(int tid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')'); /* the name may contain anything */
	return p && p[1] == ' ' ? p[2] : 0;
}

/*
 * Waits up to ms until the worker has announced step n and sleeps (state S),
 * i.e. is blocked in that step's call.  0 when it is; 1 if the step already
 * ended (its done byte is still unread); -1 on timeout (detail set).
 */
static int worker_wait_asleep(struct worker *w, int n, int ms, const char *what)
{
	double deadline = now_s() + ms / 1000.0;
	char st = 0;

	for (;;) {
		int tid = atomic_load(&w->tid);

		if (tid && atomic_load(&w->armed) == n && (st = thread_state(tid)) == 'S')
			return 0;
		if (wait_for(w->done[0], POLLIN, 0) > 0)
			return 1;
		if (now_s() >= deadline)
			return fail("%s: the thread did not block within %d ms (state %c)", what, ms,
				    st ? st : '?');
		msleep(1);
	}
}

/* ---- threads_two_senders ---- */

/*
 * Two threads send on one socket at once; TCP does not keep concurrent
 * writes whole, so each byte carries its sender: bit 7 is the thread (0 or
 * 1), bits 0..6 the low 7 bits of the pattern byte at that thread's own
 * offset (the thread's k-th byte), with seed + 1000 * thread.  The receiver
 * splits the stream by bit 7 and checks each thread's subsequence and count,
 * whatever the interleaving.
 */
#define TS_BYTES (2u << 20)      /* per thread */
#define TS_WAIT_MS 20000
#define TS_BUF 100000u

static const size_t ts_sizes[] = { 65536, 1, 4096, 333, 30000, 7, 1448, TS_BUF };
#define TS_NSIZES (sizeof(ts_sizes) / sizeof(ts_sizes[0]))

static inline uint8_t ts_byte(uint32_t seed, unsigned thread, uint64_t k)
{
	return (uint8_t)(thread << 7 | (pat_byte(seed + 1000u * thread, k) & 0x7f));
}

struct ts_state {
	int fd;
	uint32_t seed;
	atomic_int ready; /* threads at the start line: both start sending at once */
};

static void ts_send(struct worker *w, int n)
{
	struct ts_state *s = w->arg;
	uint8_t *buf = malloc(TS_BUF);
	uint64_t off = 0;
	size_t i = (size_t)w->id * 3; /* the threads start at different sizes */

	(void)n;
	w->r = -1;
	if (!buf) {
		snprintf(w->why, sizeof(w->why), "out of memory");
		return;
	}
	atomic_fetch_add(&s->ready, 1);
	while (atomic_load(&s->ready) < 2)
		sched_yield();
	while (off < TS_BYTES) {
		size_t len = ts_sizes[i++ % TS_NSIZES], j;
		ssize_t r;

		if (len > TS_BYTES - off)
			len = (size_t)(TS_BYTES - off);
		for (j = 0; j < len; j++)
			buf[j] = ts_byte(s->seed, (unsigned)w->id, off + j);
		do
			r = send(s->fd, buf, len, MSG_NOSIGNAL);
		while (r < 0 && errno == EINTR);
		if (r < 0) {
			w->err = errno;
			snprintf(w->why, sizeof(w->why), "thread %d: send(%zu) at its byte %llu: %s", w->id,
				 len, (unsigned long long)off, errname(errno));
			free(buf);
			return;
		}
		if ((size_t)r != len) {
			snprintf(w->why, sizeof(w->why),
				 "thread %d: a blocking send(%zu) returned %zd at its byte %llu", w->id, len, r,
				 (unsigned long long)off);
			free(buf);
			return;
		}
		off += len;
	}
	free(buf);
	w->r = (ssize_t)off;
}

/*
 * The client side of the two-sender checks: step runs in two worker threads (ids 0 and 1) at once, each sending its
 * share (w->r: bytes sent, or < 0 with w->why); then SHUT_WR, the server's verdict into sv, and EOF.
 */
static int ts_send_both(int fd, void (*step)(struct worker *, int), void *arg, char *sv, size_t svlen)
{
	struct worker w[2];
	int i;

	for (i = 0; i < 2; i++)
		if (worker_start(&w[i], i, step, arg) < 0)
			return -1;
	if (worker_go(&w[0], 0) < 0 || worker_go(&w[1], 0) < 0)
		return -1;
	for (i = 0; i < 2; i++) {
		int r = worker_wait(&w[i], TS_WAIT_MS);

		if (r < 0)
			return -1;
		if (r == 0)
			return fail("thread %d did not finish sending within %d s", i, TS_WAIT_MS / 1000);
		if (w[i].r < 0)
			return fail("%s", w[i].why);
	}
	worker_stop(&w[0]);
	worker_stop(&w[1]);
	if (shutdown(fd, SHUT_WR) < 0)
		return fail_sys("shutdown(SHUT_WR)");
	if (read_verdict(fd, sv, svlen) < 0 || expect_eof(fd, 5000, "after the verdict") < 0)
		return -1;
	return 0;
}

int threads_two_senders_client(int fd, struct ctx *c)
{
	struct ts_state s = { .fd = fd, .seed = c->check->seed };
	char sv[LINE_MAX_LEN];

	if (ts_send_both(fd, ts_send, &s, sv, sizeof(sv)) < 0)
		return -1;
	note("two threads sent %u bytes each on one socket at once (blocking sends of 1..%u bytes, each returned its length); server: %s",
	     TS_BYTES, TS_BUF, sv);
	return 0;
}

/* Reads to EOF, splits the stream by bit 7 and verifies each thread's bytes and count (want0, want1); the verdict. */
static int ts_receive(int fd, uint32_t seed, uint64_t want0, uint64_t want1)
{
	static uint8_t buf[64 << 10];
	uint64_t got[2] = { 0, 0 }, off = 0, runs = 0;
	int last = -1, rc = 0;

	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0), i;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return send_verdict(fd, fail_sys("recv at stream offset %llu", (unsigned long long)off));
		if (r == 0)
			break;
		for (i = 0; i < r; i++) {
			unsigned t = buf[i] >> 7;
			uint8_t want = ts_byte(seed, t, got[t]);

			if (rc == 0 && buf[i] != want)
				rc = fail("thread %u's byte %llu (stream offset %llu) is 0x%02x, expected 0x%02x", t,
					  (unsigned long long)got[t], (unsigned long long)(off + (uint64_t)i),
					  buf[i], want);
			got[t]++;
			if ((int)t != last) {
				runs++;
				last = (int)t;
			}
		}
		off += (uint64_t)r;
	}
	if (rc == 0 && (got[0] != want0 || got[1] != want1))
		rc = fail("received %llu bytes of thread 0 and %llu of thread 1 to EOF, expected %llu and %llu",
			  (unsigned long long)got[0], (unsigned long long)got[1], (unsigned long long)want0,
			  (unsigned long long)want1);
	if (rc == 0)
		note("received %llu and %llu bytes of threads 0 and 1 to EOF, each thread's bytes in order and exact, in %llu runs",
		     (unsigned long long)want0, (unsigned long long)want1, (unsigned long long)runs);
	return send_verdict(fd, rc);
}

int threads_two_senders_server(int fd, struct ctx *c)
{
	return ts_receive(fd, c->check->seed, TS_BYTES, TS_BYTES);
}

/* ---- threads_switch_senders ---- */

/*
 * A second sender while the first is inside TCP's send at the switch. Thread 0 sends SW_BIG bytes in one blocking
 * send from the start of the connection (SO_SNDBUF SW_SNDBUF, so it cannot all be queued at once), while the
 * server does not read for SW_SERVER_PAUSE_MS: over a tunnelled
 * connection that first send creates the tunnel and goes on TCP, where it blocks with the socket lock released.
 * SW_SECOND_DELAY_MS later (the tunnel is mapped by then) thread 1 sends SW_SMALL bytes in writes of SW_CHUNK. Thread
 * 0's bytes still to queue must not land behind the switch: the server reads to EOF and every byte of both threads
 * must arrive, in order per thread (tagged as in threads_two_senders).
 */
#define SW_BIG (2u << 20)
#define SW_SMALL (256u << 10)
#define SW_CHUNK 4096u
#define SW_SECOND_DELAY_MS 300
#define SW_SERVER_PAUSE_MS 800
#define SW_SNDBUF (64 << 10)

struct sw_state {
	int fd;
	uint32_t seed;
};

static void sw_send(struct worker *w, int n)
{
	struct sw_state *s = w->arg;
	size_t total = w->id == 0 ? SW_BIG : SW_SMALL, chunk = w->id == 0 ? SW_BIG : SW_CHUNK, j;
	uint8_t *buf = malloc(chunk);
	uint64_t off = 0;

	(void)n;
	w->r = -1;
	if (!buf) {
		snprintf(w->why, sizeof(w->why), "out of memory");
		return;
	}
	if (w->id == 1)
		msleep(SW_SECOND_DELAY_MS);
	while (off < total) {
		ssize_t r;

		for (j = 0; j < chunk; j++)
			buf[j] = ts_byte(s->seed, (unsigned)w->id, off + j);
		do
			r = send(s->fd, buf, chunk, MSG_NOSIGNAL);
		while (r < 0 && errno == EINTR);
		if (r != (ssize_t)chunk) {
			w->err = errno;
			snprintf(w->why, sizeof(w->why), "thread %d: send(%zu) at its byte %llu returned %zd (%s)", w->id,
				 chunk, (unsigned long long)off, r, r < 0 ? errname(errno) : "short");
			free(buf);
			return;
		}
		off += chunk;
	}
	free(buf);
	w->r = (ssize_t)off;
}

int threads_switch_senders_client(int fd, struct ctx *c)
{
	struct sw_state s = { .fd = fd, .seed = c->check->seed };
	int sndbuf = SW_SNDBUF;
	char sv[LINE_MAX_LEN];

	/* a send buffer that cannot take thread 0's bytes: its send waits inside TCP until the server reads */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) < 0)
		return fail_sys("setsockopt(SO_SNDBUF, %d)", sndbuf);
	if (ts_send_both(fd, sw_send, &s, sv, sizeof(sv)) < 0)
		return -1;
	note("thread 0 sent %u bytes in one send from the start, thread 1 %u bytes in %u-byte sends %d ms later, the server reading only after %d ms; server: %s",
	     SW_BIG, SW_SMALL, SW_CHUNK, SW_SECOND_DELAY_MS, SW_SERVER_PAUSE_MS, sv);
	return 0;
}

int threads_switch_senders_server(int fd, struct ctx *c)
{
	msleep(SW_SERVER_PAUSE_MS);
	return ts_receive(fd, c->check->seed, SW_BIG, SW_SMALL);
}

/* ---- threads_recv_epoll ---- */

/*
 * Rounds: thread 0 blocks in recv(RE_TAKE), thread 1 in a level-triggered
 * epoll_wait(EPOLLIN) on the same socket; once both sleep, the main thread
 * asks the server for the round's bytes (more than RE_TAKE, so some stay
 * queued whatever the recv took).  The recv must return 1..RE_TAKE bytes and
 * epoll_wait must report EPOLLIN, both within RE_WAIT_MS; the main thread
 * reads the rest, and with nothing queued epoll_wait must report nothing.
 */
#define RE_ROUNDS 20
#define RE_TAKE 100
#define RE_WAIT_MS 5000
#define RE_ASLEEP_MS 2000

static const uint32_t re_sizes[] = { 101, 1000, 9000, 40000 };
#define RE_SIZE(n) re_sizes[(n) % (sizeof(re_sizes) / sizeof(re_sizes[0]))]

struct re_state {
	int fd, ep;
	uint8_t buf[RE_TAKE];
};

static void re_recv(struct worker *w, int n)
{
	struct re_state *s = w->arg;

	atomic_store(&w->armed, n);
	do
		w->r = recv(s->fd, s->buf, RE_TAKE, 0);
	while (w->r < 0 && errno == EINTR);
	w->err = errno;
}

static void re_epoll(struct worker *w, int n)
{
	struct re_state *s = w->arg;
	struct epoll_event e = { 0 };
	int r;

	atomic_store(&w->armed, n);
	do
		r = epoll_wait(s->ep, &e, 1, RE_WAIT_MS);
	while (r < 0 && errno == EINTR);
	w->r = r;
	w->err = errno;
	w->events = r > 0 ? e.events : 0;
}

static int re_rounds(struct re_state *s, struct worker *rd, struct worker *ep, uint32_t seed,
		     long *max_ms, ssize_t *min_take)
{
	static uint8_t rest[64 << 10];
	struct epoll_event e;
	uint64_t off = 0;
	int n, r;

	for (n = 0; n < RE_ROUNDS; off += RE_SIZE(n), n++) {
		uint32_t size = RE_SIZE(n);
		double t_go;

		if (worker_go(rd, n) < 0 || worker_go(ep, n) < 0)
			return -1;
		r = worker_wait_asleep(rd, n, RE_ASLEEP_MS, "blocking recv");
		if (r == 1)
			return fail("round %d: recv returned %zd (%s) before the server wrote anything", n, rd->r,
				    rd->r < 0 ? errname(rd->err) : "data");
		if (r < 0)
			return -1;
		r = worker_wait_asleep(ep, n, RE_ASLEEP_MS, "epoll_wait");
		if (r == 1)
			return fail("round %d: epoll_wait returned %zd (events 0x%x) with nothing queued", n, ep->r,
				    ep->events);
		if (r < 0)
			return -1;
		t_go = now_s();
		if (send_exact(s->fd, "g", 1, "round request") < 0)
			return -1;
		r = worker_wait(rd, RE_WAIT_MS);
		if (r <= 0)
			return r < 0 ? -1 : fail("round %d: the blocking recv did not return within %d ms of asking for %u bytes",
						 n, RE_WAIT_MS, size);
		if (rd->r <= 0 || rd->r > RE_TAKE) {
			errno = rd->err;
			return rd->r < 0 ? fail_sys("round %d: the blocking recv", n)
					 : fail("round %d: the blocking recv(%d) returned %zd", n, RE_TAKE, rd->r);
		}
		if (pat_verify(seed, off, s->buf, (size_t)rd->r, "the blocking recv") < 0)
			return -1;
		if (rd->r < *min_take)
			*min_take = rd->r;
		r = worker_wait(ep, RE_WAIT_MS + 1000);
		if (r <= 0)
			return r < 0 ? -1 : fail("round %d: epoll_wait(%d ms) did not return", n, RE_WAIT_MS);
		if (ep->r != 1 || !(ep->events & EPOLLIN)) {
			errno = ep->err;
			return ep->r < 0 ? fail_sys("round %d: epoll_wait", n)
					 : fail("round %d: level-triggered epoll_wait returned %zd (events 0x%x) while %zd of %u bytes were unread, expected EPOLLIN within %d ms",
						n, ep->r, ep->events, (ssize_t)size - rd->r, size, RE_WAIT_MS);
		}
		if ((long)((ep->t_end - t_go) * 1000.0 + 0.5) > *max_ms)
			*max_ms = (long)((ep->t_end - t_go) * 1000.0 + 0.5);
		if (recv_exact(s->fd, rest, size - (size_t)rd->r, "the rest of the round") < 0 ||
		    pat_verify(seed, off + (uint64_t)rd->r, rest, size - (size_t)rd->r, "the rest of the round") < 0)
			return -1;
		r = epoll_wait(s->ep, &e, 1, 0);
		if (r != 0)
			return r < 0 ? fail_sys("round %d: epoll_wait after the rest", n)
				     : fail("round %d: epoll_wait reported 0x%x with every byte read", n, e.events);
	}
	return 0;
}

int threads_recv_epoll_client(int fd, struct ctx *c)
{
	struct re_state s = { .fd = fd };
	struct epoll_event e = { .events = EPOLLIN, .data.fd = fd };
	struct worker rd, ep;
	ssize_t min_take = RE_TAKE + 1;
	long max_ms = 0;
	int rc;

	s.ep = epoll_create1(EPOLL_CLOEXEC);
	if (s.ep < 0)
		return fail_sys("epoll_create1");
	if (epoll_ctl(s.ep, EPOLL_CTL_ADD, fd, &e) < 0)
		return fail_sys("epoll_ctl ADD EPOLLIN");
	if (worker_start(&rd, 0, re_recv, &s) < 0 || worker_start(&ep, 1, re_epoll, &s) < 0)
		return -1;
	rc = re_rounds(&s, &rd, &ep, c->check->seed, &max_ms, &min_take);
	if (rc < 0)
		return -1; /* a worker may still be blocked: the process ends */
	worker_stop(&rd);
	worker_stop(&ep);
	close(s.ep);
	if (send_exact(fd, "q", 1, "done byte") < 0 || expect_eof(fd, 5000, "at the end") < 0)
		return -1;
	note("%d rounds of %u..%u bytes, a blocking recv(%d) and a level-triggered epoll_wait asleep on the socket in two threads: every round the recv returned %zd..%d bytes and epoll_wait EPOLLIN (at most %ld ms after the request), exact; the rest read; no EPOLLIN once drained",
	     RE_ROUNDS, re_sizes[0], re_sizes[3], RE_TAKE, min_take, RE_TAKE, max_ms);
	return 0;
}

int threads_recv_epoll_server(int fd, struct ctx *c)
{
	static uint8_t data[64 << 10];
	uint64_t off = 0;
	int n = 0;

	for (;;) {
		char cmd;
		ssize_t r = recv(fd, &cmd, 1, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fail_sys("recv command");
		if (r == 0)
			return fail("EOF before the done byte");
		if (cmd == 'q')
			return 0;
		if (cmd != 'g' || n >= RE_ROUNDS)
			return fail("unexpected command byte 0x%02x in round %d", (uint8_t)cmd, n);
		pat_fill(c->check->seed, off, data, RE_SIZE(n));
		if (send_exact(fd, data, RE_SIZE(n), "round data") < 0)
			return -1;
		off += RE_SIZE(n);
		n++;
	}
}

/* ---- threads_close_in_recv ---- */

/*
 * Linux TCP: close() of a socket's descriptor from another thread does not
 * wake a thread blocked in recv() on it; the blocked call holds its own
 * reference to the socket, which stays open and connected.  The recv returns
 * when data (or EOF) arrives, and the socket is closed (FIN) once it has.
 *
 * Two connections (token.c).  On the data connection thread 0 blocks in
 * recv(CIR_BYTES, MSG_WAITALL); once it sleeps the main thread sends 'c' and
 * closes the descriptor.  The recv must still sleep CIR_QUIET_MS later; the
 * server writes CIR_BYTES CIR_DELAY_MS after the 'c', and the recv must
 * return them all, exact.  The server must then see EOF (not a reset) within
 * CIR_EOF_MS, and reports it through the control connection.
 */
#define CIR_BYTES 10000
#define CIR_DELAY_MS 1000
#define CIR_QUIET_MS 300
#define CIR_EOF_MS 5000

struct cir_state {
	int fd;
	uint8_t buf[CIR_BYTES];
};

static void cir_recv(struct worker *w, int n)
{
	struct cir_state *s = w->arg;

	atomic_store(&w->armed, n);
	do
		w->r = recv(s->fd, s->buf, CIR_BYTES, MSG_WAITALL);
	while (w->r < 0 && errno == EINTR);
	w->err = errno;
}

int threads_close_in_recv_client(int fd, struct ctx *c)
{
	static struct cir_state s;
	struct worker rd;
	char sv[LINE_MAX_LEN];
	double t_close;
	int r;

	s.fd = token_connect(fd, c->o, "threads_close_in_recv");
	if (s.fd < 0)
		return -1;
	if (worker_start(&rd, 0, cir_recv, &s) < 0 || worker_go(&rd, 1) < 0)
		return -1;
	r = worker_wait_asleep(&rd, 1, 2000, "blocking recv");
	if (r == 1)
		return fail("recv returned %zd (%s) before the server wrote anything", rd.r,
			    rd.r < 0 ? errname(rd.err) : "data");
	if (r < 0)
		return -1;
	if (send_exact(s.fd, "c", 1, "close notice") < 0)
		return -1;
	t_close = now_s();
	if (close(s.fd) < 0)
		return fail_sys("close() while another thread is in recv()");
	r = worker_wait(&rd, CIR_QUIET_MS);
	if (r < 0)
		return -1;
	if (r == 1) {
		errno = rd.err;
		return rd.r < 0 ? fail_sys("close() from another thread woke the blocked recv after %ld ms",
					   ms_since(t_close))
				: fail("close() from another thread woke the blocked recv: it returned %zd after %ld ms (Linux TCP's stays asleep until data arrives)",
				       rd.r, ms_since(t_close));
	}
	r = worker_wait(&rd, CIR_DELAY_MS + 5000);
	if (r < 0)
		return -1;
	if (r == 0)
		return fail("the recv did not return within %d ms of the close (the server writes %d bytes %d ms after it)",
			    CIR_QUIET_MS + CIR_DELAY_MS + 5000, CIR_BYTES, CIR_DELAY_MS);
	if (rd.r != CIR_BYTES) {
		errno = rd.err;
		return rd.r < 0 ? fail_sys("recv(%d, MSG_WAITALL) after the close", CIR_BYTES)
				: fail("recv(%d, MSG_WAITALL) after the close returned %zd", CIR_BYTES, rd.r);
	}
	if (pat_verify(c->check->seed, 0, s.buf, CIR_BYTES, "data after the close") < 0)
		return -1;
	worker_stop(&rd);
	if (read_verdict(fd, sv, sizeof(sv)) < 0 || expect_eof(fd, 5000, "after the verdict") < 0)
		return -1;
	note("close() from another thread left the blocked recv(MSG_WAITALL) asleep (%d ms); it returned the server's %d bytes, exact, %ld ms after the close; server: %s",
	     CIR_QUIET_MS, CIR_BYTES, (long)((rd.t_end - t_close) * 1000.0 + 0.5), sv);
	return 0;
}

int threads_close_in_recv_server(int fd, struct ctx *c)
{
	(void)c;
	return token_verdict_server(fd, "threads_close_in_recv", 20000);
}

/* The data connection: waits for 'c', writes CIR_DELAY_MS later, then must see EOF. */
static int cir_observe(int fd, uint32_t seed)
{
	static uint8_t buf[CIR_BYTES];
	double t_write;
	char cmd;
	ssize_t r;
	int ev = wait_for(fd, POLLIN, 10000);

	if (ev <= 0)
		return ev < 0 ? fail_sys("poll for the close notice") : fail("no close notice within 10 s");
	r = recv(fd, &cmd, 1, 0);
	if (r != 1 || cmd != 'c')
		return r < 0 ? fail_sys("recv the close notice") : fail("expected 'c', recv returned %zd", r);
	msleep(CIR_DELAY_MS);
	pat_fill(seed, 0, buf, CIR_BYTES);
	if (send_exact(fd, buf, CIR_BYTES, "data for the blocked recv") < 0)
		return -1;
	t_write = now_s();
	ev = wait_for(fd, POLLIN | POLLRDHUP, CIR_EOF_MS);
	if (ev < 0)
		return fail_sys("poll for EOF");
	if (ev == 0)
		return fail("no EOF within %d ms of writing the %d bytes: the client's socket stayed open after its recv returned",
			    CIR_EOF_MS, CIR_BYTES);
	do
		r = recv(fd, &cmd, 1, MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return fail_sys("recv at the expected EOF");
	if (r > 0)
		return fail("unexpected data 0x%02x where EOF was expected", (uint8_t)cmd);
	note("EOF %ld ms after writing the %d bytes", ms_since(t_write), CIR_BYTES);
	return 0;
}

int threads_close_in_recv_data_server(int fd, struct ctx *c)
{
	char token[32];

	if (token_read(fd, token, sizeof(token)) < 0)
		return -1;
	return token_report("threads_close_in_recv", token, cir_observe(fd, c->check->seed));
}
