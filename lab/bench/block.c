// SPDX-License-Identifier: GPL-2.0-only
/*
 * ivcbench block: one memory block per new connection (the thesis' Figure 10).
 *
 * A block's time runs from socket() to the server's report, so it includes the
 * connection setup and, on a co-resident connection, the creation of the
 * shared-memory tunnel at the first send/recv.  The client sends the request
 * header and the block back to back (no round trip for the ack before the
 * data); the server answers ack and report in one write after the block's last
 * byte, then closes.  The client stops the clock when it has the report, waits
 * for the server's FIN and closes: the server is the side that closes first,
 * so TIME_WAIT stays there and the client's ephemeral ports are free again at
 * once (README.md).
 */
#include "ivcbench.h"
#include "pattern.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- server side ---- */

int block_serve(int fd, const struct pattern *p, const struct hdr *h,
		struct recv_result *r, int *verified)
{
	uint8_t out[ACK_LEN + REPORT_LEN];
	struct report rep;

	if (net_set_nodelay(fd) < 0 ||
	    stream_recv_exact(fd, p, BLOCK_RECV_BUF, h->total, r) < 0)
		return -1;
	/* A short block (EOF first) fails at its first missing offset. */
	if (r->mismatch == NO_MISMATCH && r->bytes != h->total)
		r->mismatch = r->bytes;
	*verified = r->mismatch == NO_MISMATCH;
	rep.flags = *verified ? REPORT_F_VERIFIED : 0;
	rep.bytes = r->bytes;
	rep.checksum = r->checksum;
	rep.mismatch = r->mismatch;
	ack_encode(ACK_OK, out);
	report_encode(&rep, out + ACK_LEN);
	if (netutil_send_full(fd, out, sizeof(out)) < 0) {
		set_err_sys("send ack and report");
		return -1;
	}
	return 0;
}

/* ---- client side ---- */

struct block_run {
	const struct opts *o;
	struct pattern pat;
	struct sockaddr_storage ss; /* resolved once */
	socklen_t sslen;
	uint8_t hb[HDR_LEN];
};

static void set_rejected(int status)
{
	set_err("server rejected the block request (status %d%s)", status,
		status == ACK_BAD_REQUEST ?
		": bad request, or a server without block mode" : "");
}

/*
 * Connection for block 0: like the other commands, retried every 100 ms for
 * --connect-timeout while the server starts.  *start is reset before each
 * attempt, so a wait for the server is not counted.
 */
