// SPDX-License-Identifier: GPL-2.0-only
/* ivcbench stream: bulk transfer with full verification. */
#include "ivcbench.h"
#include "pattern.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Smallest receive buffer, whatever the sender's message size. */
#define RECV_BUF_MIN (64u << 10)

size_t pattern_window_for(uint32_t msg_size)
{
	return msg_size > (256u << 10) ? msg_size : (256u << 10);
}

/*
 * The bytes [off, off+len) as the sender sends them: a slice of the pattern,
 * or a copy in scratch with the byte at corrupt_at flipped.
 */
static const uint8_t *sender_chunk(const struct pattern *p, uint64_t off,
				   size_t len, int corrupt, uint64_t corrupt_at,
				   uint8_t *scratch)
{
	const uint8_t *src = pattern_at(p, off);

	if (!corrupt || corrupt_at < off || corrupt_at - off >= len)
		return src;
	memcpy(scratch, src, len);
	scratch[corrupt_at - off] ^= 0xa5;
	return scratch;
}

int stream_send(int fd, const struct pattern *p, uint64_t total,
		uint32_t msg_size, int corrupt, uint64_t corrupt_at,
		uint64_t *checksum)
{
	uint8_t *scratch = NULL;
	struct csum cs;
	uint64_t off = 0;

	if (corrupt && !(scratch = malloc(msg_size))) {
		set_err("out of memory");
		return -1;
	}
	csum_init(&cs);
	while (off < total) {
		size_t len = total - off < msg_size ? (size_t)(total - off) : msg_size;
		const uint8_t *b = sender_chunk(p, off, len, corrupt, corrupt_at,
						scratch);

		if (checksum)
			csum_update(&cs, b, len);
		if (netutil_send_full(fd, b, len) < 0) {
			set_err_sys("send at offset %llu", (unsigned long long)off);
			free(scratch);
			return -1;
		}
		off += len;
	}
	free(scratch);
	if (checksum)
		*checksum = csum_final(&cs);
	return 0;
}

uint64_t stream_expected_checksum(const struct pattern *p, uint64_t total,
				  int corrupt, uint64_t corrupt_at)
{
	struct csum cs;
	uint64_t off = 0;

	csum_init(&cs);
	while (off < total) {
		size_t len = total - off < p->window ? (size_t)(total - off) : p->window;

		if (corrupt && corrupt_at >= off && corrupt_at - off < len) {
			uint8_t b = *pattern_at(p, corrupt_at) ^ 0xa5;
			size_t k = (size_t)(corrupt_at - off);

			csum_update(&cs, pattern_at(p, off), k);
			csum_update(&cs, &b, 1);
			csum_update(&cs, pattern_at(p, corrupt_at + 1), len - k - 1);
		} else {
			csum_update(&cs, pattern_at(p, off), len);
		}
		off += len;
	}
	return csum_final(&cs);
}

/*
 * Reads to EOF or until limit bytes, in reads of up to bufsz, verifying every
 * byte; r->mismatch is the first bad offset. With pause_ms, sleeps that long
 * once pause_at bytes have been read (no read crosses pause_at).
 */
static int recv_verify(int fd, const struct pattern *p, size_t bufsz,
		       uint64_t limit, uint64_t pause_at, uint32_t pause_ms,
		       struct recv_result *r)
{
	uint8_t *buf = malloc(bufsz);
	struct csum cs;

	if (!buf) {
		set_err("out of memory");
		return -1;
	}
	csum_init(&cs);
	r->bytes = 0;
	r->mismatch = NO_MISMATCH;
	while (r->bytes < limit) {
		size_t want = limit - r->bytes < bufsz ? (size_t)(limit - r->bytes) : bufsz;
		ssize_t n;

		if (pause_ms && r->bytes == pause_at) {
			sleep_ms(pause_ms); /* nothing waits on the socket meanwhile */
			pause_ms = 0;
		}
		if (pause_ms && pause_at - r->bytes < want)
			want = (size_t)(pause_at - r->bytes);
		n = read(fd, buf, want);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			set_err_sys("receive at offset %llu",
				    (unsigned long long)r->bytes);
			free(buf);
			return -1;
		}
		if (n == 0)
			break;
		if (r->mismatch == NO_MISMATCH)
			r->mismatch = pattern_check(p, r->bytes, buf, (size_t)n);
		csum_update(&cs, buf, (size_t)n);
		r->bytes += (uint64_t)n;
	}
	free(buf);
	r->checksum = csum_final(&cs);
	return 0;
}

