// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * ringbench: the fast-IVC tunnel protocol alone, on the host.
 *
 * Two processes move N bytes through shared memory with exactly the channel code of ../../guest-kmod/ivc_ring.h
 * (path "ring"), and, for comparison, through TCP over loopback ("tcp"), a UNIX stream socket pair ("unix"), and a
 * single-process memcpy of the same data ("memcpy", the ceiling). One JSON line per run on stdout. See README.md for
 * how the ring path maps onto the kernel module's sock.c.
 *
 * ringbench --path ring|tcp|unix|memcpy --msg-size S --bytes N [--channels C] [--channel-size Z] [--seed X]
 *           [--no-read-rearm] [--pin SENDER_CPU,RECEIVER_CPU] [--timeout SEC]
 * ringbench version
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../guest-kmod/ivc_ring.h"

#define RB_VERSION      "2"
#define MAX_MSG         (16ull << 20)
#define PATTERN_TARGET  (4u << 20)   /* the pattern period is the largest prime below this */
#define WAIT_SLICE_NS   100000000L   /* as the kernel's FASTIVC_WAIT_SLICE (HZ / 10) */
#define DEFAULT_TIMEOUT 60u

/* ---------------------------------------------------------------------------------------------------------------- */
/* options, output */

enum path { P_RING, P_TCP, P_UNIX, P_MEMCPY };
static const char *const path_names[] = { "ring", "tcp", "unix", "memcpy" };

struct opts {
	enum path path;
	uint64_t msg;     /* S */
	uint64_t bytes;   /* N */
	uint32_t channels, chsize;
	uint64_t seed;
	int read_rearm;   /* the receiver bumps rx_want after every read that returned data, as sock.c does */
	unsigned timeout; /* seconds, alarm() in both processes */
	int pin_tx, pin_rx; /* CPUs of the sender (and memcpy) and of the receiver, -1: not pinned */
};

static const char *g_path = NULL; /* for error lines */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

/* one JSON error line, exit 1 */
static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fputs("{\"tool\":\"ringbench\",", stdout);
	if (g_path)
		printf("\"path\":\"%s\",", g_path);
	fputs("\"error\":", stdout);
	json_str(stdout, msg);
	fputs("}\n", stdout);
	fflush(stdout);
	exit(1);
}

