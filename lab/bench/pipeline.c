// SPDX-License-Identifier: GPL-2.0-only
/*
 * ivcbench pipeline: a blocking client writes all its requests before it
 * reads any answer (HTTP/1.1 and SMTP pipelining, database drivers), and a
 * blocking server answers each request as it reads it.  The exchange can
 * only finish if the path buffers the answers the server writes while the
 * client is still writing requests: over TCP, the server's send buffer and the
 * client's receive buffer.
 *
 * Request i is bytes [i*S, (i+1)*S) of the pattern, answer i bytes
 * [(T+i)*S, (T+i+1)*S) (T requests in all, warm-up included), so an answer is
 * never a copy of a request.  The first --warmup requests go one at a time
 * (each answer read before the next request, as rr), so that the timed part
 * starts on an established path; the other --count requests are the pipelined
 * burst: all written, then all answers read.  After the last answer the
 * server sends its report (32 bytes: its verification of every request).
 *
 * Bounds: every blocking call waits at most --timeout (SO_SNDTIMEO and
 * SO_RCVTIMEO), and the burst as a whole must be over within --timeout too,
 * checked between requests: a stalled exchange that still trickles (a TCP
 * window opening a few bytes at a time) ends as well, with how far it got.
 */
#include "ivcbench.h"
#include "pattern.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int pipeline_serve(int fd, const struct pattern *p, const struct hdr *h,
		   struct recv_result *r, uint64_t *count, int *verified)
{
	uint8_t *buf = malloc(h->msg_size), rb[REPORT_LEN];
	uint64_t S = h->msg_size, i;
	struct report rep;
	struct csum cs;

	if (!buf) {
		set_err("out of memory");
		return -1;
	}
	csum_init(&cs);
	r->bytes = 0;
	r->mismatch = NO_MISMATCH;
	*count = 0;
	for (i = 0; i < h->total; i++) {
		ssize_t n = read_full(fd, buf, h->msg_size);

		if (n < 0 || (size_t)n < h->msg_size) {
			if (n < 0)
				set_err_sys("receive request %llu", (unsigned long long)i);
			else
				set_err("connection closed in request %llu of %llu",
					(unsigned long long)i, (unsigned long long)h->total);
			free(buf);
			return -1;
		}
		if (r->mismatch == NO_MISMATCH)
			r->mismatch = pattern_check(p, i * S, buf, h->msg_size);
		csum_update(&cs, buf, h->msg_size);
		r->bytes += S;
		if (netutil_send_full(fd, pattern_at(p, (h->total + i) * S), h->msg_size) < 0) {
			set_err_sys("send answer %llu", (unsigned long long)i);
			free(buf);
			return -1;
		}
		(*count)++;
	}
	free(buf);
	r->checksum = csum_final(&cs);
	*verified = r->mismatch == NO_MISMATCH;
	rep.flags = *verified ? REPORT_F_VERIFIED : 0;
	rep.bytes = r->bytes;
	rep.checksum = r->checksum;
	rep.mismatch = r->mismatch;
	report_encode(&rep, rb);
	if (netutil_send_full(fd, rb, REPORT_LEN) < 0) {
		set_err_sys("send report");
		return -1;
	}
	return 0;
}

/* Reads answer i (T requests in all) and checks it; -1 on a read error (error set). */
static int read_answer(int fd, const struct pattern *p, uint64_t T, uint64_t i,
		       uint32_t S, uint8_t *buf, uint64_t *mismatch)
{
	ssize_t n = read_full(fd, buf, S);

	if (n < 0 || (size_t)n < S) {
		if (n < 0)
			set_err_sys("receive answer %llu", (unsigned long long)i);
		else
			set_err("connection closed in answer %llu", (unsigned long long)i);
		return -1;
	}
	if (*mismatch == NO_MISMATCH) {
		uint64_t m = pattern_check(p, (T + i) * S, buf, S);

		if (m != NO_MISMATCH)
			*mismatch = m - T * S; /* an offset in the answer stream */
	}
	return 0;
}