int stream_recv(int fd, const struct pattern *p, uint32_t msg_size,
		struct recv_result *r)
{
	return recv_verify(fd, p, msg_size > RECV_BUF_MIN ? msg_size : RECV_BUF_MIN,
			   UINT64_MAX, 0, 0, r);
}

int stream_recv_paused(int fd, const struct pattern *p, uint32_t msg_size,
		       uint64_t pause_at, uint32_t pause_ms, struct recv_result *r)
{
	return recv_verify(fd, p, msg_size > RECV_BUF_MIN ? msg_size : RECV_BUF_MIN,
			   UINT64_MAX, pause_at, pause_ms, r);
}

int stream_recv_exact(int fd, const struct pattern *p, size_t bufsz,
		      uint64_t total, struct recv_result *r)
{
	return recv_verify(fd, p, bufsz, total, 0, 0, r);
}

static int finish(const struct opts *o, uint64_t received, double secs,
		  uint64_t cs_sent, uint64_t cs_recv, uint64_t mismatch)
{
	struct json j;
	int verified;

	/* A short or long stream fails at the first missing/extra offset. */
	if (mismatch == NO_MISMATCH && received != o->bytes)
		mismatch = received < o->bytes ? received : o->bytes;
	verified = mismatch == NO_MISMATCH;
	json_begin(&j);
	json_str(&j, "tool", "ivcbench");
	json_str(&j, "mode", "stream");
	json_str(&j, "direction", o->direction == DIR_SEND ? "send" : "recv");
	json_u64(&j, "msg_size", o->msg_size);
	json_u64(&j, "bytes", o->bytes);
	json_u64(&j, "bytes_received", received);
	json_num(&j, "seconds", secs, 6);
	json_num(&j, "throughput_MBps", secs > 0 ? (double)received / secs / 1e6 : 0, 3);
	json_hex(&j, "checksum_sent", cs_sent);
	json_hex(&j, "checksum_received", cs_recv);
	json_bool(&j, "verified", verified);
	json_i64(&j, "mismatch_offset", verified ? -1 : (int64_t)mismatch);
	if (o->read_delay_ms)
		json_u64(&j, "read_delay_ms", o->read_delay_ms);
	if (o->read_delay_at)
		json_u64(&j, "read_delay_at", o->read_delay_at);
	json_emit(&j);
	return verified ? EX_OK : EX_VERIFY;
}