static int first_connect(const struct block_run *b, uint64_t *start)
{
	const struct opts *o = b->o;
	double begin = netutil_now_s(), deadline = begin + o->connect_timeout;
	int fd, e;

	for (;;) {
		double left = deadline - netutil_now_s();
		struct timespec ts;

		*start = now_ns();
		fd = netutil_connect_once(&b->ss, b->sslen, left,
					  NETUTIL_CONNECT_BLOCKING |
					  NETUTIL_SELF_CONNECT_BY_PEERNAME);
		if (fd >= 0)
			break;
		e = errno;
		left = deadline - netutil_now_s();
		if (left <= 0) {
			errno = e;
			set_err_sys("connect to %s:%u (gave up after %.1f s)",
				    o->host, o->port, netutil_now_s() - begin);
			return -1;
		}
		if (left > 0.1)
			left = 0.1;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(left * 1e9);
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	if (net_set_timeouts(fd, o->timeout) < 0 || net_set_nodelay(fd) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Connection for the other blocks, as an ordinary client makes it: a blocking
 * connect(), bounded by --timeout (SO_SNDTIMEO applies to connect too).
 */
static int plain_connect(const struct block_run *b)
{
	const struct opts *o = b->o;
	int fd = socket(b->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		set_err_sys("socket");
		return -1;
	}
	if (net_set_timeouts(fd, o->timeout) < 0 || net_set_nodelay(fd) < 0)
		goto fail;
	if (connect(fd, (const struct sockaddr *)&b->ss, b->sslen) < 0) {
		if (errno == EINPROGRESS) /* the SO_SNDTIMEO expired */
			errno = EAGAIN;
		set_err_sys("connect to %s:%u", o->host, o->port);
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

/* After a failed send: the server may have rejected the header and closed. */
static void pick_up_rejection(int fd)
{
	uint8_t in[ACK_LEN];
	ssize_t n = recv(fd, in, sizeof(in), MSG_DONTWAIT);
	int st;

	if (n == ACK_LEN && (st = ack_decode(in)) > 0)
		set_rejected(st);
}

/* The server's answer: ack + report, 48 bytes.  0, or -1 (error set). */
static int read_answer(int fd, struct report *rep)
{
	uint8_t in[ACK_LEN + REPORT_LEN];
	size_t got = 0;
	int st;

	while (got < sizeof(in)) {
		ssize_t n = read(fd, in + got, sizeof(in) - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (got >= ACK_LEN && (st = ack_decode(in)) > 0)
			set_rejected(st);
		else if (n < 0)
			set_err_sys("receive the server's report");
		else
			set_err("connection closed before the server's report (%zu of %zu bytes)",
				got, sizeof(in));
		return -1;
	}
	st = ack_decode(in);
	if (st < 0 || report_decode(in + ACK_LEN, rep) < 0) {
		set_err("no valid ack and report from the server (is it an ivcbench server?)");
		return -1;
	}
	if (st != ACK_OK) {
		set_rejected(st);
		return -1;
	}
	return 0;
}

/*
 * Block number idx on a new connection: *start when its clock started, *ns
 * its time.  0, or -1 (error set).
 */
static int one_block(const struct block_run *b, uint64_t idx, uint64_t *start,
		     uint64_t *ns, struct report *rep)
{
	const struct opts *o = b->o;
	uint8_t drain[64];
	int fd;

	*start = now_ns();
	fd = idx == 0 ? first_connect(b, start) : plain_connect(b);
	if (fd < 0)
		return -1;
	if (netutil_send_full(fd, b->hb, HDR_LEN) < 0) {
		set_err_sys("send request header");
		pick_up_rejection(fd);
		goto fail;
	}
	if (stream_send(fd, &b->pat, o->bytes, o->msg_size, o->corrupt,
			o->corrupt_at, NULL) < 0) {
		pick_up_rejection(fd);
		goto fail;
	}
	if (read_answer(fd, rep) < 0)
		goto fail;
	*ns = now_ns() - *start;
	/* Not timed: the server closes first (TIME_WAIT on its side), then we do. */
	for (;;) {
		ssize_t n = read(fd, drain, sizeof(drain));

		if (n > 0 || (n < 0 && errno == EINTR))
			continue;
		break;
	}
	close(fd);
	return 0;
fail:
	close(fd);
	return -1;
}

/* Prefixes the error message with the block number. */
static void err_at_block(uint64_t idx)
{
	char msg[sizeof(ivcb_err)];

	memcpy(msg, ivcb_err, sizeof(msg));
	set_err("block %llu: %s", (unsigned long long)idx, msg);
}

int cmd_block(const struct opts *o)
{
	struct block_run b = { .o = o };
	struct lat l = { 0 };
	struct hdr h = { 0 };
	struct report rep = { 0 };
	struct json j;
	uint64_t i, limit, t0 = 0, t1, deadline = 0, cs_sent;
	uint64_t bad_block = NO_MISMATCH, mismatch = NO_MISMATCH;
	double secs, p50;
	int verified = 1;

	limit = o->count ? o->count : BLOCK_COUNT_MAX;
	if (pattern_init(&b.pat, o->seed, pattern_window_for(o->msg_size)) < 0)
		goto oom;
	if (lat_reserve(&l, o->count ? o->count : 4096) < 0) {
		pattern_free(&b.pat);
		goto oom;
	}
	if (net_resolve(o->host, o->port, &b.ss, &b.sslen) < 0)
		goto fail;
	io_timeout_s = o->timeout;
	h.version = IVCB_PROTOCOL;
	h.mode = MODE_BLOCK;
	h.direction = DIR_SEND;
	h.msg_size = o->msg_size;
	h.total = o->bytes;
	h.seed = o->seed;
	hdr_encode(&h, b.hb);
	/* Every block is the same bytes: stream offsets 0 .. bytes-1. */
	cs_sent = stream_expected_checksum(&b.pat, o->bytes, o->corrupt,
					   o->corrupt_at);

	for (i = 0;; i++) {
		int timed = i >= o->warmup;
		uint64_t start, ns = 0;

		if (timed && (l.n >= limit ||
			      (l.n && !o->count && now_ns() >= deadline)))
			break;
		if (one_block(&b, i, &start, &ns, &rep) < 0) {
			err_at_block(i);
			goto fail;
		}
		if (timed && !l.n) {
			/* From the first timed block's start (not a wait for the server). */
			t0 = start;
			deadline = t0 + (uint64_t)(o->seconds * 1e9);
		}
		if (timed && lat_add(&l, ns) < 0) {
			set_err("out of memory for block times");
			goto fail;
		}
		mismatch = rep.mismatch;
		if (mismatch == NO_MISMATCH && rep.bytes != o->bytes)
			mismatch = rep.bytes < o->bytes ? rep.bytes : o->bytes;
		if (mismatch != NO_MISMATCH || !(rep.flags & REPORT_F_VERIFIED) ||
		    rep.checksum != cs_sent) {
			verified = 0;
			bad_block = i;
			break; /* the run stops at the first bad block */
		}
	}
	t1 = now_ns();
	lat_sort(&l);
	secs = l.n ? (double)(t1 - t0) / 1e9 : 0;
	p50 = lat_pct_us(&l, 0.50);

	json_begin(&j);
	json_str(&j, "tool", "ivcbench");
	json_str(&j, "mode", "block");
	json_u64(&j, "bytes", o->bytes);
	json_u64(&j, "msg_size", o->msg_size);
	json_u64(&j, "count", l.n);
	json_num(&j, "seconds", secs, 6);
	lat_json(&j, &l, "block_us");
	/* bytes per microsecond = MB/s */
	json_num(&j, "throughput_MBps", p50 > 0 ? (double)o->bytes / p50 : 0, 6);
	json_num(&j, "throughput_mean_MBps", l.sum ?
		 (double)o->bytes * (double)l.n * 1e3 / (double)l.sum : 0, 6);
	json_hex(&j, "checksum_sent", cs_sent);
	json_hex(&j, "checksum_received", rep.checksum);
	json_bool(&j, "verified", verified);
	json_i64(&j, "mismatch_block", verified ? -1 : (int64_t)bad_block);
	json_i64(&j, "mismatch_offset",
		 mismatch == NO_MISMATCH ? -1 : (int64_t)mismatch);
	json_emit(&j);
	lat_free(&l);
	pattern_free(&b.pat);
	return verified ? EX_OK : EX_VERIFY;
fail:
	lat_free(&l);
	pattern_free(&b.pat);
	return json_error("block", ivcb_err);
oom:
	fprintf(stderr, "ivcbench: out of memory\n");
	return EX_NET;
}