int cmd_pipeline(const struct opts *o)
{
	const uint32_t S = o->msg_size;
	const uint64_t W = o->warmup, T = o->warmup + o->count;
	struct pattern pat;
	struct hdr h = { 0 };
	struct report rep;
	struct json j;
	uint8_t hb[HDR_LEN], ab[ACK_LEN], rb[REPORT_LEN], *buf;
	uint64_t i, mismatch = NO_MISMATCH, t0, t_sent, t1, deadline;
	int fd, st, answers_ok, requests_ok;
	ssize_t n;

	buf = malloc(S);
	if (!buf || pattern_init(&pat, o->seed, pattern_window_for(S)) < 0) {
		fprintf(stderr, "ivcbench: out of memory\n");
		return EX_NET;
	}
	fd = net_connect(o->host, o->port, o->connect_timeout, o->timeout, 1);
	if (fd < 0) {
		free(buf);
		pattern_free(&pat);
		return json_error("pipeline", ivcb_err);
	}
	h.version = IVCB_PROTOCOL;
	h.mode = MODE_PIPELINE;
	h.direction = DIR_SEND;
	h.msg_size = S;
	h.total = T;
	h.seed = o->seed;
	hdr_encode(&h, hb);
	if (netutil_send_full(fd, hb, HDR_LEN) < 0) {
		set_err_sys("send request header");
		goto fail;
	}
	n = read_full(fd, ab, ACK_LEN);
	if (n < 0) {
		set_err_sys("receive ack");
		goto fail;
	}
	if (n < ACK_LEN || (st = ack_decode(ab)) < 0) {
		set_err("no valid ack from the server (is it an ivcbench server?)");
		goto fail;
	}
	if (st != ACK_OK) {
		set_err("server rejected the request (status %d%s)", st,
			st == ACK_BAD_REQUEST ? ": bad request, or a server without pipeline mode" : "");
		goto fail;
	}
	for (i = 0; i < W; i++) {
		if (netutil_send_full(fd, pattern_at(&pat, i * S), S) < 0) {
			set_err_sys("send warm-up request %llu", (unsigned long long)i);
			goto fail;
		}
		if (read_answer(fd, &pat, T, i, S, buf, &mismatch) < 0)
			goto fail;
	}
	t0 = now_ns();
	deadline = t0 + (uint64_t)(o->timeout * 1e9);
	for (i = W; i < T; i++) {
		if (now_ns() > deadline) {
			set_err("the burst did not finish within %g s: %llu of %llu requests written, no answer read yet",
				o->timeout, (unsigned long long)(i - W), (unsigned long long)o->count);
			goto fail;
		}
		if (netutil_send_full(fd, pattern_at(&pat, i * S), S) < 0) {
			set_err_sys("send request %llu of %llu (all requests before any answer; none read yet)",
				    (unsigned long long)(i - W), (unsigned long long)o->count);
			goto fail;
		}
	}
	t_sent = now_ns();
	for (i = W; i < T; i++) {
		if (now_ns() > deadline) {
			set_err("the burst did not finish within %g s: all %llu requests written, %llu answers read",
				o->timeout, (unsigned long long)o->count, (unsigned long long)(i - W));
			goto fail;
		}
		if (read_answer(fd, &pat, T, i, S, buf, &mismatch) < 0) {
			size_t k = strlen(ivcb_err);

			snprintf(ivcb_err + k, sizeof(ivcb_err) - k, " (%llu of %llu pipelined answers read)",
				 (unsigned long long)(i - W), (unsigned long long)o->count);
			goto fail;
		}
	}
	t1 = now_ns();
	n = read_full(fd, rb, REPORT_LEN);
	if (n < 0) {
		set_err_sys("receive the server's report");
		goto fail;
	}
	if (n < REPORT_LEN || report_decode(rb, &rep) < 0) {
		set_err("connection closed before the server's report");
		goto fail;
	}
	close(fd);
	answers_ok = mismatch == NO_MISMATCH;
	requests_ok = (rep.flags & REPORT_F_VERIFIED) && rep.bytes == T * S;
	{
		double secs = (double)(t1 - t0) / 1e9;

		json_begin(&j);
		json_str(&j, "tool", "ivcbench");
		json_str(&j, "mode", "pipeline");
		json_u64(&j, "msg_size", S);
		json_u64(&j, "count", o->count);
		json_u64(&j, "warmup", W);
		json_num(&j, "seconds", secs, 6);
		json_num(&j, "send_seconds", (double)(t_sent - t0) / 1e9, 6);
		json_num(&j, "pipeline_per_s", secs > 0 ? (double)o->count / secs : 0, 1);
		json_u64(&j, "bytes_sent", T * S);
		json_u64(&j, "bytes_received", T * S);
		json_u64(&j, "server_bytes_received", rep.bytes);
		json_bool(&j, "answers_verified", answers_ok);
		json_bool(&j, "requests_verified", requests_ok);
		json_i64(&j, "mismatch_offset", answers_ok ? -1 : (int64_t)mismatch);
		json_i64(&j, "server_mismatch_offset",
			 rep.mismatch == NO_MISMATCH ? -1 : (int64_t)rep.mismatch);
		json_bool(&j, "verified", answers_ok && requests_ok);
		json_emit(&j);
	}
	free(buf);
	pattern_free(&pat);
	return answers_ok && requests_ok ? EX_OK : EX_VERIFY;
fail:
	close(fd);
	free(buf);
	pattern_free(&pat);
	return json_error("pipeline", ivcb_err);
}