static void usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage(const char *fmt, ...)
{
	va_list ap;

	if (fmt) {
		fputs("ringbench: ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	fputs("usage: ringbench --path ring|tcp|unix|memcpy --msg-size S --bytes N [--channels C] [--channel-size Z]\n"
	      "                 [--seed X] [--no-read-rearm] [--pin SENDER_CPU,RECEIVER_CPU] [--timeout SEC]\n"
	      "       ringbench version\n"
	      "sizes take K, M, G suffixes (powers of 1024); msg-size 1..16M; defaults: channels 4, channel-size 4K\n",
	      stderr);
	exit(2);
}

static const char *ivc_err_name(int e)
{
	switch (-e) {
	case IVC_E_GEN:       return "IVC_E_GEN";
	case IVC_E_SIZE:      return "IVC_E_SIZE";
	case IVC_E_PEND_READ: return "IVC_E_PEND_READ";
	case IVC_E_LAYOUT:    return "IVC_E_LAYOUT";
	default:              return "IVC_E_?";
	}
}

/* "4096", "4K", "1M", "2G" (powers of 1024). 0 on success. */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	switch (*end) {
	case 0:                     break;
	case 'k': case 'K': mul = 1ull << 10; end++; break;
	case 'm': case 'M': mul = 1ull << 20; end++; break;
	case 'g': case 'G': mul = 1ull << 30; end++; break;
	default:                    return -1;
	}
	if (*end)
		return -1;
	if (v > UINT64_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* data: a pattern of prime period, and a checksum over the byte stream that does not depend on how it is split */

static uint8_t *pat;        /* pat_period bytes, then pat_ext more that repeat it (so a message is contiguous) */
static uint64_t pat_period;

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static int is_prime(uint64_t n)
{
	uint64_t d;

	if (n < 2)
		return 0;
	if (n % 2 == 0)
		return n == 2;
	for (d = 3; d * d <= n; d += 2)
		if (n % d == 0)
			return 0;
	return 1;
}

static void pattern_build(uint64_t seed, uint64_t ext)
{
	uint64_t p = PATTERN_TARGET - 1, i, st = seed;

	while (!is_prime(p))
		p--;
	pat_period = p;
	pat = malloc(p + ext + 8);
	if (!pat)
		fail("out of memory (pattern, %" PRIu64 " bytes)", p + ext);
	for (i = 0; i < p; i += 8) {
		uint64_t w = splitmix64(&st);

		memcpy(pat + i, &w, 8); /* the last word spills into the extension, overwritten below */
	}
	for (i = p; i < p + ext; i++)
		pat[i] = pat[i - p];
}

/*
 * Fletcher-style sum over the stream cut into little-endian 64-bit words (the last one zero padded), four lanes
 * (word k goes to lane k % 4) so it runs far faster than the copies it checks; mixed with the length at the end.
 */
struct csum {
	uint64_t a[4], b[4];
	uint64_t pos;  /* bytes seen */
	uint64_t part; /* bytes of the word being completed (pos % 8 of them) */
};

static inline uint64_t ld64(const uint8_t *p)
{
	uint64_t w;

	memcpy(&w, p, 8);
	return w; /* little-endian host (x86, arm64) */
}

static inline void csum_word(struct csum *c, uint64_t w, uint64_t k)
{
	unsigned l = (unsigned)(k & 3);

	c->a[l] += w;
	c->b[l] += c->a[l];
}

static void csum_update(struct csum *c, const uint8_t *p, size_t n)
{
	uint64_t a0, a1, a2, a3, b0, b1, b2, b3;

	while (n && (c->pos & 7)) {
		c->part |= (uint64_t)*p++ << (8 * (c->pos & 7));
		c->pos++;
		n--;
		if (!(c->pos & 7)) {
			csum_word(c, c->part, c->pos / 8 - 1);
			c->part = 0;
		}
	}
	while (n >= 8 && ((c->pos >> 3) & 3)) {
		csum_word(c, ld64(p), c->pos / 8);
		p += 8;
		n -= 8;
		c->pos += 8;
	}
	a0 = c->a[0]; a1 = c->a[1]; a2 = c->a[2]; a3 = c->a[3];
	b0 = c->b[0]; b1 = c->b[1]; b2 = c->b[2]; b3 = c->b[3];
	while (n >= 32) {
		a0 += ld64(p);      b0 += a0;
		a1 += ld64(p + 8);  b1 += a1;
		a2 += ld64(p + 16); b2 += a2;
		a3 += ld64(p + 24); b3 += a3;
		p += 32;
		n -= 32;
		c->pos += 32;
	}
	c->a[0] = a0; c->a[1] = a1; c->a[2] = a2; c->a[3] = a3;
	c->b[0] = b0; c->b[1] = b1; c->b[2] = b2; c->b[3] = b3;
	while (n >= 8) {
		csum_word(c, ld64(p), c->pos / 8);
		p += 8;
		n -= 8;
		c->pos += 8;
	}
	while (n) {
		c->part |= (uint64_t)*p++ << (8 * (c->pos & 7));
		c->pos++;
		n--;
	}
}

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static uint64_t csum_final(const struct csum *c0)
{
	struct csum c = *c0;
	uint64_t h;
	int j;

	if (c.pos & 7)
		csum_word(&c, c.part, c.pos / 8);
	h = mix64(c.pos ^ 0x52494E47ull);
	for (j = 0; j < 4; j++) {
		h = mix64(h ^ c.a[j]);
		h = mix64(h ^ c.b[j]);
	}
	return h;
}

/* the checksum of the first n bytes of the pattern stream */
static uint64_t expected_csum(uint64_t n)
{
	struct csum c;

	memset(&c, 0, sizeof(c));
	while (n) {
		uint64_t k = n < pat_period ? n : pat_period;

		csum_update(&c, pat, k);
		n -= k;
	}
	return csum_final(&c);
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* processes: the receiver (child) reports through a pipe */

struct result {
	int32_t ok;         /* the receive loop ended normally */
	int32_t ivc_err;    /* negative IVC_E_* code, or 0 */
	uint64_t received;
	uint64_t t_end;     /* CLOCK_MONOTONIC ns when byte N was read */
	uint64_t sum, expect;
	uint64_t kicks, sleeps, lost;
	char msg[200];
};

static pid_t g_child;
static char g_alarm_line[256];

static void parent_alarm(int sig)
{
	ssize_t r;

	(void)sig;
	if (g_child > 0)
		kill(g_child, SIGKILL);
	r = write(1, g_alarm_line, strlen(g_alarm_line));
	(void)r;
	_exit(1);
}

static void arm_parent_alarm(unsigned timeout)
{
	struct sigaction sa;

	snprintf(g_alarm_line, sizeof(g_alarm_line),
		 "{\"tool\":\"ringbench\",\"path\":\"%s\",\"error\":\"timeout: no result after %u s\"}\n", g_path,
		 timeout);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = parent_alarm;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	alarm(timeout);
}

static int write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t r = write(fd, p, len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

/* bytes read (short on EOF), -1 on error */
static ssize_t read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t r = read(fd, p + got, len - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* child side: end the receiver with a result */
static void child_report(int wfd, struct result *res) __attribute__((noreturn));
static void child_report(int wfd, struct result *res)
{
	write_full(wfd, res, sizeof(*res));
	_exit(0);
}

static void child_fail(int wfd, struct result *res, const char *fmt, ...) __attribute__((format(printf, 3, 4), noreturn));
static void child_fail(int wfd, struct result *res, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(res->msg, sizeof(res->msg), fmt, ap);
	va_end(ap);
	res->ok = 0;
	child_report(wfd, res);
}

/* 0, or -1 with errno */
static int pin_to(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return 0;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set);
}

/* the child sets itself up: dies with the parent, and never outlives the timeout */
static void child_setup(const struct opts *o, int wfd)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGALRM, SIG_DFL);
	alarm(o->timeout);
	if (pin_to(o->pin_rx)) {
		struct result res;

		memset(&res, 0, sizeof(res));
		child_fail(wfd, &res, "receiver: pin to CPU %d: %s", o->pin_rx, strerror(errno));
	}
}

static void parent_pin(const struct opts *o)
{
	if (pin_to(o->pin_tx))
		fail("pin to CPU %d: %s", o->pin_tx, strerror(errno));
}

/* parent side: the child's result, or an error line if it died without one */
static void parent_collect(int rfd, struct result *res)
{
	ssize_t r = read_full(rfd, res, sizeof(*res));
	int st = 0;

	if (r != (ssize_t)sizeof(*res)) {
		waitpid(g_child, &st, 0);
		g_child = 0;
		if (WIFSIGNALED(st))
			fail("receiver died (signal %d) without a result", WTERMSIG(st));
		fail("receiver exited (status %d) without a result", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	}
	waitpid(g_child, &st, 0);
	g_child = 0;
}

/*
 * The receiver's first message: READY_MAGIC and a value (the TCP port, else 1). A receiver that fails before being
 * ready sends its result instead, whose first word (ok = 0) is not the magic.
 */
#define READY_MAGIC 0x59444552u /* "REDY" */

static int child_ready(int wfd, uint32_t value)
{
	uint32_t m[2] = { READY_MAGIC, value };

	return write_full(wfd, m, sizeof(m));
}

static uint32_t parent_wait_ready(int rfd)
{
	_Static_assert(sizeof(struct result) > 2 * sizeof(uint32_t), "result larger than the ready message");
	union {
		uint32_t m[2];
		struct result res;
	} u;
	ssize_t r = read_full(rfd, u.m, sizeof(u.m));
	int st = 0;

	if (r == (ssize_t)sizeof(u.m) && u.m[0] == READY_MAGIC)
		return u.m[1];
	if (r == (ssize_t)sizeof(u.m) &&
	    read_full(rfd, (char *)&u.res + sizeof(u.m), sizeof(u.res) - sizeof(u.m)) ==
		    (ssize_t)(sizeof(u.res) - sizeof(u.m))) {
		u.res.msg[sizeof(u.res.msg) - 1] = 0;
		waitpid(g_child, &st, 0);
		g_child = 0;
		fail("%s", u.res.msg[0] ? u.res.msg : "receiver failed before being ready");
	}
	waitpid(g_child, &st, 0);
	g_child = 0;
	if (WIFSIGNALED(st))
		fail("receiver died (signal %d) before being ready", WTERMSIG(st));
	fail("receiver exited (status %d) before being ready", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* ring */

/*
 * The control page: struct ivc_ctrl as the kernel lays it out, then (after it, in the same page) the futex words that
 * stand in for the event channel: rx_evt is what a sleeping receiver waits on (the sender's EVENT_SEND_DATA bumps it
 * and wakes), tx_evt the same for a sleeping sender (EVENT_RECV_GET_DATA). abort_flag: the receiver gave up.
 */
struct shpage {
	struct ivc_ctrl ctrl;
	uint32_t rx_evt __attribute__((aligned(64)));
	uint32_t tx_evt __attribute__((aligned(64)));
	uint32_t abort_flag __attribute__((aligned(64)));
};
_Static_assert(sizeof(struct shpage) <= IVC_PAGE_SIZE, "the control page");

static long futex_wait(uint32_t *w, uint32_t val, long ns)
{
	struct timespec ts = { 0, ns };

	return syscall(SYS_futex, w, FUTEX_WAIT, val, &ts, NULL, 0);
}

/* the event: bump the word, wake its sleeper (always the syscall, as the kernel always raises the event) */
static void raise_event(uint32_t *w)
{
	__atomic_add_fetch(w, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static uint8_t *chan_addr(uint8_t *data, uint32_t chsize, uint32_t chan, uint32_t off, uint32_t len, uint32_t *n)
{
	uint32_t page, page_off;

	*n = ivc_chan_chunk(chsize, chan, off, len, &page, &page_off);
	return data + (size_t)page * IVC_PAGE_SIZE + page_off;
}

struct ring_rx {
	struct shpage *sp;
	struct ivc_ctrl *c;
	uint8_t *data;
	struct ivc_rx rx;
	uint64_t kicks;
};

/*
 * One recv(len), as the kernel's recvmsg: takes what the channels hold (open ones too, up to their current size),
 * over several channels, up to len; raises EVENT_RECV_GET_DATA once at the end if it freed channels (by consuming
 * them, or on the way: a channel sealed after it was read) and ivc_rx_need_kick() says so, marking the request
 * served only then. Returns bytes read (0: nothing there) or a negative IVC_E_*.
 */
static int64_t ring_recv(struct ring_rx *r, uint8_t *buf, uint64_t len)
{
	uint64_t copied = 0;
	uint32_t w;
	int pk;

	while (copied < len) {
		uint32_t avail, off, chan, n, done = 0;

		pk = ivc_rx_avail(&r->rx, r->c, 0, &avail, NULL);
		if (pk < 0)
			return pk;
		if (pk == 0)
			break;
		chan = ivc_rx_chan(&r->rx, 0, &off);
		n = len - copied < avail ? (uint32_t)(len - copied) : avail;
		while (done < n) {
			uint32_t k;
			const uint8_t *src = chan_addr(r->data, r->rx.channel_size, chan, off + done, n - done, &k);

			memcpy(buf + copied + done, src, k);
			done += k;
		}
		copied += n;
		ivc_rx_consume(&r->rx, r->c, n);
	}
	if (ivc_rx_take_freed(&r->rx) && ivc_rx_need_kick(&r->rx, r->c, &w)) {
		raise_event(&r->sp->tx_evt);
		ivc_rx_kicked(&r->rx, w);
		r->kicks++;
	}
	return (int64_t)copied;
}

static void ring_receiver(const struct opts *o, struct shpage *sp, uint8_t *data, int wfd, pid_t parent)
{
	struct result res;
	struct ring_rx r;
	struct csum cs;
	uint32_t nr_rx = 0;
	uint8_t *buf;
	volatile uint8_t sink = 0;
	size_t i, dlen = (size_t)o->channels * o->chsize;
	int e;

	memset(&res, 0, sizeof(res));
	memset(&cs, 0, sizeof(cs));
	memset(&r, 0, sizeof(r));
	buf = malloc(o->msg);
	if (!buf)
		child_fail(wfd, &res, "receiver: out of memory");
	memset(buf, 0, o->msg);
	for (i = 0; i < dlen; i += IVC_PAGE_SIZE) /* map the data pages here before the clock starts */
		sink ^= data[i];
	(void)sink;
	r.sp = sp;
	r.c = &sp->ctrl;
	r.data = data;
	e = ivc_ctrl_check(r.c, o->channels, o->chsize, &nr_rx); /* as the receiving kernel does on the mapped page */
	if (e < 0) {
		res.ivc_err = e;
		child_fail(wfd, &res, "receiver: control page check: %s", ivc_err_name(e));
	}
	ivc_rx_init(&r.rx, o->channels, o->chsize, nr_rx);
	if (child_ready(wfd, 1))
		_exit(1);

	for (;;) {
		int64_t got = ring_recv(&r, buf, o->msg);

		if (got < 0) {
			res.ivc_err = (int32_t)got;
			__atomic_store_n(&sp->abort_flag, 1, __ATOMIC_SEQ_CST);
			raise_event(&sp->tx_evt);
			child_fail(wfd, &res, "receiver: protocol violation %s after %" PRIu64 " bytes",
				   ivc_err_name((int)got), res.received);
		}
		if (got > 0) {
			csum_update(&cs, buf, (size_t)got);
			if (res.received < o->bytes && res.received + (uint64_t)got >= o->bytes)
				res.t_end = now_ns();
			res.received += (uint64_t)got;
			if (o->read_rearm) /* sock.c: "after a read, the next channel raises EVENT_SEND_DATA" */
				ivc_rx_want(&r.rx, r.c);
			continue;
		}
		/* nothing published: the end, or wait */
		if (IVC_READ(&r.c->tx_flags) & IVC_TX_CLOSED) {
			int64_t left;

			IVC_RMB();
			left = ivc_rx_ready(&r.rx, r.c);
			if (left < 0)
				continue; /* ring_recv reports it */
			if (left == 0)
				break;
			continue;
		}
		{
			uint32_t ev = __atomic_load_n(&sp->rx_evt, __ATOMIC_ACQUIRE);
			long w;

			ivc_rx_want(&r.rx, r.c);
			if (ivc_rx_news(&r.rx, r.c) || (IVC_READ(&r.c->tx_flags) & IVC_TX_CLOSED))
				continue;
			res.sleeps++;
			w = futex_wait(&sp->rx_evt, ev, WAIT_SLICE_NS);
			if (w < 0 && errno == ETIMEDOUT) {
				if (ivc_rx_news(&r.rx, r.c))
					res.lost++; /* published, yet no event came: the kernel counts lost_wakeups */
				if (getppid() != parent)
					child_fail(wfd, &res, "receiver: the sender is gone");
			}
		}
	}
	res.sum = csum_final(&cs);
	res.expect = expected_csum(o->bytes);
	res.kicks = r.kicks;
	res.ok = 1;
	child_report(wfd, &res);
}

struct ring_tx {
	struct shpage *sp;
	struct ivc_ctrl *c;
	uint8_t *data;
	struct ivc_tx tx;
	uint64_t kicks, sleeps, lost;
};

/* the receiver's state when the sender cannot go on: returns only if the receiver is alive and has not aborted */
static void ring_tx_check_peer(struct ring_tx *t, int rfd)
{
	int st;

	if (__atomic_load_n(&t->sp->abort_flag, __ATOMIC_ACQUIRE) || waitpid(g_child, &st, WNOHANG) == g_child) {
		struct result res;

		memset(&res, 0, sizeof(res));
		if (read_full(rfd, &res, sizeof(res)) == (ssize_t)sizeof(res) && res.msg[0])
			fail("%s", res.msg);
		fail("receiver gone while the sender waited for a free channel");
	}
}

/* the sender's wait is over: its next channel is free and enough are for the receiver to say so */
static int ring_tx_news(struct ring_tx *t)
{
	uint32_t i, busy = 0;

	if (!ivc_tx_writable(&t->tx, t->c))
		return 0;
	for (i = 0; i < t->tx.nr_channels; i++)
		busy += IVC_READ(&t->c->chan[i].pend_read) != 0;
	return t->tx.nr_channels - busy >= ivc_rx_kick_threshold(t->tx.nr_channels);
}

/*
 * One send(len), as the kernel's sendmsg: appends to the open channel (room, copy, commit), so consecutive small
 * writes share a channel while the receiver has not freed it; a full channel is sealed by its last commit and the
 * rest of the write goes to the next. EVENT_SEND_DATA after a commit when ivc_tx_need_kick() says so, marked served
 * once raised; no room: tx_want, look again, sleep.
 */
static void ring_send(struct ring_tx *t, const uint8_t *src, uint64_t len, int rfd)
{
	while (len) {
		uint32_t chan, off, n, done = 0, w;
		uint32_t ev = 0;
		int64_t room = ivc_tx_room(&t->tx, t->c, &chan, &off);

		if (room == 0) {
			ev = __atomic_load_n(&t->sp->tx_evt, __ATOMIC_ACQUIRE);
			ivc_tx_want(&t->tx, t->c);
			room = ivc_tx_room(&t->tx, t->c, &chan, &off);
		}
		if (room < 0)
			fail("sender: protocol violation %s", ivc_err_name((int)room));
		if (room == 0) {
			long r;

			ring_tx_check_peer(t, rfd);
			t->sleeps++;
			r = futex_wait(&t->sp->tx_evt, ev, WAIT_SLICE_NS);
			if (r < 0 && errno == ETIMEDOUT) {
				if (ring_tx_news(t))
					t->lost++;
				ring_tx_check_peer(t, rfd);
			}
			continue;
		}
		n = len < (uint64_t)room ? (uint32_t)len : (uint32_t)room;
		while (done < n) {
			uint32_t k;
			uint8_t *dst = chan_addr(t->data, t->tx.channel_size, chan, off + done, n - done, &k);

			memcpy(dst, src + done, k);
			done += k;
		}
		ivc_tx_commit(&t->tx, t->c, n);
		src += n;
		len -= n;
		if (ivc_tx_need_kick(&t->tx, t->c, &w)) {
			raise_event(&t->sp->rx_evt);
			ivc_tx_kicked(&t->tx, w);
			t->kicks++;
		}
	}
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* sockets */

static void sock_receiver(const struct opts *o, int fd, int wfd)
{
	struct result res;
	struct csum cs;
	uint8_t *buf;

	memset(&res, 0, sizeof(res));
	memset(&cs, 0, sizeof(cs));
	buf = malloc(o->msg);
	if (!buf)
		child_fail(wfd, &res, "receiver: out of memory");
	memset(buf, 0, o->msg);
	for (;;) {
		ssize_t got = recv(fd, buf, o->msg, 0);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			child_fail(wfd, &res, "receiver: recv: %s after %" PRIu64 " bytes", strerror(errno),
				   res.received);
		if (got == 0)
			break;
		csum_update(&cs, buf, (size_t)got);
		if (res.received < o->bytes && res.received + (uint64_t)got >= o->bytes)
			res.t_end = now_ns();
		res.received += (uint64_t)got;
	}
	res.sum = csum_final(&cs);
	res.expect = expected_csum(o->bytes);
	res.ok = 1;
	child_report(wfd, &res);
}

static void sock_send_all(int fd, const struct opts *o)
{
	uint64_t sent = 0, pos = 0;

	while (sent < o->bytes) {
		uint64_t m = o->bytes - sent < o->msg ? o->bytes - sent : o->msg, off = 0;

		while (off < m) { /* a blocking send() normally takes it all; go on after a short one */
			ssize_t r = send(fd, pat + pos + off, m - off, 0);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				fail("sender: send: %s after %" PRIu64 " bytes", r < 0 ? strerror(errno) : "0",
				     sent + off);
			off += (uint64_t)r;
		}
		sent += m;
		pos = (pos + m) % pat_period;
	}
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* runs */

static void print_result(const struct opts *o, double secs, int verified, const struct result *res,
			 const struct ring_tx *t, const char *err)
{
	printf("{\"tool\":\"ringbench\",\"path\":\"%s\",\"msg_size\":%" PRIu64 ",\"bytes\":%" PRIu64
	       ",\"seconds\":%.6f,\"throughput_MBps\":%.1f",
	       path_names[o->path], o->msg, o->bytes, secs, secs > 0 ? (double)o->bytes / secs / 1e6 : 0.0);
	if (o->path == P_RING)
		printf(",\"channels\":%u,\"channel_size\":%u", o->channels, o->chsize);
	if (o->pin_tx >= 0 && o->path == P_MEMCPY)
		printf(",\"pin\":\"%d\"", o->pin_tx);
	else if (o->pin_tx >= 0)
		printf(",\"pin\":\"%d,%d\"", o->pin_tx, o->pin_rx);
	printf(",\"seed\":%" PRIu64 ",\"verified\":%s", o->seed, verified ? "true" : "false");
	if (o->path == P_RING && res && t)
		printf(",\"kicks_tx\":%" PRIu64 ",\"kicks_rx\":%" PRIu64 ",\"sleeps_tx\":%" PRIu64
		       ",\"sleeps_rx\":%" PRIu64 ",\"lost_wakeups\":%" PRIu64 ",\"read_rearm\":%s",
		       t->kicks, res->kicks, t->sleeps, res->sleeps, t->lost + res->lost,
		       o->read_rearm ? "true" : "false");
	if (err) {
		fputs(",\"error\":", stdout);
		json_str(stdout, err);
	}
	fputs("}\n", stdout);
	fflush(stdout);
}

/* verify the receiver's result, print, exit status */
static int finish(const struct opts *o, uint64_t t0, const struct result *res, const struct ring_tx *t)
{
	char err[256] = "";
	int verified;
	double secs;

	if (!res->ok)
		fail("%s", res->msg[0] ? res->msg : "receiver failed");
	if (res->received != o->bytes)
		snprintf(err, sizeof(err), "received %" PRIu64 " bytes, expected %" PRIu64, res->received, o->bytes);
	else if (res->sum != res->expect)
		snprintf(err, sizeof(err), "checksum mismatch: %016" PRIx64 " expected %016" PRIx64, res->sum,
			 res->expect);
	verified = err[0] == 0;
	secs = res->t_end > t0 ? (double)(res->t_end - t0) / 1e9 : 0.0;
	print_result(o, secs, verified, res, t, verified ? NULL : err);
	return verified ? 0 : 1;
}

static int run_ring(const struct opts *o)
{
	size_t dlen = (size_t)o->channels * o->chsize;
	struct shpage *sp;
	uint8_t *data;
	int pfd[2];
	pid_t parent = getpid();
	struct ring_tx t;
	struct result res;
	uint64_t t0, sent = 0, pos = 0;

	sp = mmap(NULL, IVC_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	data = mmap(NULL, dlen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sp == MAP_FAILED || data == MAP_FAILED)
		fail("mmap: %s", strerror(errno));
	memset(data, 0, dlen); /* allocate the pages (the kernel sender allocates and zeroes them) */
	ivc_ctrl_init(&sp->ctrl, o->channels, o->chsize, 1);
	if (pipe(pfd))
		fail("pipe: %s", strerror(errno));
	fflush(stdout);
	g_child = fork();
	if (g_child < 0)
		fail("fork: %s", strerror(errno));
	if (g_child == 0) {
		close(pfd[0]);
		child_setup(o, pfd[1]);
		if (getppid() != parent)
			_exit(1);
		ring_receiver(o, sp, data, pfd[1], parent);
		_exit(1);
	}
	close(pfd[1]);
	arm_parent_alarm(o->timeout);
	parent_pin(o);
	memset(&t, 0, sizeof(t));
	t.sp = sp;
	t.c = &sp->ctrl;
	t.data = data;
	ivc_tx_init(&t.tx, o->channels, o->chsize, 1);
	parent_wait_ready(pfd[0]);

	t0 = now_ns();
	while (sent < o->bytes) {
		uint64_t m = o->bytes - sent < o->msg ? o->bytes - sent : o->msg;

		ring_send(&t, pat + pos, m, pfd[0]);
		sent += m;
		pos = (pos + m) % pat_period;
	}
	/* the end of the stream: the last channel sealed, nothing more will be published (not counted as a kick) */
	ivc_tx_seal(&t.tx, &sp->ctrl);
	IVC_WMB();
	IVC_WRITE(&sp->ctrl.tx_flags, IVC_READ(&sp->ctrl.tx_flags) | IVC_TX_CLOSED);
	IVC_MB();
	raise_event(&sp->rx_evt);

	parent_collect(pfd[0], &res);
	return finish(o, t0, &res, &t);
}

static int run_sock(const struct opts *o)
{
	int pfd[2], sv[2] = { -1, -1 }, fd;
	struct result res;
	uint32_t ready;
	uint64_t t0;

	signal(SIGPIPE, SIG_IGN);
	if (pipe(pfd))
		fail("pipe: %s", strerror(errno));
	if (o->path == P_UNIX && socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		fail("socketpair: %s", strerror(errno));
	fflush(stdout);
	g_child = fork();
	if (g_child < 0)
		fail("fork: %s", strerror(errno));
	if (g_child == 0) {
		struct result cres;

		memset(&cres, 0, sizeof(cres));
		close(pfd[0]);
		child_setup(o, pfd[1]);
		if (o->path == P_UNIX) {
			close(sv[0]);
			fd = sv[1];
			if (child_ready(pfd[1], 1))
				_exit(1);
		} else {
			struct sockaddr_in a;
			socklen_t al = sizeof(a);
			int ls = socket(AF_INET, SOCK_STREAM, 0);

			memset(&a, 0, sizeof(a));
			a.sin_family = AF_INET;
			a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			a.sin_port = 0;
			if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 1) ||
			    getsockname(ls, (struct sockaddr *)&a, &al))
				child_fail(pfd[1], &cres, "receiver: listen on 127.0.0.1: %s", strerror(errno));
			if (child_ready(pfd[1], ntohs(a.sin_port)))
				_exit(1);
			do
				fd = accept(ls, NULL, NULL);
			while (fd < 0 && errno == EINTR);
			if (fd < 0)
				child_fail(pfd[1], &cres, "receiver: accept: %s", strerror(errno));
			close(ls);
		}
		sock_receiver(o, fd, pfd[1]);
		_exit(1);
	}
	close(pfd[1]);
	arm_parent_alarm(o->timeout);
	parent_pin(o);
	if (o->path == P_UNIX)
		close(sv[1]);
	ready = parent_wait_ready(pfd[0]);
	if (o->path == P_UNIX) {
		fd = sv[0];
	} else {
		struct sockaddr_in a;

		memset(&a, 0, sizeof(a));
		a.sin_family = AF_INET;
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		a.sin_port = htons((uint16_t)ready);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)))
			fail("connect to 127.0.0.1:%u: %s", ready, strerror(errno));
	}
	t0 = now_ns();
	sock_send_all(fd, o);
	shutdown(fd, SHUT_WR);
	parent_collect(pfd[0], &res);
	close(fd);
	return finish(o, t0, &res, NULL);
}

static int run_memcpy(const struct opts *o)
{
	uint8_t *dst = malloc(o->msg);
	uint64_t done = 0, pos = 0, last_pos = 0, last_m = 0, t0, t1;
	struct result res;
	int ok;

	if (!dst)
		fail("out of memory");
	parent_pin(o);
	memset(dst, 0, o->msg);
	t0 = now_ns();
	while (done < o->bytes) {
		uint64_t m = o->bytes - done < o->msg ? o->bytes - done : o->msg;

		memcpy(dst, pat + pos, m);
		__asm__ volatile("" : : "r"(dst) : "memory"); /* the copy is observable: never elided or merged */
		last_pos = pos;
		last_m = m;
		done += m;
		pos = (pos + m) % pat_period;
	}
	t1 = now_ns();
	/* read back: the destination holds the last message */
	ok = memcmp(dst, pat + last_pos, last_m) == 0;
	memset(&res, 0, sizeof(res));
	res.ok = 1;
	res.received = done;
	res.t_end = t1;
	{
		struct csum a;

		memset(&a, 0, sizeof(a));
		csum_update(&a, dst, last_m);
		res.sum = csum_final(&a);
		res.expect = ok ? res.sum : ~res.sum; /* finish() reports a mismatch as a checksum error */
	}
	return finish(o, t0, &res, NULL);
}

/* ---------------------------------------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "path", required_argument, NULL, 'p' },
		{ "msg-size", required_argument, NULL, 's' },
		{ "bytes", required_argument, NULL, 'n' },
		{ "channels", required_argument, NULL, 'c' },
		{ "channel-size", required_argument, NULL, 'z' },
		{ "seed", required_argument, NULL, 'x' },
		{ "no-read-rearm", no_argument, NULL, 'R' },
		{ "timeout", required_argument, NULL, 't' },
		{ "pin", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .path = P_RING, .channels = 4, .chsize = 4096, .seed = 1, .read_rearm = 1,
			  .timeout = DEFAULT_TIMEOUT, .pin_tx = -1, .pin_rx = -1 };
	int have_path = 0, have_msg = 0, have_bytes = 0, opt, i;
	uint64_t v;

	if (argc == 2 && strcmp(argv[1], "version") == 0) {
		printf("{\"tool\":\"ringbench\",\"version\":\"%s\",\"ivc_layout_version\":%u}\n", RB_VERSION,
		       IVC_LAYOUT_VERSION);
		return 0;
	}
	while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (opt) {
		case 'p':
			for (i = 0; i < 4; i++)
				if (strcmp(optarg, path_names[i]) == 0)
					break;
			if (i == 4)
				usage("unknown path '%s'", optarg);
			o.path = (enum path)i;
			have_path = 1;
			break;
		case 's':
			if (parse_size(optarg, &o.msg) || o.msg < 1 || o.msg > MAX_MSG)
				usage("--msg-size: '%s' is not a size in 1..16M", optarg);
			have_msg = 1;
			break;
		case 'n':
			if (parse_size(optarg, &o.bytes) || o.bytes < 1)
				usage("--bytes: '%s' is not a size >= 1", optarg);
			have_bytes = 1;
			break;
		case 'c':
			if (parse_size(optarg, &v) || v < 1 || v > IVC_MAX_CHANNELS)
				usage("--channels: '%s' is not in 1..%u", optarg, IVC_MAX_CHANNELS);
			o.channels = (uint32_t)v;
			break;
		case 'z':
			if (parse_size(optarg, &v) || v > IVC_MAX_CHANNEL_SIZE || v < IVC_MIN_CHANNEL_SIZE ||
			    v % IVC_PAGE_SIZE)
				usage("--channel-size: '%s' is not a multiple of 4K in 4K..256K", optarg);
			o.chsize = (uint32_t)v;
			break;
		case 'x': {
			char *end;

			errno = 0;
			o.seed = strtoull(optarg, &end, 0);
			if (errno || !*optarg || *end)
				usage("--seed: '%s' is not a number", optarg);
			break;
		}
		case 'R':
			o.read_rearm = 0;
			break;
		case 't':
			if (parse_size(optarg, &v) || v < 1 || v > 86400)
				usage("--timeout: '%s' is not a number of seconds in 1..86400", optarg);
			o.timeout = (unsigned)v;
			break;
		case 'P': {
			const char *rest;
			char *end;
			long a, b;

			errno = 0;
			a = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end != ',' || a < 0 || a >= CPU_SETSIZE)
				usage("--pin: '%s' is not SENDER_CPU,RECEIVER_CPU", optarg);
			rest = end + 1;
			b = strtol(rest, &end, 10);
			if (errno || end == rest || *end || b < 0 || b >= CPU_SETSIZE)
				usage("--pin: '%s' is not SENDER_CPU,RECEIVER_CPU", optarg);
			o.pin_tx = (int)a;
			o.pin_rx = (int)b;
			break;
		}
		case 'h':
			usage(NULL);
		default:
			usage(NULL);
		}
	}
	if (optind < argc)
		usage("unexpected argument '%s'", argv[optind]);
	if (!have_path || !have_msg || !have_bytes)
		usage("--path, --msg-size and --bytes are required");
	if (!ivc_geometry_ok(o.channels, o.chsize))
		usage("geometry %u x %u rejected by ivc_geometry_ok()", o.channels, o.chsize);
	g_path = path_names[o.path];

	pattern_build(o.seed, o.msg);
	switch (o.path) {
	case P_RING:
		return run_ring(&o);
	case P_TCP:
	case P_UNIX:
		return run_sock(&o);
	case P_MEMCPY:
		return run_memcpy(&o);
	}
	return 2;
}
