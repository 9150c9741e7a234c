// SPDX-License-Identifier: GPL-2.0-only
/* ivcbench rr: request/response latency, one outstanding request. */
#include "ivcbench.h"
#include "pattern.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One request/response at pattern offset off; returns 0, or -1 (error set). */
static int one_rr(int fd, const struct pattern *p, uint64_t off, uint32_t size,
		  uint8_t *buf, int *verified)
{
	ssize_t n;

	if (netutil_send_full(fd, pattern_at(p, off), size) < 0) {
		set_err_sys("send request");
		return -1;
	}
	n = read_full(fd, buf, size);
	if (n < 0) {
		set_err_sys("receive response");
		return -1;
	}
	if ((size_t)n < size) {
		set_err("connection closed by the server mid-response");
		return -1;
	}
	if (pattern_check(p, off, buf, size) != NO_MISMATCH)
		*verified = 0;
	return 0;
}

int rr_serve(int fd, const struct pattern *p, uint32_t msg_size,
	     uint64_t *count, int *verified)
{
	uint8_t *buf = malloc(msg_size);
	uint64_t off = 0;

	if (!buf) {
		set_err("out of memory");
		return -1;
	}
	*count = 0;
	for (;;) {
		ssize_t n = read_full(fd, buf, msg_size);

		if (n == 0)
			break; /* clean end between requests */
		if (n < 0 || (size_t)n < msg_size) {
			if (n < 0)
				set_err_sys("receive request %llu",
					    (unsigned long long)*count);
			else
				set_err("connection closed mid-request");
			free(buf);
			return -1;
		}
		if (pattern_check(p, off, buf, msg_size) != NO_MISMATCH)
			*verified = 0;
		if (netutil_send_full(fd, buf, msg_size) < 0) {
			set_err_sys("send response");
			free(buf);
			return -1;
		}
		off += msg_size;
		(*count)++;
	}
	free(buf);
	return 0;
}

int cmd_rr(const struct opts *o)
{
	struct pattern pat;
	struct lat l = { 0 };
	struct hdr h = { 0 };
	struct json j;
	uint8_t hb[HDR_LEN], ab[ACK_LEN], *buf;
	uint64_t off = 0, i, t0, t1, deadline = 0;
	int fd, st, verified = 1;
	ssize_t n;

	buf = malloc(o->msg_size);
	if (!buf || pattern_init(&pat, o->seed, pattern_window_for(o->msg_size)) < 0) {
		fprintf(stderr, "ivcbench: out of memory\n");
		return EX_NET;
	}
	if (o->count && lat_reserve(&l, o->count) < 0) {
		fprintf(stderr, "ivcbench: out of memory\n");
		return EX_NET;
	}
	fd = net_connect(o->host, o->port, o->connect_timeout, o->timeout, 1);
	if (fd < 0)
		return json_error("rr", ivcb_err);
	h.version = IVCB_PROTOCOL;
	h.mode = MODE_RR;
	h.direction = DIR_SEND;
	h.msg_size = o->msg_size;
	h.total = o->count ? o->count + o->warmup : 0;
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
		set_err("server rejected the request (status %d)", st);
		goto fail;
	}
	for (i = 0; i < o->warmup; i++, off += o->msg_size)
		if (one_rr(fd, &pat, off, o->msg_size, buf, &verified) < 0)
			goto fail;
	t0 = now_ns();
	if (!o->count)
		deadline = t0 + (uint64_t)(o->seconds * 1e9);
	for (;;) {
		uint64_t a, b;

		if (o->count ? l.n >= o->count : l.n >= RR_COUNT_MAX)
			break;
		a = now_ns();
		if (!o->count && a >= deadline)
			break;
		if (one_rr(fd, &pat, off, o->msg_size, buf, &verified) < 0)
			goto fail;
		b = now_ns();
		off += o->msg_size;
		if (lat_add(&l, b - a) < 0) {
			set_err("out of memory for latency samples");
			goto fail;
		}
	}
	t1 = now_ns();
	close(fd);
	lat_sort(&l);
	{
		double secs = (double)(t1 - t0) / 1e9;

		json_begin(&j);
		json_str(&j, "tool", "ivcbench");
		json_str(&j, "mode", "rr");
		json_u64(&j, "msg_size", o->msg_size);
		json_u64(&j, "count", l.n);
		json_num(&j, "seconds", secs, 6);
		json_num(&j, "rr_per_s", secs > 0 ? (double)l.n / secs : 0, 1);
		lat_json(&j, &l, "latency_us");
		json_bool(&j, "verified", verified);
		json_emit(&j);
	}
	lat_free(&l);
	free(buf);
	pattern_free(&pat);
	return verified ? EX_OK : EX_VERIFY;
fail:
	close(fd);
	lat_free(&l);
	free(buf);
	pattern_free(&pat);
	return json_error("rr", ivcb_err);
}
