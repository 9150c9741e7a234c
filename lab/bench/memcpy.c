// SPDX-License-Identifier: GPL-2.0-only
/*
 * ivcbench memcpy: the memory-copy reference for bulk throughput, inside one
 * guest, no network and no second party.
 *
 * What it measures, exactly: one memcpy per byte.  A stream of --bytes bytes
 * is "written" in pieces of --msg-size (a stream client's writes): each piece
 * is copied, with memcpy, from the source buffer (the pattern, as
 * `ivcbench stream` sends it: PATTERN_PERIOD + 256 KiB or more, so the source
 * cycles through ~1.25 MiB) to the next position of a ring buffer of
 * --ring-size bytes (1 MiB by default), wrapping at its end.  One CPU, one
 * copy, no synchronisation: a tunnel copies every byte twice (the sender into
 * the ring, the receiver out of it, on two CPUs) and waits for events, so
 * this is the ceiling of either side alone.  Both buffers are touched before
 * the clock starts (no page faults inside the time).  After the clock stops,
 * the ring must hold the stream's last min(bytes, ring) bytes ("verified").
 */
#include "ivcbench.h"
#include "pattern.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Copies [off, off+len) of the stream to its place in the ring (two memcpys where it wraps). */
static void to_ring(uint8_t *ring, uint64_t ring_size, const uint8_t *src, uint64_t off, size_t len)
{
	while (len) {
		size_t pos = (size_t)(off % ring_size);
		size_t n = len < ring_size - pos ? len : (size_t)(ring_size - pos);

		memcpy(ring + pos, src, n);
		src += n;
		off += n;
		len -= n;
	}
}

/* The ring holds the stream's last min(bytes, ring_size) bytes: NO_MISMATCH, or the first bad offset. */
static uint64_t ring_check(const struct pattern *p, const uint8_t *ring, uint64_t ring_size, uint64_t bytes)
{
	uint64_t off = bytes > ring_size ? bytes - ring_size : 0;

	while (off < bytes) {
		size_t pos = (size_t)(off % ring_size);
		uint64_t n = bytes - off < ring_size - pos ? bytes - off : ring_size - pos, m;

		if (n > p->window)
			n = p->window;
		m = pattern_check(p, off, ring + pos, (size_t)n);
		if (m != NO_MISMATCH)
			return m;
		off += n;
	}
	return NO_MISMATCH;
}

int cmd_memcpy(const struct opts *o)
{
	struct pattern pat;
	struct json j;
	uint8_t *ring;
	uint64_t off, t0, t1, mismatch;
	double secs;

	ring = malloc(o->ring_size);
	if (!ring || pattern_init(&pat, o->seed, pattern_window_for(o->msg_size)) < 0) {
		fprintf(stderr, "ivcbench: out of memory\n");
		free(ring);
		return EX_NET;
	}
	memset(ring, 0, o->ring_size);
	t0 = now_ns();
	for (off = 0; off < o->bytes;) {
		size_t len = o->bytes - off < o->msg_size ? (size_t)(o->bytes - off) : o->msg_size;

		to_ring(ring, o->ring_size, pattern_at(&pat, off), off, len);
		off += len;
	}
	t1 = now_ns();
	mismatch = ring_check(&pat, ring, o->ring_size, o->bytes);
	secs = (double)(t1 - t0) / 1e9;
	json_begin(&j);
	json_str(&j, "tool", "ivcbench");
	json_str(&j, "mode", "memcpy");
	json_u64(&j, "msg_size", o->msg_size);
	json_u64(&j, "ring_size", o->ring_size);
	json_u64(&j, "bytes", o->bytes);
	json_num(&j, "seconds", secs, 6);
	json_num(&j, "throughput_MBps", secs > 0 ? (double)o->bytes / secs / 1e6 : 0, 3);
	json_bool(&j, "verified", mismatch == NO_MISMATCH);
	json_i64(&j, "mismatch_offset", mismatch == NO_MISMATCH ? -1 : (int64_t)mismatch);
	json_emit(&j);
	free(ring);
	pattern_free(&pat);
	return mismatch == NO_MISMATCH ? EX_OK : EX_VERIFY;
}