int cmd_stream(const struct opts *o)
{
	struct pattern pat;
	struct hdr h = { 0 };
	struct report rep;
	uint8_t hb[HDR_LEN], ab[ACK_LEN], rb[REPORT_LEN];
	uint64_t cs_sent;
	double t0, t1;
	ssize_t n;
	int fd, st, rc = EX_NET;

	if (pattern_init(&pat, o->seed, pattern_window_for(o->msg_size)) < 0) {
		fprintf(stderr, "ivcbench: out of memory\n");
		return EX_NET;
	}
	fd = net_connect(o->host, o->port, o->connect_timeout, o->timeout, 0);
	if (fd < 0) {
		pattern_free(&pat);
		return json_error("stream", ivcb_err);
	}
	h.version = IVCB_PROTOCOL;
	h.mode = MODE_STREAM;
	h.direction = (uint8_t)o->direction;
	h.msg_size = o->msg_size;
	h.total = o->bytes;
	h.seed = o->seed;
	if (o->corrupt && o->direction == DIR_RECV) {
		h.flags = HDR_F_CORRUPT;
		h.corrupt_at = o->corrupt_at;
	}
	/*
	 * The receiver's delay goes in the header in both directions: in send
	 * mode the server is the receiver and sleeps before reading; in recv
	 * mode we sleep, and the server, sending meanwhile, lengthens its
	 * socket timeouts by it.
	 */
	if (o->read_delay_ms) {
		h.flags |= HDR_F_READ_DELAY;
		h.read_delay_ms = o->read_delay_ms;
	}
	hdr_encode(&h, hb);
	if (netutil_send_full(fd, hb, HDR_LEN) < 0) {
		set_err_sys("send request header");
		goto out;
	}
	n = read_full(fd, ab, ACK_LEN);
	if (n < 0) {
		set_err_sys("receive ack");
		goto out;
	}
	if (n < ACK_LEN || (st = ack_decode(ab)) < 0) {
		set_err("no valid ack from the server (is it an ivcbench server?)");
		goto out;
	}
	if (st != ACK_OK) {
		set_err("server rejected the request (status %d%s)", st,
			st == ACK_BAD_REQUEST && o->read_delay_ms ?
			": a server older than --read-delay?" : "");
		goto out;
	}
	/*
	 * With a read delay, the sender's blocked send (buffers full) and its
	 * wait for the report last that much longer: its timeouts grow by it.
	 * The receiver's timeouts stay as they are: it sleeps before reading,
	 * with no call waiting on the socket.
	 */
	if (o->read_delay_ms && o->direction == DIR_SEND) {
		io_timeout_s = o->timeout + o->read_delay_ms / 1000.0;
		if (net_set_timeouts(fd, io_timeout_s) < 0)
			goto out;
	}
	t0 = netutil_now_s();
	if (o->direction == DIR_SEND) {
		if (stream_send(fd, &pat, o->bytes, o->msg_size, o->corrupt,
				o->corrupt_at, &cs_sent) < 0)
			goto out;
		if (shutdown(fd, SHUT_WR) < 0) {
			set_err_sys("shutdown");
			goto out;
		}
		n = read_full(fd, rb, REPORT_LEN);
		if (n < 0) {
			set_err_sys("receive the receiver's report");
			goto out;
		}
		if (n < REPORT_LEN || report_decode(rb, &rep) < 0) {
			set_err("connection closed before the receiver's report");
			goto out;
		}
		t1 = netutil_now_s();
		rc = finish(o, rep.bytes, t1 - t0, cs_sent, rep.checksum,
			    rep.mismatch);
	} else {
		struct recv_result r;

		/*
		 * Handshake done (the ack read); the data waits unread meanwhile,
		 * from the start or after the first read_delay_at bytes.
		 */
		if (stream_recv_paused(fd, &pat, o->msg_size, o->read_delay_at,
				       o->read_delay_ms, &r) < 0)
			goto out;
		t1 = netutil_now_s();
		if (r.bytes < o->bytes && r.mismatch == NO_MISMATCH) {
			set_err("connection closed after %llu of %llu bytes",
				(unsigned long long)r.bytes,
				(unsigned long long)o->bytes);
			goto out;
		}
		rep.mismatch = r.mismatch;
		if (rep.mismatch == NO_MISMATCH && r.bytes != o->bytes)
			rep.mismatch = o->bytes;
		rep.flags = rep.mismatch == NO_MISMATCH ? REPORT_F_VERIFIED : 0;
		rep.bytes = r.bytes;
		rep.checksum = r.checksum;
		report_encode(&rep, rb);
		/* Best effort: lets the server know the outcome. */
		(void)netutil_send_full(fd, rb, REPORT_LEN);
		/* What the server sent, by construction (it uses the same code). */
		cs_sent = stream_expected_checksum(&pat, o->bytes, o->corrupt,
						   o->corrupt_at);
		rc = finish(o, r.bytes, t1 - t0, cs_sent, r.checksum, r.mismatch);
	}
	close(fd);
	pattern_free(&pat);
	return rc;
out:
	close(fd);
	pattern_free(&pat);
	return json_error("stream", ivcb_err);
}
