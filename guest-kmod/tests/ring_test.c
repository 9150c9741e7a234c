// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Host unit tests of ../ivc_ring.h, the tunnel's layout and channel protocol, layout version 3 (gen_num / size with
 * its seal bit / pend_read / wait_gen, channels filled by bytes, event suppression through rx_want / tx_want, and
 * version 3's detach: the receiver's position (rx_gen, rx_off), checked by the sender, which sends everything after
 * it again from its own record of the channels).
 *
 * The shared memory is simulated by a calloc'd struct ivc_ctrl and one buffer of exactly nr_channels * channel_size
 * bytes holding the data pages in order; every copy goes through ivc_chan_chunk() (page index, offset in page) so
 * the page math is what places the bytes, and AddressSanitizer catches any access past the data pages.
 *
 * Output: one line per test ("ok N - name" / "not ok N - name: detail"), then "ring: P passed, F failed".
 * Exit status is non-zero when a test failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../ivc_ring.h"

/* ---- minimal harness: CHECK* record the first failure of the current test and return from the function ---- */

static int t_failed;
static char t_detail[512];

static void t_fail(int line, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void t_fail(int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t_failed++)
		return;
	n = snprintf(t_detail, sizeof(t_detail), "line %d: ", line);
	va_start(ap, fmt);
	vsnprintf(t_detail + n, sizeof(t_detail) - (size_t)n, fmt, ap);
	va_end(ap);
}

#define CHECK(cond, ...)                                       \
	do {                                                   \
		if (!(cond)) {                                 \
			t_fail(__LINE__, __VA_ARGS__);         \
			return;                                \
		}                                              \
	} while (0)
#define CHECK_EQ(a, b)                                                                                   \
	do {                                                                                             \
		long long _a = (long long)(a), _b = (long long)(b);                                      \
		if (_a != _b) {                                                                          \
			t_fail(__LINE__, "%s == %lld, expected %s == %lld", #a, _a, #b, _b);             \
			return;                                                                          \
		}                                                                                        \
	} while (0)
/* after calling a helper that may have failed */
#define CHECK_OK()              \
	do {                    \
		if (t_failed)   \
			return; \
	} while (0)

/* ---- deterministic random numbers (xorshift64*) ---- */

struct rng {
	uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545F4914F6CDD1Dull;
}

/* uniform-ish in [lo, hi] */
static uint32_t rng_range(struct rng *r, uint32_t lo, uint32_t hi)
{
	return lo + (uint32_t)(rng_next(r) % ((uint64_t)hi - lo + 1));
}

/* byte i of the test stream: a multiplicative hash, so a skipped, repeated or misplaced chunk never matches */
static uint8_t pat(uint64_t i)
{
	return (uint8_t)((i * 0x9E3779B97F4A7C15ull) >> 56);
}

static void pat_fill(uint8_t *b, uint64_t from, uint32_t len)
{
	for (uint32_t k = 0; k < len; k++)
		b[k] = pat(from + k);
}

/* index of the first byte of b that is not the stream at `from`, or -1 */
static long pat_mismatch(const uint8_t *b, uint64_t from, uint32_t len)
{
	for (uint32_t k = 0; k < len; k++)
		if (b[k] != pat(from + k))
			return (long)k;
	return -1;
}

/* ---- the simulated tunnel ---- */

struct sim {
	struct ivc_ctrl *c;
	uint8_t *data; /* nr_data_pages pages, exactly */
	uint32_t n, cs, pages;
};

/* the allocations of live sims, freed by the runner after a test that returned early on a failure */
static struct {
	void *c, *data;
} live[16];

static void sim_new(struct sim *s, uint32_t n, uint32_t cs, uint32_t receivers)
{
	unsigned i;

	for (i = 0; i < 16 && live[i].c; i++)
		;
	if (i == 16) {
		fprintf(stderr, "ring_test: too many live sims\n");
		exit(2);
	}
	s->n = n;
	s->cs = cs;
	s->pages = ivc_data_pages(n, cs);
	s->c = calloc(1, sizeof(*s->c));
	s->data = malloc((size_t)s->pages * IVC_PAGE_SIZE);
	if (!s->c || !s->data) {
		perror("ring_test: calloc");
		exit(2);
	}
	live[i].c = s->c;
	live[i].data = s->data;
	memset(s->data, 0xA5, (size_t)s->pages * IVC_PAGE_SIZE);
	ivc_ctrl_init(s->c, n, cs, receivers);
}

static void sim_free(struct sim *s)
{
	for (unsigned i = 0; i < 16; i++)
		if (live[i].c == s->c)
			live[i].c = live[i].data = NULL;
	free(s->c);
	free(s->data);
	s->c = NULL;
	s->data = NULL;
}

/* copies len bytes to / from byte `off` of channel `chan`, page by page as the kernel does */
static void chan_copy(struct sim *s, uint32_t chan, uint32_t off, uint8_t *buf, uint32_t len, int to_chan)
{
	uint32_t page, po, k;

	CHECK(chan < s->n && off <= s->cs && len <= s->cs - off, "copy out of the channel: chan %u off %u len %u",
	      chan, off, len);
	while (len) {
		k = ivc_chan_chunk(s->cs, chan, off, len, &page, &po);
		CHECK(k >= 1 && k <= len && po + k <= IVC_PAGE_SIZE && page < s->pages,
		      "chunk chan %u off %u len %u -> page %u off %u k %u", chan, off, len, page, po, k);
		if (to_chan)
			memcpy(s->data + (size_t)page * IVC_PAGE_SIZE + po, buf, k);
		else
			memcpy(buf, s->data + (size_t)page * IVC_PAGE_SIZE + po, k);
		buf += k;
		off += k;
		len -= k;
	}
}

/* sender: fills the next channel with `len` bytes of the stream at *pos and publishes it; expects it free */

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define SEALED IVC_SIZE_SEALED

/*
 * sender: appends up to len bytes of the stream at *pos (room, copy, commit, channel after channel, as sendmsg does)
 * and returns how many fitted; checks what ivc_tx_room() and ivc_tx_commit() say on the way.
 */
static uint32_t send_try(struct sim *s, struct ivc_tx *tx, uint64_t *pos, uint32_t len)
{
	uint8_t *buf = malloc(len ? len : 1);
	uint32_t done = 0;

	if (!buf)
		exit(2);
	pat_fill(buf, *pos, len);
	while (done < len && !t_failed) {
		uint32_t chan = 99, off = 99, n, fill = tx->fill, idx = tx->idx;
		int64_t room = ivc_tx_room(tx, s->c, &chan, &off);
		int sealed;

		if (room < 0) {
			t_fail(__LINE__, "ivc_tx_room() = %lld", (long long)room);
			break;
		}
		if (room == 0)
			break;
		if (chan != idx || off != fill || off != tx->fill ||
		    IVC_READ(&s->c->chan[chan].gen_num) != tx->seq + 1 || room != (int64_t)(s->cs - off)) {
			t_fail(__LINE__, "ivc_tx_room: chan %u (idx %u) off %u (fill %u) room %lld gen %u (seq %u)", chan,
			       idx, off, tx->fill, (long long)room, s->c->chan[chan].gen_num, tx->seq);
			break;
		}
		n = MIN(len - done, (uint32_t)room);
		chan_copy(s, chan, off, buf + done, n, 1);
		if (t_failed)
			break;
		sealed = ivc_tx_commit(tx, s->c, n);
		if (sealed != (off + n == s->cs) ||
		    IVC_READ(&s->c->chan[chan].size) != ((off + n) | (off + n == s->cs ? SEALED : 0u)) ||
		    IVC_READ(&s->c->chan[chan].pend_read) == 0) {
			t_fail(__LINE__, "ivc_tx_commit(%u) at off %u = %d: size word %#x pend_read %u", n, off, sealed,
			       s->c->chan[chan].size, s->c->chan[chan].pend_read);
			break;
		}
		done += n;
	}
	free(buf);
	*pos += done;
	return done;
}

/* sender: appends exactly len bytes; there must be room for all of them */
static void send_bytes(struct sim *s, struct ivc_tx *tx, uint64_t *pos, uint32_t len)
{
	uint32_t done = send_try(s, tx, pos, len);

	CHECK_OK();
	CHECK(done == len, "only %u of %u bytes fitted", done, len);
}

/*
 * sender: one channel holding exactly len bytes (1..channel_size) of the stream, sealed (by the commit when full,
 * else by ivc_tx_seal): what one call published in layout version 1. Expects the channel free.
 */
static void send_chan(struct sim *s, struct ivc_tx *tx, uint64_t *pos, uint32_t len)
{
	uint32_t idx = tx->idx, seq = tx->seq;
	int r = ivc_tx_free(tx, s->c);

	CHECK(tx->fill == 0, "send_chan into a channel holding %u bytes", tx->fill);
	CHECK(r == 1, "ivc_tx_free() = %d before publishing gen %u, expected 1", r, tx->seq + 1);
	send_bytes(s, tx, pos, len);
	CHECK_OK();
	CHECK_EQ(ivc_tx_seal(tx, s->c), len < s->cs);
	CHECK_EQ(s->c->chan[idx].size, len | SEALED);
	CHECK_EQ(s->c->chan[idx].gen_num, seq + 1);
	CHECK_EQ(s->c->chan[idx].pend_read, s->c->nr_receivers);
	CHECK_EQ(tx->seq, seq + 1);
	CHECK_EQ(tx->idx, (idx + 1) % s->n);
	CHECK_EQ(tx->begun, 0);
}

/*
 * receiver: reads up to `max` bytes of the current channel and checks them against the stream at *pos.
 * *got: bytes read, 0 if nothing is ready; *freed: channels this receiver freed (consume, or released on the way).
 */
static void recv_some(struct sim *s, struct ivc_rx *rx, uint64_t *pos, uint32_t max, uint32_t *got, int *freed)
{
	uint8_t buf[4096];
	uint32_t size, off, chan, n, sealed = 7;
	int r;
	long bad;

	*got = 0;
	*freed = 0;
	r = ivc_rx_avail(rx, s->c, 0, &size, &sealed);
	*freed = (int)ivc_rx_take_freed(rx);
	CHECK(r >= 0, "ivc_rx_avail() = %d at wait_gen %u", r, rx->wait_gen);
	if (r == 0)
		return;
	CHECK(size >= 1 && size <= s->cs && sealed <= 1, "avail size %u sealed %u", size, sealed);
	n = size < max ? size : max;
	chan = ivc_rx_chan(rx, 0, &off);
	CHECK(chan == rx->idx && off == rx->off, "ivc_rx_chan: %u off %u", chan, off);
	CHECK(off + n <= s->cs, "read past the channel");
	for (uint32_t done = 0; done < n;) {
		uint32_t k = n - done < sizeof(buf) ? n - done : (uint32_t)sizeof(buf);

		chan_copy(s, chan, off + done, buf, k, 0);
		CHECK_OK();
		bad = pat_mismatch(buf, *pos + done, k);
		CHECK(bad < 0, "byte %" PRIu64 " of the stream: got 0x%02x expected 0x%02x (chan %u off %u)",
		      *pos + done + (uint64_t)bad, buf[bad], pat(*pos + done + (uint64_t)bad), chan, off + done);
		done += k;
	}
	r = ivc_rx_consume(rx, s->c, n);
	CHECK(r == (int)rx->freed && (r == 0 || (sealed && n == size)), "ivc_rx_consume = %d (sealed %u, %u of %u)", r,
	      sealed, n, size);
	*freed += (int)ivc_rx_take_freed(rx);
	*pos += n;
	*got = n;
}

/* reads the whole current channel in pieces of `step` bytes; expects it sealed with exactly `expect` bytes */
static void recv_chan(struct sim *s, struct ivc_rx *rx, uint64_t *pos, uint32_t expect, uint32_t step,
		      int *freed_out)
{
	uint32_t left = expect, got, size, sealed = 0;
	int freed = 0, r;

	r = ivc_rx_avail(rx, s->c, 0, &size, &sealed);
	CHECK_EQ(r, 1);
	CHECK_EQ(size, expect);
	CHECK_EQ(sealed, 1);
	while (left) {
		uint32_t gen = rx->wait_gen;

		recv_some(s, rx, pos, step, &got, &freed);
		CHECK_OK();
		CHECK(got == (step < left ? step : left), "read %u of %u left (step %u)", got, left, step);
		left -= got;
		if (left) {
			CHECK_EQ(freed, 0);
			CHECK_EQ(rx->wait_gen, gen);
			r = ivc_rx_peek(rx, s->c, 0, &size);
			CHECK_EQ(r, 1);
			CHECK_EQ(size, left);
		} else {
			CHECK_EQ(rx->wait_gen, gen + 1);
		}
	}
	if (freed_out)
		*freed_out = freed;
}

/* channels whose pend_read is 0 */
static uint32_t free_channels(struct sim *s)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < s->n; i++)
		n += IVC_READ(&s->c->chan[i].pend_read) == 0;
	return n;
}
/* ---- geometry ---- */

static void test_geometry_ok(void)
{
	for (uint32_t n = 0; n <= 17; n++)
		for (uint32_t cs = 0; cs <= (256u << 10) + 8192; cs += 2048) {
			int want = n >= 1 && n <= 16 && cs >= 4096 && cs <= (256u << 10) && cs % 4096 == 0;
			CHECK(ivc_geometry_ok(n, cs) == want, "ivc_geometry_ok(%u, %u) = %d", n, cs,
			      ivc_geometry_ok(n, cs));
		}
	CHECK_EQ(ivc_geometry_ok(1, 4096), 1);
	CHECK_EQ(ivc_geometry_ok(16, 256u << 10), 1);
	CHECK_EQ(ivc_geometry_ok(0, 4096), 0);
	CHECK_EQ(ivc_geometry_ok(17, 4096), 0);
	CHECK_EQ(ivc_geometry_ok(1, 0), 0);
	CHECK_EQ(ivc_geometry_ok(1, 4095), 0);
	CHECK_EQ(ivc_geometry_ok(1, 4097), 0);
	CHECK_EQ(ivc_geometry_ok(4, 6144), 0);
	CHECK_EQ(ivc_geometry_ok(4, 8191), 0);
	CHECK_EQ(ivc_geometry_ok(1, (256u << 10) + 4096), 0);
	CHECK_EQ(ivc_geometry_ok(1, (256u << 10) - 1), 0);
	CHECK_EQ(ivc_geometry_ok(UINT32_MAX, 4096), 0);
	CHECK_EQ(ivc_geometry_ok(1, UINT32_MAX), 0);
	CHECK_EQ(ivc_geometry_ok(1, 0x100000000ull - 4096), 0);
}

static void test_data_dir_pages(void)
{
	CHECK_EQ(IVC_DIR_ENTRIES, 1024);
	CHECK_EQ(IVC_MAX_DATA_PAGES, 1024);
	CHECK_EQ(IVC_MAX_DIR_PAGES, 1);
	CHECK_EQ(ivc_data_pages(1, 4096), 1);
	CHECK_EQ(ivc_data_pages(4, 4096), 4);
	CHECK_EQ(ivc_data_pages(3, 65536), 48);
	CHECK_EQ(ivc_data_pages(16, 256u << 10), 1024);
	CHECK_EQ(ivc_data_pages(16, 4096), 16);
	CHECK_EQ(ivc_data_pages(0, 4096), 0);
	CHECK_EQ(ivc_data_pages(5, 12288), 15);
	for (uint32_t n = 1; n <= 16; n++)
		for (uint32_t cs = 4096; cs <= (256u << 10); cs += 4096)
			CHECK(ivc_data_pages(n, cs) == n * cs / 4096, "ivc_data_pages(%u, %u)", n, cs);
	CHECK_EQ(ivc_dir_pages(0), 0);
	CHECK_EQ(ivc_dir_pages(1), 1);
	CHECK_EQ(ivc_dir_pages(1023), 1);
	CHECK_EQ(ivc_dir_pages(1024), 1);
	CHECK_EQ(ivc_dir_pages(1025), 2);
	CHECK_EQ(ivc_dir_pages(2048), 2);
	CHECK_EQ(ivc_dir_pages(2049), 3);
	CHECK_EQ(ivc_dir_pages(ivc_data_pages(16, 256u << 10)), IVC_MAX_DIR_PAGES);
}

static void test_chan_chunk(void)
{
	uint32_t page = 99, po = 99;

	/* exact values */
	CHECK_EQ(ivc_chan_chunk(4096, 0, 0, 4096, &page, &po), 4096);
	CHECK_EQ(page, 0);
	CHECK_EQ(po, 0);
	CHECK_EQ(ivc_chan_chunk(4096, 3, 0, 5000, &page, &po), 4096);
	CHECK_EQ(page, 3);
	CHECK_EQ(po, 0);
	CHECK_EQ(ivc_chan_chunk(4096, 3, 100, 10, &page, &po), 10);
	CHECK_EQ(page, 3);
	CHECK_EQ(po, 100);
	CHECK_EQ(ivc_chan_chunk(8192, 1, 4095, 10, &page, &po), 1);
	CHECK_EQ(page, 2);
	CHECK_EQ(po, 4095);
	CHECK_EQ(ivc_chan_chunk(8192, 1, 4096, 10, &page, &po), 10);
	CHECK_EQ(page, 3);
	CHECK_EQ(po, 0);
	CHECK_EQ(ivc_chan_chunk(12288, 2, 5000, 8000, &page, &po), 4096 - 904);
	CHECK_EQ(page, 7);
	CHECK_EQ(po, 904);
	CHECK_EQ(ivc_chan_chunk(65536, 2, 65535, 1, &page, &po), 1);
	CHECK_EQ(page, 47);
	CHECK_EQ(po, 4095);
	CHECK_EQ(ivc_chan_chunk(256u << 10, 15, (256u << 10) - 1, 1, &page, &po), 1);
	CHECK_EQ(page, 1023);
	CHECK_EQ(po, 4095);
	CHECK_EQ(ivc_chan_chunk(256u << 10, 15, (256u << 10) - 4096, 4096, &page, &po), 4096);
	CHECK_EQ(page, 1023);
	CHECK_EQ(po, 0);
	CHECK_EQ(ivc_chan_chunk(4096, 0, 7, 0, &page, &po), 0);

	/*
	 * Every channel of several geometries written through random chunk boundaries lands at
	 * chan * channel_size + off of the page-ordered buffer, and reads back the same.
	 */
	static const uint32_t sizes[] = { 4096, 8192, 12288, 65536, 256u << 10 };
	static const uint32_t counts[] = { 1, 3, 16 };
	struct rng r = { 0x1234567u };

	for (unsigned si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++)
		for (unsigned ci = 0; ci < sizeof(counts) / sizeof(counts[0]); ci++) {
			struct sim s;
			uint8_t *buf;
			uint32_t cs = sizes[si], n = counts[ci];

			sim_new(&s, n, cs, 1);
			buf = malloc(cs);
			for (uint32_t c = 0; c < n && !t_failed; c++) {
				uint32_t off = 0;

				pat_fill(buf, (uint64_t)c * 1000003u, cs);
				while (off < cs && !t_failed) {
					uint32_t len = rng_range(&r, 1, cs - off < 9000 ? cs - off : 9000);

					chan_copy(&s, c, off, buf + off, len, 1);
					off += len;
				}
			}
			for (uint32_t c = 0; c < n && !t_failed; c++) {
				long bad = pat_mismatch(s.data + (size_t)c * cs, (uint64_t)c * 1000003u, cs);

				if (bad >= 0)
					t_fail(__LINE__, "cs %u chan %u: byte %ld misplaced", cs, c, bad);
				memset(buf, 0, cs);
				chan_copy(&s, c, 0, buf, cs, 0);
				if (!t_failed && pat_mismatch(buf, (uint64_t)c * 1000003u, cs) >= 0)
					t_fail(__LINE__, "cs %u chan %u: read back differs", cs, c);
			}
			free(buf);
			sim_free(&s);
			CHECK_OK();
		}
}

/* ---- control page ---- */

static void test_ctrl_init_check(void)
{
	struct sim s;
	uint32_t r = 0;

	for (uint32_t n = 1; n <= 16; n++) {
		sim_new(&s, n, 8192, 2);
		CHECK_EQ(s.c->magic, IVC_MAGIC);
		CHECK_EQ(s.c->version, IVC_LAYOUT_VERSION);
		CHECK_EQ(s.c->nr_channels, n);
		CHECK_EQ(s.c->channel_size, 8192);
		CHECK_EQ(s.c->nr_data_pages, 2 * n);
		CHECK_EQ(s.c->nr_receivers, 2);
		CHECK_EQ(s.c->tx_flags, 0);
		CHECK_EQ(s.c->tx_want, 0);
		CHECK_EQ(s.c->rx_want, 0);
		CHECK_EQ(s.c->rx_state, 0);
		for (uint32_t c = 0; c < n; c++) {
			CHECK_EQ(s.c->chan[c].gen_num, (uint32_t)(c + 1 - n));
			CHECK_EQ(s.c->chan[c].size, 0);
			CHECK_EQ(s.c->chan[c].pend_read, 0);
		}
		for (uint32_t c = n; c < IVC_MAX_CHANNELS; c++)
			CHECK_EQ(s.c->chan[c].gen_num, 0);
		r = 0;
		CHECK_EQ(ivc_ctrl_check(s.c, n, 8192, &r), 0);
		CHECK_EQ(r, 2);
		sim_free(&s);
	}
	sim_new(&s, 16, 256u << 10, IVC_MAX_RECEIVERS);
	CHECK_EQ(ivc_ctrl_check(s.c, 16, 256u << 10, &r), 0);
	CHECK_EQ(r, IVC_MAX_RECEIVERS);
	sim_free(&s);
	CHECK_EQ(offsetof(struct ivc_ctrl, rx_state), 64);
	CHECK_EQ(offsetof(struct ivc_ctrl, chan), 128);
}

/*
 * Links: a tunnel that carried a connection, was parked with a reader that stopped part way and a peer that wrote
 * garbage over the whole control page, is reset and claimed: its control page is then exactly a new one's (with the
 * receiver's state left to the claim), and a second connection runs through it exactly, from generation 1.
 */
static void test_ctrl_reset_reuse(void)
{
	for (uint32_t n = 1; n <= 16; n += 5) {
		struct sim s, fresh;
		struct ivc_tx tx;
		struct ivc_rx rx;
		uint64_t spos = 0, rpos = 0;
		uint32_t got;
		int freed;

		sim_new(&s, n, 8192, 1);
		sim_new(&fresh, n, 8192, 1);
		ivc_tx_init(&tx, n, 8192, 1);
		ivc_rx_init(&rx, n, 8192, 1);
		for (uint32_t k = 0; k < n + 2 && ivc_tx_free(&tx, s.c) == 1; k++) {
			send_chan(&s, &tx, &spos, 8192);
			recv_some(&s, &rx, &rpos, 5000, &got, &freed);
		}
		CHECK_OK();
		s.c->rx_state = IVC_RX_PARKED;
		memset(s.c, 0x5A, offsetof(struct ivc_ctrl, rx_state)); /* a receiver may write the whole page */
		memset(&s.c->chan, 0xC3, sizeof(s.c->chan));
		s.c->rx_want = 77;
		s.c->rx_gen = 5;
		s.c->rx_off = 9;
		ivc_ctrl_reset(s.c, n, 8192, 1);
		CHECK_EQ(s.c->rx_state, IVC_RX_PARKED); /* the receiver's line is not the reset's */
		CHECK_EQ(s.c->rx_want, 77);
		s.c->rx_state = IVC_RX_NONE; /* the claim */
		ivc_ctrl_claimed(s.c);
		CHECK(!memcmp(s.c, fresh.c, sizeof(*s.c)), "n %u: a reset page differs from a new one", n);
		uint32_t r = 0;
		CHECK_EQ(ivc_ctrl_check(s.c, n, 8192, &r), 0);
		/* the second connection: a new sender and receiver state on the same pages */
		ivc_tx_init(&tx, n, 8192, 1);
		ivc_rx_init(&rx, n, 8192, 1);
		spos = rpos = 0;
		for (uint32_t k = 0; k < 3 * n; k++) {
			if (ivc_tx_free(&tx, s.c) == 1)
				send_chan(&s, &tx, &spos, 1 + (k * 977) % 8192);
			recv_some(&s, &rx, &rpos, 8192, &got, &freed);
			CHECK_OK();
		}
		do
			recv_some(&s, &rx, &rpos, 8192, &got, &freed);
		while (got);
		CHECK_OK();
		CHECK_EQ(rpos, spos);
		CHECK(spos > 0, "n %u: nothing sent", n);
		sim_free(&s);
		sim_free(&fresh);
	}
}

static void test_ctrl_check_bad(void)
{
	struct ivc_ctrl good, c;
	uint32_t r;

	memset(&good, 0, sizeof(good));
	ivc_ctrl_init(&good, 4, 8192, 1);
#define BAD(field, value, n, cs)                                                                        \
	do {                                                                                            \
		c = good;                                                                               \
		c.field = (value);                                                                      \
		r = 77;                                                                                 \
		CHECK(ivc_ctrl_check(&c, n, cs, &r) == -IVC_E_LAYOUT, "%s = %u accepted", #field,       \
		      (unsigned)(value));                                                               \
		CHECK(r == 77, "nr_receivers written on failure");                                      \
	} while (0)
	c = good;
	CHECK_EQ(ivc_ctrl_check(&c, 4, 8192, &r), 0);
	BAD(magic, IVC_MAGIC + 1, 4, 8192);
	BAD(magic, 0, 4, 8192);
	BAD(version, 0, 4, 8192);
	BAD(version, IVC_LAYOUT_VERSION - 1, 4, 8192);
	BAD(version, IVC_LAYOUT_VERSION + 1, 4, 8192);
	BAD(nr_channels, 3, 4, 8192);
	BAD(nr_channels, 5, 4, 8192);
	BAD(nr_channels, 0, 4, 8192);
	BAD(nr_channels, 17, 4, 8192);
	BAD(channel_size, 4096, 4, 8192);
	BAD(channel_size, 8193, 4, 8192);
	BAD(channel_size, 0, 4, 8192);
	BAD(nr_data_pages, 7, 4, 8192);
	BAD(nr_data_pages, 9, 4, 8192);
	BAD(nr_data_pages, 0, 4, 8192);
	BAD(nr_data_pages, UINT32_MAX, 4, 8192);
	BAD(nr_receivers, 0, 4, 8192);
	BAD(nr_receivers, IVC_MAX_RECEIVERS + 1, 4, 8192);
	BAD(nr_receivers, UINT32_MAX, 4, 8192);
	/* consistent among themselves but not the geometry the DEM carried */
	c = good;
	r = 77;
	CHECK_EQ(ivc_ctrl_check(&c, 2, 8192, &r), -IVC_E_LAYOUT);
	CHECK_EQ(ivc_ctrl_check(&c, 4, 4096, &r), -IVC_E_LAYOUT);
	CHECK_EQ(r, 77);
	/* a page that agrees with an impossible geometry is still refused */
	memset(&c, 0, sizeof(c));
	ivc_ctrl_init(&c, 4, 6144, 1);
	CHECK_EQ(ivc_ctrl_check(&c, 4, 6144, &r), -IVC_E_LAYOUT);
	memset(&c, 0, sizeof(c));
	c.magic = IVC_MAGIC;
	c.version = IVC_LAYOUT_VERSION;
	c.nr_channels = 17;
	c.channel_size = 4096;
	c.nr_data_pages = 17;
	c.nr_receivers = 1;
	CHECK_EQ(ivc_ctrl_check(&c, 17, 4096, &r), -IVC_E_LAYOUT);
	CHECK_EQ(r, 77);
	/* boundaries that are fine */
	c = good;
	c.nr_receivers = IVC_MAX_RECEIVERS;
	CHECK_EQ(ivc_ctrl_check(&c, 4, 8192, &r), 0);
	CHECK_EQ(r, IVC_MAX_RECEIVERS);
#undef BAD
}

/* ---- one sender, one receiver ---- */

static void test_full_and_partial(void)
{
	static const uint32_t steps[] = { 1, 7, 4095, 4096, 4097, 65536 };
	static const uint32_t sizes[] = { 4096, 8192, 65536 };

	for (unsigned zi = 0; zi < 3; zi++) {
		uint32_t cs = sizes[zi];
		struct sim s;
		struct ivc_tx tx;
		struct ivc_rx rx;
		uint64_t spos = 0, rpos = 0;
		int freed;

		sim_new(&s, 4, cs, 1);
		ivc_tx_init(&tx, 4, cs, 1);
		ivc_rx_init(&rx, 4, cs, 1);
		for (unsigned k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
			uint32_t step = steps[k];
			uint32_t lens[3] = { cs, 1 + (step * 31u) % cs, cs - 1 };

			/* cs 4096 with step 1: 3 channels of up to 4 KiB read byte by byte is fine */
			for (int j = 0; j < 3; j++) {
				send_chan(&s, &tx, &spos, lens[j]);
				CHECK_OK();
			}
			for (int j = 0; j < 3; j++) {
				recv_chan(&s, &rx, &rpos, lens[j], step, &freed);
				CHECK_OK();
				CHECK_EQ(freed, 1);
			}
			CHECK_EQ(rpos, spos);
			CHECK_EQ(ivc_tx_in_flight(&tx, s.c), 0);
		}
		sim_free(&s);
	}
}

/* ivc_rx_ready_peek (poll, wait conditions, no lock): the same count as ivc_rx_ready, and it writes nothing */
static void test_ready_peek_readonly(void)
{
	struct sim s;
	struct ivc_tx tx;
	struct ivc_rx rx, before;
	struct ivc_ctrl *snap = malloc(sizeof(*snap));
	uint64_t spos = 0, rpos = 0;
	uint32_t got;
	int freed;

	sim_new(&s, 4, 8192, 1);
	ivc_tx_init(&tx, 4, 8192, 1);
	ivc_rx_init(&rx, 4, 8192, 1);
	CHECK_EQ(ivc_rx_ready_peek(&rx, s.c), 0);
	send_chan(&s, &tx, &spos, 100);
	send_chan(&s, &tx, &spos, 8192);
	send_chan(&s, &tx, &spos, 3);
	CHECK_OK();
	before = rx;
	memcpy(snap, s.c, sizeof(*snap));
	CHECK_EQ(ivc_rx_ready_peek(&rx, s.c), 100 + 8192 + 3);
	CHECK(!memcmp(&before, &rx, sizeof(rx)), "the peek changed the receiver's state");
	CHECK(!memcmp(snap, s.c, sizeof(*snap)), "the peek wrote to the control page");
	CHECK_EQ(ivc_rx_ready(&rx, s.c), 100 + 8192 + 3);
	recv_some(&s, &rx, &rpos, 40, &got, &freed);
	CHECK_OK();
	CHECK_EQ(ivc_rx_ready_peek(&rx, s.c), 60 + 8192 + 3);
	CHECK_EQ(ivc_rx_ready(&rx, s.c), 60 + 8192 + 3);
	/* the current channel read to its end and sealed, not yet released by its owner: ivc_rx_ready() would release
	 * it (pend_read 1 -> 0); the peek counts what follows and leaves it alone */
	rx.off = rx.size;
	before = rx;
	CHECK_EQ(ivc_rx_ready_peek(&rx, s.c), 8192 + 3);
	CHECK_EQ(s.c->chan[0].pend_read, 1);
	CHECK(!memcmp(&before, &rx, sizeof(rx)), "the peek changed the receiver's state");
	/* a broken header stops the count, without a write */
	s.c->chan[1].pend_read = 5;
	CHECK_EQ(ivc_rx_ready_peek(&rx, s.c), 0);
	free(snap);
	sim_free(&s);
}

/* ivc_rx_poll_news: a channel read to its end and then sealed is news for the owner, but not for poll */
static void test_poll_news_sealed_read(void)
{
	struct sim s;
	struct ivc_tx tx;
	struct ivc_rx rx;
	uint64_t spos = 0, rpos = 0;
	uint32_t got;
	int freed;

	sim_new(&s, 4, 8192, 1);
	ivc_tx_init(&tx, 4, 8192, 1);
	ivc_rx_init(&rx, 4, 8192, 1);
	CHECK_EQ(ivc_rx_poll_news(&rx, s.c), 0);
	send_bytes(&s, &tx, &spos, 100); /* published, not sealed */
	CHECK_OK();
	CHECK_EQ(ivc_rx_news(&rx, s.c), 1);
	CHECK_EQ(ivc_rx_poll_news(&rx, s.c), 1);
	recv_some(&s, &rx, &rpos, 100, &got, &freed);
	CHECK_OK();
	CHECK_EQ(got, 100);
	CHECK_EQ(ivc_rx_news(&rx, s.c), 0);
	CHECK_EQ(ivc_rx_poll_news(&rx, s.c), 0);
	/* the sender's shutdown seals the channel the reader has read to its end */
	CHECK_EQ(ivc_tx_seal(&tx, s.c), 1);
	CHECK_EQ(ivc_rx_news(&rx, s.c), 1);
	CHECK_EQ(ivc_rx_poll_news(&rx, s.c), 0);
	CHECK_EQ(ivc_rx_ready_peek(&rx, s.c), 0);
	/* bytes after it make the socket readable again */
	send_chan(&s, &tx, &spos, 10);
	CHECK_OK();
	CHECK_EQ(ivc_rx_poll_news(&rx, s.c), 1);
	/* the owner's look releases the empty sealed channel and counts what follows */
	CHECK_EQ(ivc_rx_ready(&rx, s.c), 10);
	CHECK_EQ(ivc_rx_take_freed(&rx), 1);
	CHECK_EQ(s.c->chan[0].pend_read, 0);
	sim_free(&s);
}

static void test_ready_and_peek(void)
{
	struct sim s;
	struct ivc_tx tx;
	struct ivc_rx rx;
	uint64_t spos = 0, rpos = 0;
	uint32_t size, off, got, chan;
	int freed;

	sim_new(&s, 4, 8192, 1);
	ivc_tx_init(&tx, 4, 8192, 1);
	ivc_rx_init(&rx, 4, 8192, 1);
	CHECK_EQ(ivc_rx_ready(&rx, s.c), 0);
	for (uint32_t a = 0; a < 6; a++)
		CHECK_EQ(ivc_rx_peek(&rx, s.c, a, &size), 0);

	/* a channel begun (gen_num written, pend_read still 0) is not ready */
	CHECK_EQ(ivc_tx_free(&tx, s.c), 1);
	CHECK_EQ(ivc_tx_room(&tx, s.c, &chan, &off), 8192);
	CHECK_EQ(chan, 0);
	CHECK_EQ(off, 0);
	CHECK_EQ(tx.begun, 1);
	CHECK_EQ(s.c->chan[0].gen_num, 1);
	CHECK_EQ(s.c->chan[0].pend_read, 0);
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 0, &size), 0);
	CHECK_EQ(ivc_rx_ready(&rx, s.c), 0);
	CHECK_EQ(ivc_rx_news(&rx, s.c), 0);
	CHECK_EQ(ivc_tx_in_flight(&tx, s.c), 0);
	/* ... and room is idempotent until a commit */
	CHECK_EQ(ivc_tx_room(&tx, s.c, &chan, &off), 8192);
	CHECK_EQ(chan, 0);
	CHECK_EQ(off, 0);
	CHECK_EQ(tx.seq, 0);

	send_chan(&s, &tx, &spos, 100);
	CHECK_OK();
	CHECK_EQ(tx.seq, 1);
	CHECK_EQ(s.c->chan[0].pend_read, 1);
	CHECK_EQ(s.c->chan[0].size, 100 | SEALED);
	CHECK_EQ(ivc_rx_news(&rx, s.c), 1);
	CHECK_EQ(ivc_rx_ready(&rx, s.c), 100);
	send_chan(&s, &tx, &spos, 8192);
	CHECK_OK();
	send_chan(&s, &tx, &spos, 3);
	CHECK_OK();
	CHECK_EQ(ivc_rx_ready(&rx, s.c), 100 + 8192 + 3);
	CHECK_EQ(ivc_tx_in_flight(&tx, s.c), 3);

	/* peek ahead does not consume and does not make the channel current */
	size = 0;
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 2, &size), 1);
	CHECK_EQ(size, 3);
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 1, &size), 1);
	CHECK_EQ(size, 8192);
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 3, &size), 0);
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 4, &size), 0);
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 100, &size), 0);
	CHECK_EQ(rx.off, 0);
	CHECK_EQ(rx.wait_gen, 1);
	CHECK_EQ(rx.idx, 0);
	CHECK_EQ(s.c->chan[1].pend_read, 1);
	CHECK_EQ(ivc_rx_chan(&rx, 2, &off), 2);
	CHECK_EQ(off, 0);

	/* partial read of the current channel: ready counts what is left */
	recv_some(&s, &rx, &rpos, 40, &got, &freed);
	CHECK_OK();
	CHECK_EQ(got, 40);
	CHECK_EQ(freed, 0);
	CHECK_EQ(ivc_rx_ready(&rx, s.c), 60 + 8192 + 3);
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 0, &size), 1);
	CHECK_EQ(size, 60);
	CHECK_EQ(ivc_rx_chan(&rx, 0, &off), 0);
	CHECK_EQ(off, 40);
	CHECK_EQ(ivc_rx_chan(&rx, 1, &off), 1);
	CHECK_EQ(off, 0);
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 1, &size), 1);
	CHECK_EQ(size, 8192);
	CHECK_EQ(s.c->chan[0].pend_read, 1);
	CHECK_EQ(ivc_tx_in_flight(&tx, s.c), 3);

	recv_some(&s, &rx, &rpos, 1000, &got, &freed);
	CHECK_OK();
	CHECK_EQ(got, 60);
	CHECK_EQ(freed, 1);
	CHECK_EQ(s.c->chan[0].pend_read, 0);
	CHECK_EQ(rx.wait_gen, 2);
	CHECK_EQ(ivc_tx_in_flight(&tx, s.c), 2);
	CHECK_EQ(ivc_rx_ready(&rx, s.c), 8192 + 3);
	/* the consumed channel, ahead 3 now, holds the previous round: not ready, not a violation */
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 3, &size), 0);
	recv_chan(&s, &rx, &rpos, 8192, 4095, &freed);
	CHECK_OK();
	recv_chan(&s, &rx, &rpos, 3, 1, &freed);
	CHECK_OK();
	CHECK_EQ(freed, 1);
	CHECK_EQ(ivc_rx_ready(&rx, s.c), 0);
	CHECK_EQ(rpos, spos);
	sim_free(&s);
}

/* lengths of the channels in test_tx_busy: never 1, so a 1-byte read leaves the channel held */
static uint32_t busy_len(uint32_t i, uint32_t round)
{
	return 2 + (i * 977u + round * 13u) % 4095u;
}

static void test_tx_busy(void)
{
	for (uint32_t n = 1; n <= 16; n += (n < 4 ? 1 : 12)) {
		struct sim s;
		struct ivc_tx tx;
		struct ivc_rx rx;
		uint64_t spos = 0, rpos = 0;
		uint32_t got;
		int freed;

		sim_new(&s, n, 4096, 1);
		ivc_tx_init(&tx, n, 4096, 1);
		ivc_rx_init(&rx, n, 4096, 1);
		for (uint32_t round = 0; round < 3; round++) {
			CHECK_EQ(ivc_tx_in_flight(&tx, s.c), 0);
			for (uint32_t i = 0; i < n; i++) {
				CHECK_EQ(ivc_tx_in_flight(&tx, s.c), i);
				CHECK_EQ(ivc_tx_free(&tx, s.c), 1);
				send_chan(&s, &tx, &spos, busy_len(i, round));
				CHECK_OK();
			}
			/* all channels full */
			CHECK_EQ(ivc_tx_in_flight(&tx, s.c), n);
			CHECK_EQ(tx.idx, 0);
			CHECK_EQ(ivc_tx_free(&tx, s.c), 0);
			CHECK_EQ(ivc_tx_writable(&tx, s.c), 0);
			{
				uint32_t chan = 99, off = 99;

				CHECK_EQ(ivc_tx_room(&tx, s.c, &chan, &off), 0);
				CHECK_EQ(tx.begun, 0);
				CHECK_EQ(s.c->chan[0].gen_num, tx.seq + 1 - n);
			}
			/* a partial read does not free the channel the sender waits for */
			recv_some(&s, &rx, &rpos, 1, &got, &freed);
			CHECK_OK();
			CHECK_EQ(got, 1);
			CHECK_EQ(freed, 0);
			CHECK_EQ(ivc_tx_free(&tx, s.c), 0);
			CHECK_EQ(ivc_tx_in_flight(&tx, s.c), n);
			recv_some(&s, &rx, &rpos, 1u << 20, &got, &freed);
			CHECK_OK();
			CHECK_EQ(got, busy_len(0, round) - 1);
			CHECK_EQ(freed, 1);
			CHECK_EQ(ivc_tx_in_flight(&tx, s.c), n - 1);
			CHECK_EQ(ivc_tx_free(&tx, s.c), 1);
			CHECK_EQ(ivc_tx_writable(&tx, s.c), 1);
			/* drain the rest: the in-flight count drops one by one */
			for (uint32_t i = 1; i < n; i++) {
				recv_chan(&s, &rx, &rpos, busy_len(i, round), 4096, &freed);
				CHECK_OK();
				CHECK_EQ(freed, 1);
				CHECK_EQ(ivc_tx_in_flight(&tx, s.c), n - 1 - i);
			}
			CHECK_EQ(rpos, spos);
		}
		sim_free(&s);
	}
}

/* ---- gen_num wrap ---- */

/* sets up both sides as if `last` had been the last generation published and consumed, as ivc_ctrl_init does */
static void start_at(struct sim *s, struct ivc_tx *tx, struct ivc_rx *rx, uint32_t last)
{
	ivc_tx_init(tx, s->n, s->cs, s->c->nr_receivers);
	tx->seq = last;
	if (rx)
		ivc_rx_init(rx, s->n, s->cs, s->c->nr_receivers);
	if (rx)
		rx->wait_gen = last + 1;
	for (uint32_t c = 0; c < s->n; c++)
		s->c->chan[c].gen_num = last + 1 + c - s->n;
}

static void wrap_run(uint32_t n)
{
	struct sim s;
	struct ivc_tx tx;
	struct ivc_rx rx;
	uint64_t spos = 0, rpos = 0;
	struct rng r = { 0xC0FFEEu + n };
	uint32_t start = 0xFFFFFFFFu - 1500, chans = 4000, published = 0, consumed = 0;
	uint32_t size, got;
	int freed;

	sim_new(&s, n, 4096, 1);
	start_at(&s, &tx, &rx, start);
	CHECK_EQ(ivc_rx_ready(&rx, s.c), 0);
	while (consumed < chans) {
		/* the sender runs ahead a random number of channels (as many as are free) */
		uint32_t burst = rng_range(&r, 0, n);

		while (burst-- && published < chans && ivc_tx_free(&tx, s.c) == 1) {
			uint32_t idx = tx.idx;

			send_chan(&s, &tx, &spos, rng_range(&r, 1, 4096));
			CHECK_OK();
			CHECK_EQ(s.c->chan[idx].gen_num, tx.seq);
			CHECK_EQ(tx.seq, (uint32_t)(start + ++published));
		}
		CHECK(ivc_tx_in_flight(&tx, s.c) == published - consumed, "in flight %u, published %u consumed %u",
		      ivc_tx_in_flight(&tx, s.c), published, consumed);
		if (published - consumed == n)
			CHECK_EQ(ivc_tx_free(&tx, s.c), 0);
		/* the receiver takes a random number of reads of random sizes */
		for (uint32_t k = rng_range(&r, 0, 2 * n); k; k--) {
			recv_some(&s, &rx, &rpos, rng_range(&r, 1, 5000), &got, &freed);
			CHECK_OK();
			if (got == 0) {
				CHECK_EQ(published, consumed);
				CHECK_EQ(ivc_rx_peek(&rx, s.c, 0, &size), 0);
				break;
			}
			consumed += (uint32_t)freed;
		}
		CHECK_EQ(rx.wait_gen, (uint32_t)(start + 1 + consumed));
	}
	CHECK_EQ(rpos, spos);
	CHECK_EQ(tx.seq, (uint32_t)(start + chans));
	CHECK(tx.seq < start && rx.wait_gen < start, "did not cross the wrap: seq %u", tx.seq);
	sim_free(&s);
}

static void test_wrap_1(void) { wrap_run(1); }
static void test_wrap_3(void) { wrap_run(3); }
static void test_wrap_4(void) { wrap_run(4); }
static void test_wrap_16(void) { wrap_run(16); }

/* every wrap start point, for a few generations each side of it, all channel counts */
static void test_wrap_edges(void)
{
	for (uint32_t n = 1; n <= 16; n++)
		for (uint32_t d = 0; d < 2 * n + 2; d++) {
			struct sim s;
			struct ivc_tx tx;
			struct ivc_rx rx;
			uint64_t spos = 0, rpos = 0;
			uint32_t size;
			int freed;

			sim_new(&s, n, 4096, 1);
			start_at(&s, &tx, &rx, 0xFFFFFFFFu - d);
			for (uint32_t a = 0; a < n; a++)
				CHECK_EQ(ivc_rx_peek(&rx, s.c, a, &size), 0);
			for (uint32_t i = 0; i < 3 * n; i++) {
				send_chan(&s, &tx, &spos, 1 + i);
				CHECK_OK();
				recv_chan(&s, &rx, &rpos, 1 + i, 4096, &freed);
				CHECK_OK();
				CHECK_EQ(freed, 1);
			}
			CHECK_EQ(rx.wait_gen, (uint32_t)(0xFFFFFFFFu - d + 3 * n + 1));
			sim_free(&s);
		}
}

/* ---- several receivers ---- */

static void multi_run(uint32_t nrecv)
{
	struct sim s;
	struct ivc_tx tx;
	struct ivc_rx rx[3];
	uint64_t spos = 0, rpos[3] = { 0 };
	uint32_t consumed[3] = { 0 }, published = 0, freed_count = 0;
	struct rng r = { 0xABCDEFu * nrecv };
	const uint32_t n = 4, chans = 3000;
	uint32_t size;

	sim_new(&s, n, 8192, nrecv);
	CHECK_EQ(ivc_ctrl_check(s.c, n, 8192, &size), 0);
	CHECK_EQ(size, nrecv);
	start_at(&s, &tx, NULL, 0xFFFFFFFFu - 1000);
	for (uint32_t i = 0; i < nrecv; i++) {
		ivc_rx_init(&rx[i], n, 8192, nrecv);
		rx[i].wait_gen = tx.seq + 1;
	}
	/* the explicit case first: one channel, receivers finish in turn, only the last one frees it */
	send_chan(&s, &tx, &spos, 5000);
	CHECK_OK();
	published++;
	CHECK_EQ(s.c->chan[0].pend_read, nrecv);
	for (uint32_t i = 0; i < nrecv; i++) {
		int freed;

		CHECK_EQ(ivc_tx_in_flight(&tx, s.c), 1);
		recv_chan(&s, &rx[i], &rpos[i], 5000, 777, &freed);
		CHECK_OK();
		consumed[i]++;
		CHECK_EQ(freed, i == nrecv - 1);
		CHECK_EQ(s.c->chan[0].pend_read, nrecv - 1 - i);
		freed_count += (uint32_t)freed;
	}
	CHECK_EQ(ivc_tx_in_flight(&tx, s.c), 0);

	/* random: the sender fills what is free, receivers read at their own pace */
	while (freed_count < chans) {
		uint32_t slowest = UINT32_MAX;

		for (uint32_t burst = rng_range(&r, 0, n); burst && published < chans; burst--) {
			int fr = ivc_tx_free(&tx, s.c);

			for (uint32_t i = 0; i < nrecv; i++)
				slowest = consumed[i] < slowest ? consumed[i] : slowest;
			/* free exactly when every receiver consumed the channel n generations back */
			CHECK(fr == (published - slowest < n), "ivc_tx_free = %d, published %u, slowest receiver at %u",
			      fr, published, slowest);
			if (fr != 1)
				break;
			send_chan(&s, &tx, &spos, rng_range(&r, 1, 8192));
			CHECK_OK();
			published++;
		}
		{
			uint32_t i = rng_range(&r, 0, nrecv - 1), got;
			uint32_t idx = rx[i].idx, before = s.c->chan[idx].pend_read;
			int freed;

			for (uint32_t k = rng_range(&r, 1, 3); k; k--) {
				idx = rx[i].idx;
				before = s.c->chan[idx].pend_read;
				recv_some(&s, &rx[i], &rpos[i], rng_range(&r, 1, 9000), &got, &freed);
				CHECK_OK();
				if (!got)
					break;
				if (rx[i].idx != idx) { /* finished a channel */
					consumed[i]++;
					CHECK_EQ(s.c->chan[idx].pend_read, before - 1);
					CHECK_EQ(freed, before == 1);
					freed_count += (uint32_t)freed;
				} else {
					CHECK_EQ(freed, 0);
					CHECK_EQ(s.c->chan[idx].pend_read, before);
				}
			}
		}
		{
			uint32_t fastest = 0;

			slowest = UINT32_MAX;
			for (uint32_t i = 0; i < nrecv; i++) {
				slowest = consumed[i] < slowest ? consumed[i] : slowest;
				fastest = consumed[i] > fastest ? consumed[i] : fastest;
			}
			CHECK_EQ(freed_count, slowest);
			CHECK_EQ(ivc_tx_in_flight(&tx, s.c), published - slowest);
			CHECK(fastest - slowest <= n, "receivers %u apart", fastest - slowest);
		}
	}
	for (uint32_t i = 0; i < nrecv; i++)
		CHECK_EQ(rpos[i], spos);
	sim_free(&s);
}

static void test_multi_2(void) { multi_run(2); }
static void test_multi_3(void) { multi_run(3); }

/* ---- hostile header values ---- */

/* a tunnel with two channels published (gen wait_gen, wait_gen+1) and the receiver at the first one */
static void hostile_setup(struct sim *s, struct ivc_tx *tx, struct ivc_rx *rx, uint32_t nrecv)
{
	uint64_t spos = 0;

	sim_new(s, 4, 8192, nrecv);
	start_at(s, tx, rx, 0xFFFFFFF0u);
	send_chan(s, tx, &spos, 100);
	CHECK_OK();
	send_chan(s, tx, &spos, 200);
	CHECK_OK();
}

/* what a violation must not change: the receiver's position, what it freed, and every pend_read */
static int rx_same(const struct ivc_rx *a, const struct ivc_rx *b, const struct sim *s, const uint32_t *pr)
{
	for (uint32_t i = 0; i < s->n; i++)
		if (s->c->chan[i].pend_read != pr[i])
			return 0;
	return a->wait_gen == b->wait_gen && a->idx == b->idx && a->off == b->off && a->freed == b->freed &&
	       a->kicked == b->kicked && (!b->have || a->size == b->size);
}

/*
 * The receiver must give exactly `code` at `ahead` (every time it looks), consume and free nothing, and ivc_rx_ready
 * must agree. (A size violation may leave the channel marked published: gen_num and pend_read were fine.)
 */
static void expect_violation(struct sim *s, struct ivc_rx *rx, uint32_t ahead, int code)
{
	struct ivc_rx saved = *rx;
	uint32_t size = 12345, sealed = 7, pr[IVC_MAX_CHANNELS];
	int r;

	for (uint32_t i = 0; i < s->n; i++)
		pr[i] = s->c->chan[i].pend_read;
	r = ivc_rx_peek(rx, s->c, ahead, &size);
	CHECK(r == code, "ivc_rx_peek(ahead %u) = %d, expected %d", ahead, r, code);
	CHECK(rx_same(rx, &saved, s, pr), "receiver state changed by a violation");
	CHECK_EQ(size, 12345);
	r = ivc_rx_avail(rx, s->c, ahead, &size, &sealed);
	CHECK(r == code, "ivc_rx_avail(ahead %u) = %d, expected %d", ahead, r, code);
	CHECK_EQ(size, 12345);
	CHECK_EQ(sealed, 7);
	CHECK_EQ(ivc_rx_ready(rx, s->c), code);
	CHECK(rx_same(rx, &saved, s, pr), "receiver state changed by a violation");
	CHECK_EQ(ivc_rx_take_freed(rx), 0);
}

static void test_hostile_gen_back(void)
{
	struct sim s;
	struct ivc_tx tx;
	struct ivc_rx rx;
	uint32_t w, size;
	static const uint32_t back[] = { 1, 2, 3, 5, 8, 0x7FFFFFFFu, 0x80000000u };

	hostile_setup(&s, &tx, &rx, 1);
	CHECK_OK();
	w = rx.wait_gen;
	for (unsigned i = 0; i < sizeof(back) / sizeof(back[0]); i++) {
		/* wait_gen - 4 is the previous round (not written yet), not a violation */
		if (back[i] == 4)
			continue;
		s.c->chan[0].gen_num = w - back[i];
		expect_violation(&s, &rx, 0, -IVC_E_GEN);
		CHECK_OK();
	}
	s.c->chan[0].gen_num = w - 4;
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 0, &size), 0);
	CHECK_EQ(ivc_rx_ready(&rx, s.c), 0);
	s.c->chan[0].gen_num = w;
	/* the channel ahead rolled back */
	s.c->chan[1].gen_num = w + 1 - 5;
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 0, &size), 1);
	CHECK_EQ(size, 100);
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 1, &size), -IVC_E_GEN);
	CHECK_EQ(ivc_rx_ready(&rx, s.c), -IVC_E_GEN);
	s.c->chan[1].gen_num = w + 1 - 4;
	CHECK_EQ(ivc_rx_ready(&rx, s.c), 100);
	s.c->chan[1].gen_num = w + 1;
	CHECK_EQ(ivc_rx_ready(&rx, s.c), 300);
	sim_free(&s);

	/* one channel: wait_gen - 1 is the previous round, wait_gen - 2 is not */
	{
		struct ivc_tx t1;
		struct ivc_rx r1;

		sim_new(&s, 1, 4096, 1);
		start_at(&s, &t1, &r1, 41);
		CHECK_EQ(s.c->chan[0].gen_num, 41);
		CHECK_EQ(ivc_rx_peek(&r1, s.c, 0, &size), 0);
		s.c->chan[0].gen_num = 40;
		s.c->chan[0].pend_read = 1;
		s.c->chan[0].size = 10;
		expect_violation(&s, &r1, 0, -IVC_E_GEN);
		sim_free(&s);
	}
}

static void test_hostile_gen_ahead(void)
{
	struct sim s;
	struct ivc_tx tx;
	struct ivc_rx rx;
	uint32_t w;
	static const uint32_t fwd[] = { 1, 2, 3, 4, 5, 0x7FFFFFFFu, 0xFFFFFFFFu - 4 };

	hostile_setup(&s, &tx, &rx, 1);
	CHECK_OK();
	w = rx.wait_gen;
	for (unsigned i = 0; i < sizeof(fwd) / sizeof(fwd[0]); i++) {
		s.c->chan[0].gen_num = w + fwd[i];
		expect_violation(&s, &rx, 0, -IVC_E_GEN);
		CHECK_OK();
	}
	s.c->chan[0].gen_num = w;
	/* an unpublished channel ahead with a future gen_num (and pend_read 0) is still a violation */
	s.c->chan[2].gen_num = w + 2 + 4;
	CHECK_EQ(s.c->chan[2].pend_read, 0);
	CHECK_EQ(ivc_rx_ready(&rx, s.c), -IVC_E_GEN);
	sim_free(&s);
}

static void test_hostile_size(void)
{
	static const uint32_t bad[] = { 0, 8193, 8192 * 2, 0x80000000u, 0xFFFFFFFFu };
	struct sim s;
	struct ivc_tx tx;
	struct ivc_rx rx;
	uint32_t size;

	hostile_setup(&s, &tx, &rx, 1);
	CHECK_OK();
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s.c->chan[0].size = bad[i];
		expect_violation(&s, &rx, 0, -IVC_E_SIZE);
		CHECK_OK();
		s.c->chan[0].size = 100 | SEALED;
		s.c->chan[1].size = bad[i];
		CHECK_EQ(ivc_rx_peek(&rx, s.c, 1, &size), -IVC_E_SIZE);
		CHECK_EQ(rx.wait_gen, 0xFFFFFFF1u);
		s.c->chan[1].size = 200 | SEALED;
	}
	/* the boundaries that are fine: 1 and channel_size, sealed or not */
	s.c->chan[1].size = 8192;
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 1, &size), 1);
	CHECK_EQ(size, 8192);
	s.c->chan[1].size = 8192 | SEALED;
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 1, &size), 1);
	CHECK_EQ(size, 8192);
	s.c->chan[0].size = 1 | SEALED;
	CHECK_EQ(ivc_rx_ready(&rx, s.c), 1 + 8192);
	sim_free(&s);
}

static void test_hostile_pend_read_rx(void)
{
	for (uint32_t nrecv = 1; nrecv <= 3; nrecv++) {
		struct sim s;
		struct ivc_tx tx;
		struct ivc_rx rx;
		uint32_t size;

		hostile_setup(&s, &tx, &rx, nrecv);
		CHECK_OK();
		CHECK_EQ(s.c->chan[0].pend_read, nrecv);
		s.c->chan[0].pend_read = nrecv + 1;
		expect_violation(&s, &rx, 0, -IVC_E_PEND_READ);
		CHECK_OK();
		s.c->chan[0].pend_read = 0xFFFFFFFFu;
		expect_violation(&s, &rx, 0, -IVC_E_PEND_READ);
		CHECK_OK();
		s.c->chan[0].pend_read = nrecv;
		s.c->chan[1].pend_read = IVC_MAX_RECEIVERS + 1;
		CHECK_EQ(ivc_rx_peek(&rx, s.c, 1, &size), -IVC_E_PEND_READ);
		CHECK_EQ(ivc_rx_ready(&rx, s.c), -IVC_E_PEND_READ);
		s.c->chan[1].pend_read = 1; /* fewer than nrecv is legal: other receivers already read it */
		CHECK_EQ(ivc_rx_ready(&rx, s.c), 300);
		/* a previous-round channel's pend_read is not looked at */
		s.c->chan[2].pend_read = 0xFFFFFFFFu;
		CHECK_EQ(ivc_rx_ready(&rx, s.c), 300);
		sim_free(&s);
	}
}

static void test_hostile_pend_read_tx(void)
{
	for (uint32_t nrecv = 1; nrecv <= 3; nrecv++) {
		struct sim s;
		struct ivc_tx tx;
		struct ivc_rx rx;

		hostile_setup(&s, &tx, &rx, nrecv);
		CHECK_OK();
		CHECK_EQ(tx.idx, 2);
		CHECK_EQ(ivc_tx_free(&tx, s.c), 1);
		s.c->chan[2].pend_read = nrecv + 1;
		CHECK_EQ(ivc_tx_free(&tx, s.c), -IVC_E_PEND_READ);
		s.c->chan[2].pend_read = 0xFFFFFFFFu; /* a receiver decremented a free channel */
		CHECK_EQ(ivc_tx_free(&tx, s.c), -IVC_E_PEND_READ);
		s.c->chan[2].pend_read = nrecv;
		CHECK_EQ(ivc_tx_free(&tx, s.c), 0);
		s.c->chan[2].pend_read = 0;
		CHECK_EQ(ivc_tx_free(&tx, s.c), 1);
		sim_free(&s);
	}
}

static void test_hostile_flip(void)
{
	struct sim s;
	struct ivc_tx tx;
	struct ivc_rx rx;
	uint64_t rpos = 0;
	uint32_t size, got;
	int freed;

	hostile_setup(&s, &tx, &rx, 1);
	CHECK_OK();
	/* the current channel: bad at the first looks, then good: the last snapshot is the one used */
	s.c->chan[0].pend_read = 5;
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 0, &size), -IVC_E_PEND_READ);
	CHECK_EQ(rx.have, 0);
	s.c->chan[0].pend_read = 1;
	s.c->chan[0].gen_num ^= 0x100;
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 0, &size), -IVC_E_GEN);
	s.c->chan[0].gen_num ^= 0x100;
	CHECK_EQ(rx.have, 0);
	s.c->chan[0].size = 0;
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 0, &size), -IVC_E_SIZE);
	s.c->chan[0].size = 8193 | SEALED;
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 0, &size), -IVC_E_SIZE);
	CHECK_EQ(rx.sealed, 0);
	s.c->chan[0].size = 100 | SEALED;
	/* ahead > 0 is re-read every time: good then bad gives the violation, bad then good is fine */
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 1, &size), 1);
	CHECK_EQ(size, 200);
	s.c->chan[1].size = 8193;
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 1, &size), -IVC_E_SIZE);
	s.c->chan[1].size = 200 | SEALED;
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 1, &size), 1);
	s.c->chan[1].gen_num += 4;
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 1, &size), -IVC_E_GEN);
	s.c->chan[1].gen_num -= 4;
	s.c->chan[1].pend_read = 2;
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 1, &size), -IVC_E_PEND_READ);
	s.c->chan[1].pend_read = 1;
	CHECK_EQ(ivc_rx_ready(&rx, s.c), 300);
	CHECK_EQ(rx.have, 1);
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 0, &size), 1);
	CHECK_EQ(size, 100);
	/* once seen sealed, the current channel's size is the receiver's copy: a later flip cannot make it read more */
	s.c->chan[0].size = 0xFFFFFFFFu;
	s.c->chan[0].gen_num = 12345;
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 0, &size), 1);
	CHECK_EQ(size, 100);
	recv_some(&s, &rx, &rpos, 60, &got, &freed);
	CHECK_OK();
	CHECK_EQ(got, 60);
	s.c->chan[0].size = 8192;
	CHECK_EQ(ivc_rx_ready(&rx, s.c), 40 + 200);
	recv_some(&s, &rx, &rpos, 8192, &got, &freed);
	CHECK_OK();
	CHECK_EQ(got, 40);
	CHECK_EQ(freed, 1);
	sim_free(&s);
}


/* ---- layout version 2: channels fill by bytes ---- */

/* n x cs one-byte writes fit, exactly: room counts down in each channel, then there is none */
static void test_capacity_bytes(void)
{
	static const uint32_t geo[][2] = { { 1, 4096 }, { 4, 4096 }, { 16, 4096 }, { 3, 8192 }, { 2, 65536 } };

	for (unsigned g = 0; g < sizeof(geo) / sizeof(geo[0]); g++) {
		uint32_t n = geo[g][0], cs = geo[g][1], chan, off, total = n * cs, got;
		struct sim s;
		struct ivc_tx tx;
		struct ivc_rx rx;
		uint64_t spos = 0, rpos = 0;
		int freed;

		sim_new(&s, n, cs, 1);
		ivc_tx_init(&tx, n, cs, 1);
		ivc_rx_init(&rx, n, cs, 1);
		for (uint32_t i = 0; i < total; i++) {
			uint8_t b = pat(i);
			int64_t room = ivc_tx_room(&tx, s.c, &chan, &off);

			CHECK(room == (int64_t)(cs - i % cs) && chan == i / cs && off == i % cs,
			      "%u x %u: byte %u: room %lld at chan %u off %u", n, cs, i, (long long)room, chan, off);
			chan_copy(&s, chan, off, &b, 1, 1);
			CHECK_OK();
			CHECK_EQ(ivc_tx_commit(&tx, s.c, 1), i % cs == cs - 1);
		}
		CHECK_EQ(ivc_tx_room(&tx, s.c, &chan, &off), 0);
		CHECK_EQ(ivc_tx_room(&tx, s.c, &chan, &off), 0);
		CHECK_EQ(ivc_tx_writable(&tx, s.c), 0);
		CHECK_EQ(ivc_tx_in_flight(&tx, s.c), n);
		CHECK_EQ(tx.seq, n);
		for (uint32_t c = 0; c < n; c++) {
			CHECK_EQ(s.c->chan[c].size, cs | SEALED);
			CHECK_EQ(s.c->chan[c].pend_read, 1);
			CHECK_EQ(s.c->chan[c].gen_num, c + 1);
		}
		CHECK_EQ(ivc_rx_ready(&rx, s.c), total);
		/* a byte read does not make room: the channel is still held */
		recv_some(&s, &rx, &rpos, 1, &got, &freed);
		CHECK_OK();
		CHECK_EQ(freed, 0);
		CHECK_EQ(ivc_tx_room(&tx, s.c, &chan, &off), 0);
		recv_some(&s, &rx, &rpos, cs, &got, &freed);
		CHECK_OK();
		CHECK_EQ(got, cs - 1);
		CHECK_EQ(freed, 1);
		CHECK_EQ(ivc_tx_room(&tx, s.c, &chan, &off), cs);
		CHECK_EQ(chan, 0);
		CHECK_EQ(off, 0);
		spos = total;
		for (uint32_t i = 1; i < n; i++) {
			recv_chan(&s, &rx, &rpos, cs, cs, &freed);
			CHECK_OK();
		}
		CHECK_EQ(rpos, spos);
		CHECK_EQ(ivc_tx_room(&tx, s.c, &chan, &off), cs);
		/* n x cs bytes in one write fill the tunnel exactly as well */
		CHECK_EQ(send_try(&s, &tx, &spos, total + 1), total);
		CHECK_OK();
		CHECK_EQ(ivc_tx_in_flight(&tx, s.c), n);
		CHECK_EQ(ivc_rx_ready(&rx, s.c), total);
		sim_free(&s);
	}
}

/* consecutive small writes share one channel: one publication, one look of the receiver sees them all */
static void test_packing(void)
{
	struct sim s;
	struct ivc_tx tx;
	struct ivc_rx rx;
	uint64_t spos = 0, rpos = 0;
	uint32_t size, sealed, off, got;
	int freed;

	sim_new(&s, 4, 4096, 1);
	ivc_tx_init(&tx, 4, 4096, 1);
	ivc_rx_init(&rx, 4, 4096, 1);
	for (int i = 0; i < 100; i++) {
		send_bytes(&s, &tx, &spos, 10);
		CHECK_OK();
		CHECK_EQ(s.c->chan[0].size, 10 * (i + 1));
		CHECK_EQ(s.c->chan[0].pend_read, 1);
		CHECK_EQ(ivc_tx_in_flight(&tx, s.c), 1);
		CHECK_EQ(tx.idx, 0);
		CHECK_EQ(tx.seq, 0);
	}
	for (uint32_t c = 1; c < 4; c++) { /* the other channels were not touched */
		CHECK_EQ(s.c->chan[c].gen_num, c - 3);
		CHECK_EQ(s.c->chan[c].pend_read, 0);
		CHECK_EQ(s.c->chan[c].size, 0);
	}
	CHECK_EQ(ivc_rx_avail(&rx, s.c, 0, &size, &sealed), 1);
	CHECK_EQ(size, 1000);
	CHECK_EQ(sealed, 0);
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 1, &size), 0);
	CHECK_EQ(ivc_rx_ready(&rx, s.c), 1000);
	CHECK_EQ(ivc_rx_chan(&rx, 0, &off), 0);
	CHECK_EQ(off, 0);
	recv_some(&s, &rx, &rpos, 4096, &got, &freed);
	CHECK_OK();
	CHECK_EQ(got, 1000);
	CHECK_EQ(freed, 0);
	/* an open channel read to its end stays held, and current */
	CHECK_EQ(s.c->chan[0].pend_read, 1);
	CHECK_EQ(rx.wait_gen, 1);
	CHECK_EQ(ivc_rx_news(&rx, s.c), 0);
	CHECK_EQ(ivc_rx_ready(&rx, s.c), 0);
	/* more small writes: the receiver sees them in the same channel, after what it read */
	send_bytes(&s, &tx, &spos, 1);
	CHECK_OK();
	CHECK_EQ(ivc_rx_news(&rx, s.c), 1);
	CHECK_EQ(ivc_rx_avail(&rx, s.c, 0, &size, &sealed), 1);
	CHECK_EQ(size, 1);
	CHECK_EQ(ivc_rx_chan(&rx, 0, &off), 0);
	CHECK_EQ(off, 1000);
	/* a write across the end: the channel is sealed full, the rest opens the next */
	for (int i = 0; i < 309; i++) {
		send_bytes(&s, &tx, &spos, 10);
		CHECK_OK();
	}
	send_bytes(&s, &tx, &spos, 3000);
	CHECK_OK();
	CHECK_EQ(spos, 1000 + 1 + 3090 + 3000);
	CHECK_EQ(s.c->chan[0].size, 4096 | SEALED);
	CHECK_EQ(s.c->chan[1].size, 7091 - 4096);
	CHECK_EQ(s.c->chan[1].pend_read, 1);
	CHECK_EQ(ivc_tx_in_flight(&tx, s.c), 2);
	CHECK_EQ(ivc_rx_ready(&rx, s.c), 7091 - 1000);
	recv_some(&s, &rx, &rpos, 8192, &got, &freed);
	CHECK_OK();
	CHECK_EQ(got, 4096 - 1000);
	CHECK_EQ(freed, 1);
	recv_some(&s, &rx, &rpos, 8192, &got, &freed);
	CHECK_OK();
	CHECK_EQ(got, 7091 - 4096);
	CHECK_EQ(freed, 0);
	CHECK_EQ(rpos, spos);
	sim_free(&s);
}

/* a reader in the open channel while the sender keeps appending, byte-exact, over many channels */
static void test_read_while_appending(void)
{
	static const uint32_t geo[][2] = { { 1, 4096 }, { 3, 4096 }, { 2, 8192 }, { 16, 4096 } };

	for (unsigned g = 0; g < sizeof(geo) / sizeof(geo[0]); g++) {
		uint32_t n = geo[g][0], cs = geo[g][1], got, shared = 0;
		struct sim s;
		struct ivc_tx tx;
		struct ivc_rx rx;
		uint64_t spos = 0, rpos = 0;
		struct rng r = { 0xA99E4Du + g };
		int freed;

		sim_new(&s, n, cs, 1);
		ivc_tx_init(&tx, n, cs, 1);
		ivc_rx_init(&rx, n, cs, 1);
		int fast_reader = 0; /* phases: the tunnel fills up, then the reader catches up with the sender */

		while (rpos < 400000) {
			if (spos - rpos + 300 >= (uint64_t)n * cs)
				fast_reader = 1;
			else if (rpos == spos)
				fast_reader = 0;
			send_try(&s, &tx, &spos, rng_range(&r, 1, fast_reader || rng_range(&r, 0, 7) ? 300 : 3 * cs));
			CHECK_OK();
			for (uint32_t k = rng_range(&r, fast_reader, fast_reader ? 4 : 2); k; k--) {
				uint32_t idx = rx.idx;
				int same = tx.begun && tx.fill && tx.idx == idx;

				recv_some(&s, &rx, &rpos, rng_range(&r, 1, 500), &got, &freed);
				CHECK_OK();
				if (same) { /* reading where the sender writes: never freed, never past its fill */
					shared++;
					CHECK_EQ(freed, 0);
					CHECK_EQ(rx.idx, idx);
					CHECK(rx.off <= tx.fill, "read to %u, the sender is at %u", rx.off, tx.fill);
					CHECK_EQ(s.c->chan[idx].pend_read, 1);
				}
			}
			CHECK(spos - rpos <= (uint64_t)n * cs, "%" PRIu64 " bytes in flight", spos - rpos);
		}
		CHECK(shared > 50, "%u x %u: the reader was in the sender's channel only %u times", n, cs, shared);
		got = tx.fill != 0;
		CHECK_EQ(ivc_tx_seal(&tx, s.c), got);
		while (rpos < spos) {
			recv_some(&s, &rx, &rpos, rng_range(&r, 1, cs), &got, &freed);
			CHECK_OK();
			CHECK(got, "stuck at %" PRIu64 " of %" PRIu64, rpos, spos);
		}
		CHECK_EQ(ivc_rx_ready(&rx, s.c), 0);
		CHECK_EQ(ivc_tx_in_flight(&tx, s.c), 0);
		sim_free(&s);
	}
}

/* ivc_tx_seal of a partial channel; of a begun, empty one (gen_num reverts); ivc_tx_abort; a late seal */
static void test_seal(void)
{
	struct sim s;
	struct ivc_tx tx;
	struct ivc_rx rx;
	uint64_t spos = 0, rpos = 0;
	uint32_t chan, off, size, sealed, got;
	int freed;

	sim_new(&s, 4, 8192, 1);
	ivc_tx_init(&tx, 4, 8192, 1);
	ivc_rx_init(&rx, 4, 8192, 1);
	CHECK_EQ(ivc_tx_seal(&tx, s.c), 0); /* nothing begun */
	CHECK_EQ(tx.seq, 0);
	send_bytes(&s, &tx, &spos, 100);
	CHECK_OK();
	CHECK_EQ(s.c->chan[0].size, 100);
	CHECK_EQ(ivc_tx_seal(&tx, s.c), 1);
	CHECK_EQ(s.c->chan[0].size, 100 | SEALED);
	CHECK_EQ(tx.seq, 1);
	CHECK_EQ(tx.idx, 1);
	CHECK_EQ(tx.begun, 0);
	CHECK_EQ(ivc_tx_seal(&tx, s.c), 0);
	CHECK_EQ(tx.seq, 1);
	recv_chan(&s, &rx, &rpos, 100, 7, &freed);
	CHECK_OK();
	CHECK_EQ(freed, 1);

	/* begun, nothing committed: the seal puts the previous round's gen_num back and publishes nothing */
	CHECK_EQ(ivc_tx_room(&tx, s.c, &chan, &off), 8192);
	CHECK_EQ(chan, 1);
	CHECK_EQ(s.c->chan[1].gen_num, 2);
	CHECK_EQ(ivc_tx_seal(&tx, s.c), 0);
	CHECK_EQ(s.c->chan[1].gen_num, (uint32_t)(2 - 4));
	CHECK_EQ(s.c->chan[1].pend_read, 0);
	CHECK_EQ(tx.begun, 0);
	CHECK_EQ(tx.seq, 1);
	CHECK_EQ(tx.idx, 1);
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 0, &size), 0);
	CHECK_EQ(ivc_rx_news(&rx, s.c), 0);
	/* the same with ivc_tx_abort (a fault before any byte was copied) */
	CHECK_EQ(ivc_tx_room(&tx, s.c, &chan, &off), 8192);
	CHECK_EQ(s.c->chan[1].gen_num, 2);
	ivc_tx_abort(&tx, s.c);
	CHECK_EQ(s.c->chan[1].gen_num, (uint32_t)(2 - 4));
	CHECK_EQ(tx.begun, 0);
	CHECK_EQ(ivc_rx_ready(&rx, s.c), 0);
	/* abort after a commit changes nothing: the bytes are published */
	send_bytes(&s, &tx, &spos, 5);
	CHECK_OK();
	ivc_tx_abort(&tx, s.c);
	CHECK_EQ(tx.begun, 1);
	CHECK_EQ(tx.fill, 5);
	CHECK_EQ(s.c->chan[1].gen_num, 2);
	CHECK_EQ(s.c->chan[1].size, 5);

	/* the receiver read everything of the open channel; the sender seals it later; it is freed on the next look */
	recv_some(&s, &rx, &rpos, 100, &got, &freed);
	CHECK_OK();
	CHECK_EQ(got, 5);
	CHECK_EQ(freed, 0);
	CHECK_EQ(s.c->chan[1].pend_read, 1);
	CHECK_EQ(ivc_rx_news(&rx, s.c), 0);
	CHECK_EQ(ivc_tx_seal(&tx, s.c), 1);
	CHECK_EQ(s.c->chan[1].size, 5 | SEALED);
	CHECK_EQ(ivc_rx_news(&rx, s.c), 1);
	CHECK_EQ(ivc_rx_avail(&rx, s.c, 0, &size, &sealed), 0);
	CHECK_EQ(ivc_rx_take_freed(&rx), 1);
	CHECK_EQ(ivc_rx_take_freed(&rx), 0);
	CHECK_EQ(s.c->chan[1].pend_read, 0);
	CHECK_EQ(rx.wait_gen, 3);
	CHECK_EQ(ivc_tx_in_flight(&tx, s.c), 0);
	CHECK_EQ(ivc_rx_news(&rx, s.c), 0);
	/* the same when the next channel already has data: the look frees one and reports the other */
	send_bytes(&s, &tx, &spos, 30);
	CHECK_OK();
	recv_some(&s, &rx, &rpos, 30, &got, &freed);
	CHECK_OK();
	CHECK_EQ(got, 30);
	CHECK_EQ(ivc_tx_seal(&tx, s.c), 1);
	send_bytes(&s, &tx, &spos, 8192 + 10);
	CHECK_OK();
	CHECK_EQ(ivc_tx_in_flight(&tx, s.c), 3);
	CHECK_EQ(ivc_rx_ready(&rx, s.c), 8192 + 10);
	CHECK_EQ(ivc_rx_take_freed(&rx), 1);
	CHECK_EQ(ivc_tx_in_flight(&tx, s.c), 2);
	CHECK_EQ(ivc_rx_avail(&rx, s.c, 0, &size, &sealed), 1);
	CHECK_EQ(size, 8192);
	CHECK_EQ(sealed, 1);
	CHECK_EQ(ivc_rx_avail(&rx, s.c, 1, &size, &sealed), 1);
	CHECK_EQ(size, 10);
	CHECK_EQ(sealed, 0);
	recv_chan(&s, &rx, &rpos, 8192, 5000, &freed);
	CHECK_OK();
	CHECK_EQ(freed, 1);
	recv_some(&s, &rx, &rpos, 100, &got, &freed);
	CHECK_OK();
	CHECK_EQ(got, 10);
	CHECK_EQ(rpos, spos);
	sim_free(&s);
}

/* hostile size words of an open channel and of the seal */
static void test_hostile_open_size(void)
{
	struct sim s;
	struct ivc_tx tx;
	struct ivc_rx rx;
	uint64_t spos = 0, rpos = 0;
	uint32_t size, sealed, got, w;
	int freed;

	sim_new(&s, 4, 8192, 1);
	start_at(&s, &tx, &rx, 0x7FFFFFFEu);
	w = rx.wait_gen;
	send_bytes(&s, &tx, &spos, 100);
	CHECK_OK();
	CHECK_EQ(ivc_rx_avail(&rx, s.c, 0, &size, &sealed), 1);
	CHECK_EQ(size, 100);
	CHECK_EQ(sealed, 0);
	/* shrinking below what was seen, sealed or not */
	s.c->chan[0].size = 99;
	expect_violation(&s, &rx, 0, -IVC_E_SIZE);
	CHECK_OK();
	s.c->chan[0].size = 50 | SEALED;
	expect_violation(&s, &rx, 0, -IVC_E_SIZE);
	CHECK_OK();
	s.c->chan[0].size = 100;
	CHECK_EQ(ivc_rx_avail(&rx, s.c, 0, &size, &sealed), 1);
	CHECK_EQ(size, 100);
	recv_some(&s, &rx, &rpos, 60, &got, &freed);
	CHECK_OK();
	s.c->chan[0].size = 59;
	expect_violation(&s, &rx, 0, -IVC_E_SIZE);
	CHECK_OK();
	s.c->chan[0].size = 60;
	expect_violation(&s, &rx, 0, -IVC_E_SIZE);
	CHECK_OK();
	s.c->chan[0].size = 99 | SEALED;
	expect_violation(&s, &rx, 0, -IVC_E_SIZE);
	CHECK_OK();
	/* past the channel, with and without the seal; 0; a seal with 0 bytes */
	{
		static const uint32_t bad[] = { 8193, 8193 | SEALED, 16384, 16384 | SEALED, 0x7FFFFFFFu, 0xFFFFFFFFu,
						0, SEALED };

		for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			s.c->chan[0].size = bad[i];
			expect_violation(&s, &rx, 0, -IVC_E_SIZE);
			CHECK_OK();
		}
	}
	/* growing is fine: what is read is what the sender wrote */
	s.c->chan[0].size = 100;
	CHECK_EQ(ivc_rx_ready(&rx, s.c), 40);
	send_bytes(&s, &tx, &spos, 50);
	CHECK_OK();
	CHECK_EQ(ivc_rx_ready(&rx, s.c), 90);
	/* a channel after an open one is not looked at, even if the peer published it */
	s.c->chan[1].gen_num = w + 1;
	s.c->chan[1].pend_read = 1;
	s.c->chan[1].size = 10 | SEALED;
	CHECK_EQ(ivc_rx_ready(&rx, s.c), 90);
	s.c->chan[1].gen_num = w + 1 - 4;
	s.c->chan[1].pend_read = 0;
	s.c->chan[1].size = 0;
	/* the next channel: published with size 0, or a seal of 0 bytes */
	CHECK_EQ(ivc_tx_seal(&tx, s.c), 1);
	s.c->chan[1].gen_num = w + 1;
	s.c->chan[1].pend_read = 1;
	s.c->chan[1].size = 0;
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 1, &size), -IVC_E_SIZE);
	CHECK_EQ(ivc_rx_ready(&rx, s.c), -IVC_E_SIZE);
	s.c->chan[1].size = SEALED;
	CHECK_EQ(ivc_rx_peek(&rx, s.c, 1, &size), -IVC_E_SIZE);
	recv_some(&s, &rx, &rpos, 1000, &got, &freed); /* the current channel is fine */
	CHECK_OK();
	CHECK_EQ(got, 90);
	CHECK_EQ(freed, 1);
	expect_violation(&s, &rx, 0, -IVC_E_SIZE);
	CHECK_OK();
	s.c->chan[1].size = 0;
	expect_violation(&s, &rx, 0, -IVC_E_SIZE);
	CHECK_OK();
	sim_free(&s);

	/* the largest channel: bit 18 is a size, bits 19..30 are garbage, with and without the seal */
	sim_new(&s, 2, 256u << 10, 1);
	ivc_tx_init(&tx, 2, 256u << 10, 1);
	ivc_rx_init(&rx, 2, 256u << 10, 1);
	spos = 0;
	send_bytes(&s, &tx, &spos, 100);
	CHECK_OK();
	for (uint32_t b = 19; b <= 30; b++) {
		s.c->chan[0].size = 100 | (1u << b);
		expect_violation(&s, &rx, 0, -IVC_E_SIZE);
		CHECK_OK();
		s.c->chan[0].size = 100 | (1u << b) | SEALED;
		expect_violation(&s, &rx, 0, -IVC_E_SIZE);
		CHECK_OK();
		s.c->chan[0].size = (256u << 10) | (1u << b);
		expect_violation(&s, &rx, 0, -IVC_E_SIZE);
		CHECK_OK();
	}
	s.c->chan[0].size = (256u << 10) + 1;
	expect_violation(&s, &rx, 0, -IVC_E_SIZE);
	CHECK_OK();
	s.c->chan[0].size = (256u << 10) | SEALED;
	CHECK_EQ(ivc_rx_avail(&rx, s.c, 0, &size, &sealed), 1);
	CHECK_EQ(size, 256u << 10);
	CHECK_EQ(sealed, 1);
	sim_free(&s);
}

/* ---- layout version 3: detach ---- */

/*
 * A tunnel for the detach tests: both sides, and what the test knows of the stream by itself (not from the header):
 * where each generation starts in it, at gstart[gen & 63] (only the last nr_channels + 1 generations are looked at).
 */
struct det {
	struct sim s;
	struct ivc_tx tx;
	struct ivc_rx rx;
	uint64_t spos, rpos; /* bytes written by the sender, consumed by the receiver */
	uint64_t gstart[64];
};

/* both sides as if `last` had been the last generation published and consumed (0: as ivc_ctrl_init leaves them) */
static void det_new(struct det *d, uint32_t n, uint32_t cs, uint32_t last)
{
	sim_new(&d->s, n, cs, 1);
	start_at(&d->s, &d->tx, &d->rx, last);
	d->spos = d->rpos = 0;
	memset(d->gstart, 0, sizeof(d->gstart));
}

/* a copy of the whole tunnel (shared pages too), to try several stops of the receiver from one state */
static void det_clone(struct det *dst, const struct det *src)
{
	sim_new(&dst->s, src->s.n, src->s.cs, src->s.c->nr_receivers);
	memcpy(dst->s.c, src->s.c, sizeof(*src->s.c));
	memcpy(dst->s.data, src->s.data, (size_t)src->s.pages * IVC_PAGE_SIZE);
	dst->tx = src->tx;
	dst->rx = src->rx;
	dst->spos = src->spos;
	dst->rpos = src->rpos;
	memcpy(dst->gstart, src->gstart, sizeof(dst->gstart));
}

/* the generation of the sender's current channel: the one it fills, or opens next */
static uint32_t det_cur(const struct det *d)
{
	return d->tx.seq + 1;
}

/* sender: appends up to len bytes, at most a channel's rest per write, noting where each new generation starts */
static uint32_t det_send(struct det *d, uint32_t len)
{
	uint32_t done = 0;

	while (done < len && !t_failed) {
		uint32_t seq = d->tx.seq, left = d->s.cs - d->tx.fill, want = MIN(len - done, left);
		uint32_t got = send_try(&d->s, &d->tx, &d->spos, want);

		if (got == 0)
			break;
		done += got;
		if (d->tx.seq != seq + (got == left)) {
			t_fail(__LINE__, "%u bytes at fill %u: seq %u -> %u", got, d->s.cs - left, seq, d->tx.seq);
			break;
		}
		if (got == left) /* that commit filled the channel and sealed it */
			d->gstart[det_cur(d) & 63] = d->spos;
	}
	return done;
}

/* sender: ivc_tx_seal, noting where the next generation starts */
static void det_seal(struct det *d)
{
	int want = d->tx.begun && d->tx.fill != 0;

	CHECK_EQ(ivc_tx_seal(&d->tx, d->s.c), want);
	if (want)
		d->gstart[det_cur(d) & 63] = d->spos;
}

/* receiver: consumes up to stream byte `upto`, in reads of random sizes; everything before it must be ready */
static void det_recv(struct det *d, uint64_t upto, struct rng *r)
{
	uint32_t got;
	int freed;

	while (d->rpos < upto) {
		uint64_t left = upto - d->rpos, max = rng_range(r, 1, 2 * d->s.cs);

		recv_some(&d->s, &d->rx, &d->rpos, (uint32_t)MIN(left, max), &got, &freed);
		CHECK_OK();
		CHECK(got, "nothing to read at %" PRIu64 ", %" PRIu64 " written", d->rpos, d->spos);
	}
}

/*
 * What a detached sender sends again from the checked position (gen, off), stream byte `from` by the test's own
 * count: walks ivc_tx_resend_next(), copies every piece out of the channels (ivc_chan_chunk, as the kernel does),
 * checks it is the stream from `from` on, to the last byte written, and that the walk writes nothing. `split`: send
 * pieces of random sizes and ask again, as a TCP send that takes part of it. seg/nseg (may be NULL): the pieces
 * (chan, off, len) as returned, when not split.
 */
static void det_resend(struct det *d, uint32_t gen, uint32_t off, uint64_t from, struct rng *r, int split,
		       uint32_t (*seg)[3], uint32_t *nseg)
{
	struct sim *s = &d->s;
	struct ivc_tx saved = d->tx;
	struct ivc_ctrl ctrl;
	uint8_t buf[4096];
	uint32_t chan = 99, len = 99, calls = 0, pchan = 0, plen = 0, ns = 0;
	uint64_t sent = 0, total = d->spos - from;

	memcpy(&ctrl, s->c, sizeof(ctrl));
	CHECK(from <= d->spos, "position past the stream");
	while (ivc_tx_resend_next(&d->tx, &gen, &off, &chan, &len)) {
		uint32_t piece;

		CHECK(++calls <= total, "%u calls for %" PRIu64 " bytes", calls, total);
		CHECK(len >= 1 && chan < s->n && off < s->cs && len <= s->cs - off,
		      "ivc_tx_resend_next: gen %u chan %u off %u len %u", gen, chan, off, len);
		CHECK(sent + len <= total, "resends %" PRIu64 " + %u bytes, only %" PRIu64 " after the position", sent,
		      len, total);
		if (plen) /* the rest of the piece before, where it stopped */
			CHECK(chan == pchan && len == plen,
			      "after a partial send: chan %u len %u, expected chan %u len %u", chan, len, pchan, plen);
		piece = split && rng_range(r, 0, 2) ? rng_range(r, 1, len) : len;
		for (uint32_t done = 0; done < piece;) {
			uint32_t k = MIN(piece - done, (uint32_t)sizeof(buf));
			long bad;

			chan_copy(s, chan, off + done, buf, k, 0);
			CHECK_OK();
			bad = pat_mismatch(buf, from + sent + done, k);
			CHECK(bad < 0, "resent byte %" PRIu64 " of the stream: got 0x%02x expected 0x%02x (gen %u)",
			      from + sent + done + (uint64_t)bad, buf[bad], pat(from + sent + done + (uint64_t)bad),
			      gen);
			done += k;
		}
		if (seg && !split) {
			CHECK(ns < 64, "more than 64 pieces");
			seg[ns][0] = chan;
			seg[ns][1] = off;
			seg[ns][2] = len;
			ns++;
		}
		pchan = chan;
		plen = len - piece;
		sent += piece;
		off += piece;
	}
	CHECK(sent == total, "resent %" PRIu64 " bytes from stream byte %" PRIu64 ", %" PRIu64 " were written after it",
	      sent, from, total);
	CHECK_EQ(ivc_tx_resend_next(&d->tx, &gen, &off, &chan, &len), 0);
	CHECK(memcmp(&d->tx, &saved, sizeof(saved)) == 0, "the resend walk changed the sender's state");
	CHECK(memcmp(s->c, &ctrl, sizeof(ctrl)) == 0, "the resend walk wrote to the control page");
	if (nseg)
		*nseg = ns;
}

/*
 * The detach: the receiver publishes its position (rx_gen, rx_off, then IVC_RX_DETACHED), the sender reads it once,
 * must accept it, and sends exactly the bytes after what the receiver consumed.
 */
static void det_detach(struct det *d, struct rng *r)
{
	struct sim *s = &d->s;
	uint32_t gen = 99, off = 99;
	int ok;

	ivc_rx_position(&d->rx, &gen, &off);
	IVC_WRITE(&s->c->rx_gen, gen);
	IVC_WRITE(&s->c->rx_off, off);
	IVC_WRITE(&s->c->rx_state, IVC_RX_DETACHED);
	gen = IVC_READ(&s->c->rx_gen);
	off = IVC_READ(&s->c->rx_off);
	ok = ivc_tx_position_ok(&d->tx, gen, off);
	CHECK(ok == 0,
	      "%u x %u: the receiver's position (gen %u, off %u) refused (%d): sender seq %u idx %u begun %u fill %u, "
	      "%" PRIu64 " bytes written, %" PRIu64 " consumed",
	      s->n, s->cs, gen, off, ok, d->tx.seq, d->tx.idx, d->tx.begun, d->tx.fill, d->spos, d->rpos);
	det_resend(d, gen, off, d->rpos, r, 1, NULL, NULL);
}

/*
 * sender: writes the stream up to byte len in writes of varying sizes, sealing early now and then; the receiver
 * reads along when the sender is blocked, and sometimes when not (then often to the sender's fill, so a later seal
 * finds it at the end of an open channel)
 */
static void det_stream(struct det *d, uint64_t len, struct rng *r)
{
	uint32_t cs = d->s.cs, w, got;
	int freed;

	while (d->spos < len) {
		w = rng_range(r, 0, 3) ? rng_range(r, 1, 300) : rng_range(r, 1, 3 * cs);
		w = (uint32_t)MIN((uint64_t)w, len - d->spos);
		got = det_send(d, w);
		CHECK_OK();
		if (rng_range(r, 0, 5) == 0)
			det_seal(d);
		CHECK_OK();
		if (got == w && rng_range(r, 0, 3))
			continue;
		for (uint32_t k = rng_range(r, 1, 3); k; k--) { /* blocked, or reading along */
			recv_some(&d->s, &d->rx, &d->rpos, rng_range(r, 1, 2 * cs), &got, &freed);
			CHECK_OK();
		}
	}
}

/* what the detaches of test_detach_resend_exact went through */
struct det_seen {
	uint32_t cases, open, begun_empty, blocked_none, blocked_part, late_seal;
};

/*
 * From the state d: the receiver stops at each place of interest (nothing more; one byte into, the middle of, one
 * byte before and the end of each channel not consumed yet), each time in a copy of the tunnel, and detaches there.
 */
static void det_every_stop(const struct det *d, struct rng *r, struct det_seen *seen)
{
	uint64_t t[4 * (IVC_MAX_CHANNELS + 1) + 1];
	uint32_t nt = 0, n = d->s.n;

	t[nt++] = d->rpos;
	for (uint32_t gen = d->rx.wait_gen;; gen++) {
		uint64_t a = MAX(d->gstart[gen & 63], d->rpos);
		uint64_t b = gen == det_cur(d) ? d->spos : d->gstart[(gen + 1) & 63];

		CHECK(a <= b && b <= d->spos, "gen %u: stream bytes %" PRIu64 "..%" PRIu64, gen, a, b);
		if (b > a) {
			t[nt++] = a + 1;
			t[nt++] = a + (b - a) / 2;
			t[nt++] = b - 1;
			t[nt++] = b;
		}
		if (gen == det_cur(d))
			break;
		CHECK(gen - d->rx.wait_gen < n, "receiver at gen %u, sender at %u", d->rx.wait_gen, det_cur(d));
	}
	for (uint32_t i = 0; i < nt; i++) {
		struct det c;
		uint32_t gen, off;

		det_clone(&c, d);
		det_recv(&c, t[i], r);
		CHECK_OK();
		ivc_rx_position(&c.rx, &gen, &off);
		seen->open += c.tx.begun && c.tx.fill;
		seen->begun_empty += c.tx.begun && !c.tx.fill;
		if (!c.tx.begun && ivc_tx_free(&c.tx, c.s.c) == 0) {
			seen->blocked_none += off == 0 && gen == c.tx.seq + 1 - n;
			seen->blocked_part += off != 0;
		}
		seen->late_seal += c.rx.have && c.rx.off == c.rx.size && !c.rx.sealed &&
				   (c.s.c->chan[c.rx.idx].size & SEALED);
		det_detach(&c, r);
		CHECK_OK();
		seen->cases++;
		sim_free(&c.s);
	}
}

/*
 * Detach after streams of several lengths (from 0 to a few times the tunnel, from generation 1 and across the
 * generation wrap), ending four ways: as is (the current channel open, or none); sealed; sealed and the next channel
 * begun with nothing in it; every channel filled, the sender blocked. From each, the receiver stops at every place of
 * interest and detaches: what it consumed plus what the sender sends again is the stream, byte for byte.
 */
static void test_detach_resend_exact(void)
{
	static const uint32_t geo[][2] = { { 1, 4096 }, { 4, 4096 }, { 3, 8192 }, { 16, 4096 } };
	static const uint32_t starts[] = { 0, 0xFFFFFFFFu - 5 };
	struct det_seen seen = { 0 };

	for (unsigned g = 0; g < sizeof(geo) / sizeof(geo[0]); g++)
		for (unsigned i = 0; i < 2 * 7 * 4; i++) {
			uint32_t n = geo[g][0], cs = geo[g][1], st = i / 28, e = i % 4, chan, off;
			const uint64_t lens[] = { 0, 1, cs - 1, cs, cs + 1, (uint64_t)n * cs - 7, 3ull * n * cs + 777 };
			uint64_t len = lens[i / 4 % 7];
			struct rng r = { 0xDE7AC4ull + 1000 * g + i };
			struct det d;

			det_new(&d, n, cs, starts[st]);
			det_stream(&d, len, &r);
			CHECK_OK();
			CHECK_EQ(d.spos, len);
			if (e == 1 || e == 2)
				det_seal(&d);
			CHECK_OK();
			if (e == 2 && ivc_tx_room(&d.tx, d.s.c, &chan, &off) > 0)
				CHECK(d.tx.begun && d.tx.fill == 0 && off == 0, "room: begun %u fill %u", d.tx.begun,
				      d.tx.fill);
			if (e == 3) {
				det_send(&d, n * cs);
				CHECK_OK();
				CHECK_EQ(ivc_tx_writable(&d.tx, d.s.c), 0);
			}
			det_every_stop(&d, &r, &seen);
			CHECK_OK();
			sim_free(&d.s);
		}
	CHECK(seen.open > 100 && seen.begun_empty > 10 && seen.blocked_none > 10 && seen.blocked_part > 10 &&
		      seen.late_seal > 0,
	      "%u detaches: %u with the current channel open, %u begun and empty, %u blocked, the oldest channel "
	      "unread, %u blocked, in it, %u after a seal not seen yet",
	      seen.cases, seen.open, seen.begun_empty, seen.blocked_none, seen.blocked_part, seen.late_seal);
}

/* ivc_tx_position_ok(gen, off) must give `want` (0, or -IVC_E_POSITION) */
#define CHECK_POS(d, gen, off, want)                                                                              \
	do {                                                                                                      \
		uint32_t _g = (gen), _o = (off);                                                                  \
		int _r = ivc_tx_position_ok(&(d)->tx, _g, _o);                                                    \
		CHECK(_r == (want),                                                                               \
		      "ivc_tx_position_ok(gen %u, off %u) = %d, expected %d (seq %u idx %u begun %u fill %u)", _g, \
		      _o, _r, (want), (d)->tx.seq, (d)->tx.idx, (d)->tx.begun, (d)->tx.fill);                     \
	} while (0)

/* an accepted position, and what is sent again from it: the stream from that generation's start + off */
static void pos_accepted(struct det *d, uint32_t gen, uint32_t off, struct rng *r)
{
	CHECK_POS(d, gen, off, 0);
	det_resend(d, gen, off, d->gstart[gen & 63] + off, r, 1, NULL, NULL);
}

/*
 * Positions a detached receiver may not claim: a generation older than the channels still hold, one the sender has
 * not opened (seq + 2 and beyond), an offset past what the channel of that generation holds (any offset in a current
 * channel not begun). The boundaries are accepted: the oldest generation still held, at its start and at its sealed
 * size; the current channel at its fill. The resend uses the sender's own record of the sizes: size words the peer
 * broke change nothing.
 */
static void test_detach_position_bad(void)
{
	static const uint32_t bad_sizes[] = { 0, 1, 1 | SEALED, 4095, 4096 | SEALED, 4097 | SEALED, 8192, SEALED,
					       0xFFFFFFFFu };
	static const uint32_t lasts[] = { 0, 0xFFFFFFFFu - 3, 0x7FFFFFFFu };
	struct rng r = { 0xBAD905ull };
	struct det held[8]; /* every channel held, the sender blocked: checked last (see the end) */
	uint32_t held_gen[8], held_size[8], nheld = 0, chan, off, size;

	/* one channel: once begun, the window is that channel alone */
	{
		struct det d;

		det_new(&d, 1, 4096, 0);
		det_send(&d, 300);
		CHECK_OK();
		pos_accepted(&d, 1, 300, &r);
		CHECK_OK();
		CHECK_POS(&d, 1, 301, -IVC_E_POSITION);
		CHECK_POS(&d, 0, 0, -IVC_E_POSITION);
		CHECK_POS(&d, 2, 0, -IVC_E_POSITION);
		det_recv(&d, 300, &r);
		det_seal(&d);
		CHECK_OK();
		det_clone(&held[nheld], &d); /* gen 1 sealed and held, read to its end before the seal, not looked at */
		held_gen[nheld] = 1;
		held_size[nheld++] = 300;
		CHECK_EQ(ivc_rx_peek(&d.rx, d.s.c, 0, &size), 0); /* read to its end: freed on this look */
		CHECK_EQ(ivc_rx_take_freed(&d.rx), 1);
		CHECK_EQ(ivc_tx_room(&d.tx, d.s.c, &chan, &off), 4096);
		CHECK_POS(&d, 1, 0, -IVC_E_POSITION); /* begun: gen 1 is gone */
		CHECK_POS(&d, 1, 300, -IVC_E_POSITION);
		CHECK_POS(&d, 2, 1, -IVC_E_POSITION);
		pos_accepted(&d, 2, 0, &r);
		CHECK_OK();
		CHECK_EQ(det_send(&d, 4096), 4096);
		CHECK_OK();
		CHECK_EQ(d.tx.seq, 2);
		CHECK_EQ(d.tx.begun, 0);
		CHECK_EQ(ivc_tx_writable(&d.tx, d.s.c), 0);
		CHECK_POS(&d, 1, 0, -IVC_E_POSITION);
		CHECK_POS(&d, 1, 300, -IVC_E_POSITION);
		CHECK_POS(&d, 3, 1, -IVC_E_POSITION);
		CHECK_POS(&d, 4, 0, -IVC_E_POSITION);
		CHECK_POS(&d, 2, 4097, -IVC_E_POSITION);
		pos_accepted(&d, 3, 0, &r);
		CHECK_OK();
		det_clone(&held[nheld], &d); /* gen 2 is full, held, unread */
		held_gen[nheld] = 2;
		held_size[nheld++] = 4096;
		sim_free(&d.s);
	}

	for (unsigned li = 0; li < sizeof(lasts) / sizeof(lasts[0]); li++) {
		struct det d;
		uint32_t b = lasts[li] + 1, seg[2][64][3], nseg[2];

		/* nothing written yet: the current channel (gen b) not begun */
		det_new(&d, 4, 4096, lasts[li]);
		CHECK_POS(&d, b, 0, 0);
		CHECK_POS(&d, b, 1, -IVC_E_POSITION);
		CHECK_POS(&d, b, 4096, -IVC_E_POSITION);
		CHECK_POS(&d, b + 1, 0, -IVC_E_POSITION);
		CHECK_POS(&d, b + 4, 0, -IVC_E_POSITION);
		CHECK_POS(&d, b - 5, 0, -IVC_E_POSITION);
		CHECK_POS(&d, b + 0x80000000u, 0, -IVC_E_POSITION);
		pos_accepted(&d, b, 0, &r);
		CHECK_OK();
		/* begun, nothing in it: the same */
		CHECK_EQ(ivc_tx_room(&d.tx, d.s.c, &chan, &off), 4096);
		CHECK_POS(&d, b, 0, 0);
		CHECK_POS(&d, b, 1, -IVC_E_POSITION);
		CHECK_POS(&d, b + 1, 0, -IVC_E_POSITION);
		pos_accepted(&d, b, 0, &r);
		CHECK_OK();

		/* gen b full (4096), b+1 sealed early (100), b+2 full, b+3 open (50): the receiver read nothing */
		det_send(&d, 4096);
		CHECK_OK();
		det_send(&d, 100);
		det_seal(&d);
		CHECK_OK();
		det_send(&d, 4096);
		det_send(&d, 50);
		CHECK_OK();
		CHECK_EQ(d.tx.seq, b + 2);
		CHECK_EQ(d.tx.begun, 1);
		CHECK_EQ(d.tx.fill, 50);
		CHECK_EQ(d.spos, 4096 + 100 + 4096 + 50);
		pos_accepted(&d, b, 0, &r); /* the oldest generation, from its start, and at its sealed size */
		CHECK_OK();
		pos_accepted(&d, b, 4096, &r);
		CHECK_OK();
		pos_accepted(&d, b + 1, 100, &r);
		CHECK_OK();
		pos_accepted(&d, b + 1, 37, &r);
		CHECK_OK();
		pos_accepted(&d, b + 3, 50, &r); /* the current channel at its fill: nothing to send */
		CHECK_OK();
		pos_accepted(&d, b + 3, 0, &r);
		CHECK_OK();
		CHECK_POS(&d, b, 4097, -IVC_E_POSITION);
		CHECK_POS(&d, b, 0xFFFFFFFFu, -IVC_E_POSITION);
		CHECK_POS(&d, b + 1, 101, -IVC_E_POSITION); /* sealed early: past its sealed size, within the channel */
		CHECK_POS(&d, b + 1, 4096, -IVC_E_POSITION);
		CHECK_POS(&d, b + 2, 4097, -IVC_E_POSITION);
		CHECK_POS(&d, b + 3, 51, -IVC_E_POSITION);
		CHECK_POS(&d, b + 3, 4096, -IVC_E_POSITION);
		CHECK_POS(&d, b + 4, 0, -IVC_E_POSITION); /* seq + 2: not opened */
		CHECK_POS(&d, b + 5, 0, -IVC_E_POSITION);
		CHECK_POS(&d, b - 1, 0, -IVC_E_POSITION); /* seq + 1 - nr_channels: the current channel holds it now */
		CHECK_POS(&d, b - 2, 0, -IVC_E_POSITION);
		CHECK_POS(&d, b + 3 + 0x80000000u, 0, -IVC_E_POSITION);

		/* size words the peer broke: the same pieces, the same bytes (the sender's own record) */
		det_resend(&d, b, 0, 0, &r, 0, seg[0], &nseg[0]);
		CHECK_OK();
		CHECK_EQ(nseg[0], 4);
		for (unsigned k = 0; k < sizeof(bad_sizes) / sizeof(bad_sizes[0]); k++) {
			for (uint32_t c = 0; c < d.s.n; c++)
				d.s.c->chan[c].size = bad_sizes[k];
			CHECK_POS(&d, b + 1, 100, 0);
			CHECK_POS(&d, b + 1, 101, -IVC_E_POSITION);
			CHECK_POS(&d, b + 3, 51, -IVC_E_POSITION);
			det_resend(&d, b, 0, 0, &r, 0, seg[1], &nseg[1]);
			CHECK_OK();
			CHECK_EQ(nseg[1], nseg[0]);
			CHECK(memcmp(seg[0], seg[1], sizeof(seg[0][0]) * nseg[0]) == 0,
			      "size words %#x changed the pieces sent again", bad_sizes[k]);
			pos_accepted(&d, b + 1, 40, &r);
			CHECK_OK();
		}
		/* and the other words the peer writes */
		for (uint32_t c = 0; c < d.s.n; c++) {
			d.s.c->chan[c].size = 4096 | SEALED;
			d.s.c->chan[c].gen_num = 0x5A5A5A5Au;
			d.s.c->chan[c].pend_read = 0;
		}
		det_resend(&d, b, 0, 0, &r, 0, seg[1], &nseg[1]);
		CHECK_OK();
		CHECK_EQ(nseg[1], nseg[0]);
		CHECK(memcmp(seg[0], seg[1], sizeof(seg[0][0]) * nseg[0]) == 0, "header words changed the pieces");
		for (uint32_t c = 0; c < d.s.n; c++) { /* put back what the sender wrote, for what follows */
			d.s.c->chan[c].gen_num = b + c;
			d.s.c->chan[c].size = c == 1 ? 100 | SEALED : c == 3 ? 50 : 4096 | SEALED;
			d.s.c->chan[c].pend_read = 1;
		}

		/* the receiver consumes gens b, b+1; the sender fills b+3, b+4 (channel 0) and opens b+5 (channel 1) */
		det_recv(&d, 4096 + 100, &r);
		CHECK_OK();
		CHECK_EQ(d.rx.wait_gen, b + 2);
		CHECK_EQ(det_send(&d, 4096 - 50 + 4096 + 10), 4096 - 50 + 4096 + 10);
		CHECK_OK();
		CHECK_EQ(d.tx.seq, b + 4);
		CHECK_EQ(d.tx.idx, 1);
		CHECK_EQ(d.tx.fill, 10);
		CHECK_POS(&d, b + 1, 0, -IVC_E_POSITION); /* channel 1 holds b + 5 now */
		CHECK_POS(&d, b + 1, 100, -IVC_E_POSITION);
		CHECK_POS(&d, b, 0, -IVC_E_POSITION);
		pos_accepted(&d, b + 2, 0, &r);
		CHECK_OK();
		pos_accepted(&d, b + 2, 4096, &r);
		CHECK_OK();
		pos_accepted(&d, b + 5, 10, &r);
		CHECK_OK();
		CHECK_POS(&d, b + 2, 4097, -IVC_E_POSITION);
		CHECK_POS(&d, b + 5, 11, -IVC_E_POSITION);
		CHECK_POS(&d, b + 6, 0, -IVC_E_POSITION);

		/* b + 5 sealed: every channel held, the sender blocked, the receiver still waiting for b + 2 */
		det_seal(&d);
		CHECK_OK();
		CHECK_EQ(ivc_tx_writable(&d.tx, d.s.c), 0);
		CHECK_EQ(d.tx.seq, b + 5);
		CHECK_POS(&d, b + 6, 1, -IVC_E_POSITION); /* the current channel, not begun */
		CHECK_POS(&d, b + 6, 4096, -IVC_E_POSITION);
		CHECK_POS(&d, b + 7, 0, -IVC_E_POSITION);
		CHECK_POS(&d, b + 1, 0, -IVC_E_POSITION); /* seq - nr_channels */
		CHECK_POS(&d, b + 1, 100, -IVC_E_POSITION);
		CHECK_POS(&d, b + 2, 4097, -IVC_E_POSITION);
		CHECK_POS(&d, b + 5, 11, -IVC_E_POSITION);
		pos_accepted(&d, b + 6, 0, &r);
		CHECK_OK();
		pos_accepted(&d, b + 5, 10, &r);
		CHECK_OK();
		pos_accepted(&d, b + 3, 0, &r);
		CHECK_OK();
		det_clone(&held[nheld], &d); /* gen b + 2 is full, held, unread */
		held_gen[nheld] = b + 2;
		held_size[nheld++] = 4096;

		/* the receiver frees b + 2; the sender begins b + 6 and puts nothing in it: b + 2 is gone */
		det_recv(&d, 4096 + 100 + 4096, &r);
		CHECK_OK();
		CHECK_EQ(ivc_tx_room(&d.tx, d.s.c, &chan, &off), 4096);
		CHECK_EQ(chan, 2);
		CHECK_POS(&d, b + 2, 0, -IVC_E_POSITION);
		CHECK_POS(&d, b + 2, 4096, -IVC_E_POSITION);
		CHECK_POS(&d, b + 6, 1, -IVC_E_POSITION);
		CHECK_POS(&d, b + 7, 0, -IVC_E_POSITION);
		pos_accepted(&d, b + 6, 0, &r);
		CHECK_OK();
		pos_accepted(&d, b + 3, 0, &r);
		CHECK_OK();
		sim_free(&d.s);
	}

	/*
	 * Every channel held and the sender blocked (its current channel, idx, not begun): the oldest generation,
	 * seq + 1 - nr_channels, is still in channel idx, unread. The receiver waits for it: its start, any offset in
	 * it and its sealed size are positions the sender sent.
	 */
	for (uint32_t i = 0; i < nheld; i++) {
		struct det *d = &held[i];
		uint32_t g = held_gen[i];

		CHECK_EQ(g, d->tx.seq + 1 - d->s.n);
		CHECK_EQ(d->rx.wait_gen, g);
		pos_accepted(d, g, 0, &r);
		CHECK_OK();
		pos_accepted(d, g, held_size[i] / 2, &r);
		CHECK_OK();
		pos_accepted(d, g, held_size[i], &r);
		CHECK_OK();
		CHECK_POS(d, g, held_size[i] + 1, -IVC_E_POSITION);
		CHECK_POS(d, g - 1, 0, -IVC_E_POSITION);
		sim_free(&d->s);
	}
}

/* ivc_rx_position: (1, 0) at the start, (1, k) into channel 1, (2, 0) once it is sealed, read and released */
static void test_rx_position(void)
{
	struct det d;
	struct rng r = { 0x905171ull };
	uint32_t gen = 99, off = 99, size, got;
	int freed;

	det_new(&d, 4, 4096, 0);
	ivc_rx_position(&d.rx, &gen, &off);
	CHECK_EQ(gen, 1);
	CHECK_EQ(off, 0);
	CHECK_EQ(ivc_rx_peek(&d.rx, d.s.c, 0, &size), 0); /* a look that finds nothing changes nothing */
	ivc_rx_position(&d.rx, &gen, &off);
	CHECK_EQ(gen, 1);
	CHECK_EQ(off, 0);
	det_send(&d, 1000);
	CHECK_OK();
	CHECK_EQ(ivc_rx_ready(&d.rx, d.s.c), 1000); /* seen, nothing consumed */
	ivc_rx_position(&d.rx, &gen, &off);
	CHECK_EQ(gen, 1);
	CHECK_EQ(off, 0);
	recv_some(&d.s, &d.rx, &d.rpos, 321, &got, &freed);
	CHECK_OK();
	ivc_rx_position(&d.rx, &gen, &off);
	CHECK_EQ(gen, 1);
	CHECK_EQ(off, 321);
	recv_some(&d.s, &d.rx, &d.rpos, 4096, &got, &freed);
	CHECK_OK();
	CHECK_EQ(got, 1000 - 321);
	ivc_rx_position(&d.rx, &gen, &off);
	CHECK_EQ(gen, 1);
	CHECK_EQ(off, 1000);
	/* sealed: until the receiver looks again it is still at the end of gen 1 (the sender accepts both) */
	det_seal(&d);
	CHECK_OK();
	ivc_rx_position(&d.rx, &gen, &off);
	CHECK_EQ(gen, 1);
	CHECK_EQ(off, 1000);
	CHECK_EQ(ivc_tx_position_ok(&d.tx, gen, off), 0);
	CHECK_EQ(ivc_rx_peek(&d.rx, d.s.c, 0, &size), 0); /* read to its end and released on the way */
	CHECK_EQ(ivc_rx_take_freed(&d.rx), 1);
	ivc_rx_position(&d.rx, &gen, &off);
	CHECK_EQ(gen, 2);
	CHECK_EQ(off, 0);
	CHECK_EQ(ivc_tx_position_ok(&d.tx, gen, off), 0);
	/* gen 2 full (released by the consume that ends it), gen 3 sealed early, read in part */
	det_send(&d, 4096 + 500);
	det_seal(&d);
	det_send(&d, 70);
	CHECK_OK();
	det_recv(&d, 1000 + 4095, &r);
	CHECK_OK();
	ivc_rx_position(&d.rx, &gen, &off);
	CHECK_EQ(gen, 2);
	CHECK_EQ(off, 4095);
	det_recv(&d, 1000 + 4096, &r);
	CHECK_OK();
	ivc_rx_position(&d.rx, &gen, &off);
	CHECK_EQ(gen, 3);
	CHECK_EQ(off, 0);
	CHECK_EQ(ivc_rx_peek(&d.rx, d.s.c, 1, &size), 1); /* a peek ahead moves nothing */
	CHECK_EQ(size, 70);
	ivc_rx_position(&d.rx, &gen, &off);
	CHECK_EQ(gen, 3);
	CHECK_EQ(off, 0);
	det_recv(&d, 1000 + 4096 + 499, &r);
	CHECK_OK();
	ivc_rx_position(&d.rx, &gen, &off);
	CHECK_EQ(gen, 3);
	CHECK_EQ(off, 499);
	det_recv(&d, 1000 + 4096 + 500, &r);
	CHECK_OK();
	ivc_rx_position(&d.rx, &gen, &off);
	CHECK_EQ(gen, 4);
	CHECK_EQ(off, 0);
	det_recv(&d, 1000 + 4096 + 500 + 69, &r);
	CHECK_OK();
	ivc_rx_position(&d.rx, &gen, &off);
	CHECK_EQ(gen, 4);
	CHECK_EQ(off, 69);
	/* what the sender sends from there is the last byte */
	CHECK_EQ(ivc_tx_position_ok(&d.tx, gen, off), 0);
	det_resend(&d, gen, off, d.rpos, &r, 0, NULL, NULL);
	CHECK_OK();
	sim_free(&d.s);

	/* across the generation wrap */
	det_new(&d, 3, 8192, 0xFFFFFFFFu);
	ivc_rx_position(&d.rx, &gen, &off);
	CHECK_EQ(gen, 0);
	CHECK_EQ(off, 0);
	det_send(&d, 8192 + 5);
	CHECK_OK();
	det_recv(&d, 8192, &r);
	CHECK_OK();
	ivc_rx_position(&d.rx, &gen, &off);
	CHECK_EQ(gen, 1);
	CHECK_EQ(off, 0);
	det_recv(&d, 8192 + 2, &r);
	CHECK_OK();
	ivc_rx_position(&d.rx, &gen, &off);
	CHECK_EQ(gen, 1);
	CHECK_EQ(off, 2);
	sim_free(&d.s);
}

/* ---- event suppression ---- */

static void test_kick_tx(void)
{
	struct sim s;
	struct ivc_tx tx;
	struct ivc_rx rx;
	uint64_t spos = 0;
	uint32_t w = 99, w2;

	sim_new(&s, 4, 4096, 1);
	ivc_tx_init(&tx, 4, 4096, 1);
	ivc_rx_init(&rx, 4, 4096, 1);
	/* nobody waits: no event however much is committed */
	for (int i = 0; i < 8; i++) {
		send_bytes(&s, &tx, &spos, 1000);
		CHECK_OK();
		CHECK_EQ(ivc_tx_need_kick(&tx, s.c, &w), 0);
	}
	/* one want bump: one event, and it stays due until a raise succeeded (ivc_tx_kicked) */
	ivc_rx_want(&rx, s.c);
	CHECK_EQ(s.c->rx_want, 1);
	CHECK_EQ(ivc_tx_need_kick(&tx, s.c, &w), 1);
	CHECK_EQ(w, 1);
	CHECK_EQ(ivc_tx_need_kick(&tx, s.c, &w), 1); /* the raise failed: the next commit retries */
	CHECK_EQ(w, 1);
	ivc_tx_kicked(&tx, w);
	CHECK_EQ(ivc_tx_need_kick(&tx, s.c, &w), 0);
	CHECK_EQ(ivc_tx_need_kick(&tx, s.c, &w), 0);
	/* each bump gets its own */
	for (uint32_t i = 2; i < 10; i++) {
		ivc_rx_want(&rx, s.c);
		CHECK_EQ(s.c->rx_want, i);
		CHECK_EQ(ivc_tx_need_kick(&tx, s.c, &w), 1);
		CHECK_EQ(w, i);
		ivc_tx_kicked(&tx, w);
		CHECK_EQ(ivc_tx_need_kick(&tx, s.c, &w), 0);
	}
	/* two bumps before the sender looks: one event (the receiver is asleep once) */
	ivc_rx_want(&rx, s.c);
	ivc_rx_want(&rx, s.c);
	CHECK_EQ(ivc_tx_need_kick(&tx, s.c, &w), 1);
	ivc_tx_kicked(&tx, w);
	CHECK_EQ(ivc_tx_need_kick(&tx, s.c, &w), 0);
	/* a bump between the look and the raise: the request it answered is served, the new one is still due */
	ivc_rx_want(&rx, s.c);
	CHECK_EQ(ivc_tx_need_kick(&tx, s.c, &w), 1);
	ivc_rx_want(&rx, s.c);
	ivc_tx_kicked(&tx, w);
	CHECK_EQ(ivc_tx_need_kick(&tx, s.c, &w2), 1);
	CHECK_EQ(w2, w + 1);
	ivc_tx_kicked(&tx, w2);
	/* the counter wraps */
	s.c->rx_want = 0xFFFFFFFFu;
	CHECK_EQ(ivc_tx_need_kick(&tx, s.c, &w), 1);
	ivc_tx_kicked(&tx, w);
	ivc_rx_want(&rx, s.c);
	CHECK_EQ(s.c->rx_want, 0);
	CHECK_EQ(ivc_tx_need_kick(&tx, s.c, &w), 1);
	CHECK_EQ(w, 0);
	ivc_tx_kicked(&tx, w);
	CHECK_EQ(ivc_tx_need_kick(&tx, s.c, &w), 0);
	/* the receiver's events are independent */
	CHECK_EQ(ivc_rx_need_kick(&rx, s.c, &w), 0);
	CHECK_EQ(s.c->tx_want, 0);
	sim_free(&s);
}

static void test_kick_rx(void)
{
	struct sim s;
	struct ivc_tx tx;
	struct ivc_rx rx;
	uint64_t spos = 0, rpos = 0;
	uint32_t w = 99;
	int freed;

	sim_new(&s, 2, 4096, 1);
	ivc_tx_init(&tx, 2, 4096, 1);
	ivc_rx_init(&rx, 2, 4096, 1);
	for (int i = 0; i < 6; i++) {
		send_chan(&s, &tx, &spos, 10);
		CHECK_OK();
		recv_chan(&s, &rx, &rpos, 10, 3, &freed);
		CHECK_OK();
		CHECK_EQ(freed, 1);
		CHECK_EQ(ivc_rx_need_kick(&rx, s.c, &w), 0);
	}
	send_chan(&s, &tx, &spos, 10);
	CHECK_OK();
	send_chan(&s, &tx, &spos, 10);
	CHECK_OK();
	CHECK_EQ(ivc_tx_free(&tx, s.c), 0);
	ivc_tx_want(&tx, s.c);
	CHECK_EQ(s.c->tx_want, 1);
	CHECK_EQ(ivc_tx_free(&tx, s.c), 0);
	CHECK_EQ(ivc_rx_need_kick(&rx, s.c, &w), 0); /* nothing free yet */
	recv_chan(&s, &rx, &rpos, 10, 10, &freed);
	CHECK_OK();
	CHECK_EQ(ivc_rx_need_kick(&rx, s.c, &w), 1);
	CHECK_EQ(w, 1);
	CHECK_EQ(ivc_rx_need_kick(&rx, s.c, &w), 1); /* the raise failed: still due */
	ivc_rx_kicked(&rx, w);
	CHECK_EQ(ivc_rx_need_kick(&rx, s.c, &w), 0);
	recv_chan(&s, &rx, &rpos, 10, 10, &freed);
	CHECK_OK();
	CHECK_EQ(ivc_rx_need_kick(&rx, s.c, &w), 0);
	for (uint32_t i = 2; i < 10; i++) {
		ivc_tx_want(&tx, s.c);
		CHECK_EQ(s.c->tx_want, i);
		CHECK_EQ(ivc_rx_need_kick(&rx, s.c, &w), 1);
		CHECK_EQ(w, i);
		ivc_rx_kicked(&rx, w);
		CHECK_EQ(ivc_rx_need_kick(&rx, s.c, &w), 0);
	}
	CHECK_EQ(ivc_tx_need_kick(&tx, s.c, &w), 0);
	sim_free(&s);
}

/* the receiver tells a waiting sender only once a tenth of the channels (at least one) is free */
static void test_kick_threshold(void)
{
	for (uint32_t n = 1; n <= 16; n++)
		CHECK(ivc_rx_kick_threshold(n) == (n <= 10 ? 1u : 2u), "threshold(%u) = %u", n,
		      ivc_rx_kick_threshold(n));
	for (uint32_t n = 1; n <= 16; n++) {
		struct sim s;
		struct ivc_tx tx;
		struct ivc_rx rx;
		uint64_t spos = 0, rpos = 0;
		uint32_t w, th = ivc_rx_kick_threshold(n), chan, off;
		int freed;

		sim_new(&s, n, 4096, 1);
		ivc_tx_init(&tx, n, 4096, 1);
		ivc_rx_init(&rx, n, 4096, 1);
		send_try(&s, &tx, &spos, n * 4096);
		CHECK_OK();
		CHECK_EQ(ivc_tx_room(&tx, s.c, &chan, &off), 0);
		ivc_tx_want(&tx, s.c);
		CHECK_EQ(ivc_rx_need_kick(&rx, s.c, &w), 0);
		for (uint32_t i = 1; i <= n; i++) {
			recv_chan(&s, &rx, &rpos, 4096, 4096, &freed);
			CHECK_OK();
			CHECK_EQ(freed, 1);
			CHECK_EQ(free_channels(&s), i);
			CHECK(ivc_rx_need_kick(&rx, s.c, &w) == (i >= th), "%u channels, %u free: need_kick should be %d", n,
			      i, (int)(i >= th));
		}
		ivc_rx_kicked(&rx, w);
		CHECK_EQ(ivc_rx_need_kick(&rx, s.c, &w), 0);
		sim_free(&s);
	}
}

struct want_race {
	struct ivc_ctrl *c;
	struct ivc_tx tx;
	struct ivc_rx rx;
	uint32_t iters;
	volatile int *go;
};

static void *want_bumper(void *arg)
{
	struct want_race *wr = arg;

	while (!__atomic_load_n(wr->go, __ATOMIC_ACQUIRE))
		;
	for (uint32_t i = 0; i < wr->iters; i++) {
		ivc_rx_want(&wr->rx, wr->c);
		ivc_tx_want(&wr->tx, wr->c);
	}
	return NULL;
}

/* a poller and the owner bump the same counter without a common lock: no increment may be lost */
static void test_want_atomic(void)
{
	struct sim s;
	struct want_race a, b;
	pthread_t ta, tb;
	volatile int go = 0;
	const uint32_t iters = 1000000;

	sim_new(&s, 4, 4096, 1);
	s.c->rx_want = s.c->tx_want = 0xFFFFFFFFu - 1000; /* across the wrap too */
	memset(&a, 0, sizeof(a));
	a.c = s.c;
	a.iters = iters;
	a.go = &go;
	ivc_tx_init(&a.tx, 4, 4096, 1);
	ivc_rx_init(&a.rx, 4, 4096, 1);
	b = a;
	CHECK(pthread_create(&ta, NULL, want_bumper, &a) == 0, "pthread_create");
	if (pthread_create(&tb, NULL, want_bumper, &b)) {
		__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
		pthread_join(ta, NULL);
		CHECK(0, "pthread_create");
	}
	__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	CHECK_EQ(s.c->rx_want, (uint32_t)(0xFFFFFFFFu - 1000 + 2 * iters));
	CHECK_EQ(s.c->tx_want, (uint32_t)(0xFFFFFFFFu - 1000 + 2 * iters));
	sim_free(&s);
}

/*
 * The interleaving model. Each side is a small state machine whose steps are the header's calls; a random scheduler
 * picks which side runs the next step. The sender appends writes of random sizes (room, copy, commit), so channels
 * are packed and read while open; the receiver reads random amounts. A side that finds nothing to do bumps its want
 * counter in a later step (and, like Linux's prepare_to_wait(), forgets older wakeups from then on), checks again in
 * another step (the receiver with ivc_rx_news(), as the kernel's wake condition), and only then sleeps, unless a kick
 * arrived since the bump. A sleeping side runs again only when the other side kicks it; a side kicks in its own
 * step after a commit / free, if ivc_*_need_kick() says so, and marks the request served (ivc_*_kicked) only if the
 * raise succeeded: with raise failures on, a raise fails at random and the kicker retries in its next step (the
 * next commit or the SEM's tick).
 * A lost wakeup is a side asleep while what it waits for is there (news for the receiver; for the sender, its next
 * channel free and enough channels free for the receiver to tell it) and the other side is not about to evaluate
 * its kick: the model checks that after every step, and that the stream arrives exactly.
 */
enum { S_RUN, S_PREP, S_KICK, S_WANTED, S_ASLEEP, S_DONE };

#define SKIP_RX_RECHECK 1 /* self-test: the receiver sleeps without checking again after its want bump */
#define SKIP_TX_RECHECK 2 /* self-test: same for the sender */
#define SKIP_PENDING    4 /* self-test: a failed raise is marked served anyway (the request is lost) */

struct model {
	struct sim s;
	struct ivc_tx tx;
	struct ivc_rx rx;
	int ts, rs; /* S_* of sender and receiver */
	int tx_pending, rx_pending;
	uint64_t spos, rpos, limit;
	uint64_t sleeps_tx, sleeps_rx, kicks_tx, kicks_rx, failed_raises;
	uint32_t fail_pct; /* a raise fails with this probability (percent) */
	int skip;          /* SKIP_* */
	int lost;          /* a lost wakeup was detected */
};

static void model_kick_rx(struct model *m)
{
	m->kicks_tx++;
	m->rx_pending = 1;
	if (m->rs == S_ASLEEP) {
		m->rs = S_RUN;
		m->rx_pending = 0;
	}
}

static void model_kick_tx(struct model *m)
{
	m->kicks_rx++;
	m->tx_pending = 1;
	if (m->ts == S_ASLEEP) {
		m->ts = S_RUN;
		m->tx_pending = 0;
	}
}

/* one raise: 1 if it went out, 0 if it failed */
static int model_raise(struct model *m, struct rng *r)
{
	if (m->fail_pct && rng_range(r, 1, 100) <= m->fail_pct) {
		m->failed_raises++;
		return 0;
	}
	return 1;
}

static void model_tx_step(struct model *m, struct rng *r)
{
	uint32_t chan, off, w;
	int64_t room;

	switch (m->ts) {
	case S_RUN:
		if (m->spos >= m->limit) {
			/* the end: seal the last channel so the receiver frees it, and tell the receiver */
			m->ts = ivc_tx_seal(&m->tx, m->s.c) ? S_KICK : S_DONE;
			return;
		}
		room = ivc_tx_room(&m->tx, m->s.c, &chan, &off);
		CHECK(room >= 0, "ivc_tx_room = %lld", (long long)room);
		if (room > 0) {
			uint64_t left = m->limit - m->spos;
			uint32_t len = rng_range(r, 1, rng_range(r, 0, 1) ? 64 : m->s.cs);

			len = MIN(len, (uint32_t)room);
			send_bytes(&m->s, &m->tx, &m->spos, left < len ? (uint32_t)left : len);
			CHECK_OK();
			m->ts = S_KICK;
		} else {
			m->ts = S_PREP;
		}
		return;
	case S_PREP:
		ivc_tx_want(&m->tx, m->s.c);
		m->tx_pending = 0;
		m->ts = S_WANTED;
		return;
	case S_KICK:
		m->ts = S_RUN;
		if (ivc_tx_need_kick(&m->tx, m->s.c, &w)) {
			if (model_raise(m, r)) {
				ivc_tx_kicked(&m->tx, w);
				model_kick_rx(m);
			} else if (m->skip & SKIP_PENDING) {
				ivc_tx_kicked(&m->tx, w);
			} else {
				m->ts = S_KICK; /* retried at the next step */
			}
		}
		return;
	case S_WANTED:
		room = m->skip & SKIP_TX_RECHECK ? 0 : ivc_tx_room(&m->tx, m->s.c, &chan, &off);
		CHECK(room >= 0, "ivc_tx_room = %lld", (long long)room);
		if (room > 0 || m->tx_pending) {
			m->tx_pending = 0;
			m->ts = S_RUN;
		} else {
			m->ts = S_ASLEEP;
			m->sleeps_tx++;
		}
		return;
	}
}

static void model_rx_step(struct model *m, struct rng *r)
{
	uint32_t got, w;
	int freed;

	switch (m->rs) {
	case S_RUN:
		recv_some(&m->s, &m->rx, &m->rpos, rng_range(r, 1, m->s.cs + m->s.cs / 2), &got, &freed);
		CHECK_OK();
		if (freed)
			m->rs = S_KICK;
		else if (got)
			m->rs = S_RUN;
		else if (m->ts == S_DONE && m->rpos == m->spos)
			m->rs = S_DONE;
		else
			m->rs = S_PREP;
		return;
	case S_PREP:
		ivc_rx_want(&m->rx, m->s.c);
		m->rx_pending = 0;
		m->rs = S_WANTED;
		return;
	case S_KICK:
		m->rs = S_RUN;
		if (ivc_rx_need_kick(&m->rx, m->s.c, &w)) {
			if (model_raise(m, r)) {
				ivc_rx_kicked(&m->rx, w);
				model_kick_tx(m);
			} else if (m->skip & SKIP_PENDING) {
				ivc_rx_kicked(&m->rx, w);
			} else {
				m->rs = S_KICK;
			}
		}
		return;
	case S_WANTED:
		if ((!(m->skip & SKIP_RX_RECHECK) && ivc_rx_news(&m->rx, m->s.c)) || m->rx_pending) {
			m->rx_pending = 0;
			m->rs = S_RUN;
		} else {
			m->rs = S_ASLEEP;
			m->sleeps_rx++;
		}
		return;
	}
}

/*
 * Has the receiver something to do? Bytes committed it has not read, or its channel sealed and read to the end
 * (to free). Worked out from the model and the raw header, not from ivc_rx_news(), which the model checks.
 */
static int model_rx_has_news(struct model *m)
{
	const struct ivc_chan_hdr *h = &m->s.c->chan[m->rx.idx];

	if (m->rpos < m->spos)
		return 1;
	return h->gen_num == m->rx.wait_gen && h->pend_read != 0 && (h->size & SEALED) &&
	       (h->size & ~SEALED) == m->rx.off;
}

/* 0, or what is wrong: a side asleep although what it waits for is there and no kick of the other side is due */
static const char *model_lost(struct model *m)
{
	if (m->rs == S_ASLEEP && m->ts == S_ASLEEP)
		return "both sides asleep";
	if (m->rs == S_ASLEEP && m->ts != S_KICK && model_rx_has_news(m))
		return "receiver asleep with news";
	if (m->ts == S_ASLEEP && m->rs != S_KICK && ivc_tx_free(&m->tx, m->s.c) == 1 &&
	    free_channels(&m->s) >= ivc_rx_kick_threshold(m->s.n))
		return "sender asleep with its next channel free";
	return NULL;
}

static void model_steps(struct model *m, struct rng *r, uint32_t steps, int phases)
{
	uint32_t bias = 50;
	const char *why;

	for (uint32_t step = 0; step < steps; step++) {
		int can_tx = m->ts != S_ASLEEP && m->ts != S_DONE, can_rx = m->rs != S_ASLEEP && m->rs != S_DONE;

		if (phases && step % 997 == 0) /* one side much faster than the other, or balanced */
			bias = (uint32_t[]){ 5, 50, 95, 30, 70 }[rng_next(r) % 5];
		if (!can_tx && !can_rx)
			return;
		if (can_tx && (!can_rx || rng_range(r, 1, 100) <= bias))
			model_tx_step(m, r);
		else
			model_rx_step(m, r);
		CHECK_OK();
		why = model_lost(m);
		if (why) {
			m->lost = 1;
			CHECK(0, "lost wakeup at step %u: %s (sender state %d, receiver state %d, %u in flight)", step,
			      why, m->ts, m->rs, ivc_tx_in_flight(&m->tx, m->s.c));
		}
	}
}

static void model_run(struct model *m, uint32_t n, uint32_t cs, uint64_t seed, uint32_t start, uint32_t steps)
{
	struct rng r = { seed };

	sim_new(&m->s, n, cs, 1);
	start_at(&m->s, &m->tx, &m->rx, start);
	m->ts = m->rs = S_RUN;
	m->limit = UINT64_MAX;
	model_steps(m, &r, steps, 1);
	CHECK_OK();
	/* the sender stops; everything it sent must arrive */
	m->limit = m->spos;
	model_steps(m, &r, 10u * steps, 0);
	CHECK_OK();
	CHECK(m->ts == S_DONE, "sender state %d at the end", m->ts);
	CHECK(m->rs == S_DONE || m->rs == S_ASLEEP, "receiver state %d at the end", m->rs);
	CHECK(m->rpos == m->spos, "received %" PRIu64 " of %" PRIu64 " bytes", m->rpos, m->spos);
	CHECK_EQ(ivc_tx_in_flight(&m->tx, m->s.c), 0);
}

static void model_test(uint32_t n, uint32_t cs)
{
	static const uint32_t starts[] = { 0, 0xFFFFFFFFu - 3000, 0x7FFFFFFFu };
	static const uint32_t fail[] = { 0, 0, 30 };
	struct model m;

	for (unsigned i = 0; i < 3; i++) {
		memset(&m, 0, sizeof(m));
		m.fail_pct = fail[i];
		model_run(&m, n, cs, 0x5EED0000u + i * 7919 + n, starts[i], 100000);
		sim_free(&m.s);
		CHECK_OK();
		/* the model is meaningful only if both sides really went to sleep and were woken */
		CHECK(m.sleeps_tx > 100 && m.sleeps_rx > 100 && m.kicks_tx > 100 && m.kicks_rx > 100,
		      "too few sleeps: tx %" PRIu64 " rx %" PRIu64 ", kicks tx %" PRIu64 " rx %" PRIu64, m.sleeps_tx,
		      m.sleeps_rx, m.kicks_tx, m.kicks_rx);
		CHECK(m.spos > 100000u, "only %" PRIu64 " bytes moved", m.spos);
		CHECK(!fail[i] || m.failed_raises > 100, "only %" PRIu64 " raises failed", m.failed_raises);
	}
}

static void test_model_1(void) { model_test(1, 4096); }
static void test_model_2(void) { model_test(2, 4096); }
static void test_model_3(void) { model_test(3, 8192); }
static void test_model_4(void) { model_test(4, 4096); }
static void test_model_11(void) { model_test(11, 4096); }
static void test_model_16(void) { model_test(16, 4096); }

/* the model catches a side that sleeps without checking again after its want bump, and a lost failed raise */
static void test_model_catches_lost_wakeup(void)
{
	static const int skips[] = { SKIP_RX_RECHECK, SKIP_TX_RECHECK, SKIP_PENDING };
	static const char *const what[] = { "receiver that does not check again", "sender that does not check again",
					    "failed raise marked served" };
	/*
	 * A sender that sleeps without its second look is caught only with few channels: with 16, the receiver still
	 * frees the other sealed channels after the sender's bump, and its next need_kick (threshold 2) wakes it.
	 */
	static const uint32_t counts[][3] = { { 1, 4, 16 }, { 1, 2, 4 }, { 1, 4, 16 } };
	struct model m;
	int failed;

	for (unsigned k = 0; k < 3; k++)
		for (unsigned i = 0; i < 3; i++) {
			memset(&m, 0, sizeof(m));
			m.skip = skips[k];
			m.fail_pct = skips[k] == SKIP_PENDING ? 30 : 0;
			model_run(&m, counts[k][i], 4096, 99 + i, 0, 100000);
			sim_free(&m.s);
			failed = t_failed;
			t_failed = 0;
			t_detail[0] = 0;
			CHECK(failed && m.lost, "a %s was not caught with %u channels", what[k], counts[k][i]);
		}
}

/* ---- two threads ---- */

/*
 * The sender appends writes of random sizes (1 byte to three channels) in random pieces, the receiver takes reads of
 * random sizes across channels, as sendmsg / recvmsg do. With `sleep`, each side that finds nothing to do sleeps as
 * the kernel does: want bump, look again, sleep on a futex (the event channel) for at most a slice; the other side
 * raises the event (bumps the word, FUTEX_WAKE) when need_kick says so and marks it served. A sleep that ends by its
 * slice while there was news, and no event came in a second slice either, is a lost wakeup. Without `sleep`, both
 * sides poll (sched_yield).
 */
#define STRESS_SLICE_NS 200000000L

struct stress {
	struct sim s;
	uint64_t total;
	uint64_t seed;
	int sleep;
	volatile int stop;
	int tx_err, rx_err;
	char rx_msg[200];
	uint64_t received, channels;
	uint64_t committed; /* bytes the sender committed, for the lost-wakeup oracle */
	uint64_t sleeps_tx, sleeps_rx, kicks_tx, kicks_rx, lost_tx, lost_rx, seals;
	uint32_t rx_evt __attribute__((aligned(64))); /* EVENT_SEND_DATA: wakes the receiver */
	uint32_t tx_evt __attribute__((aligned(64))); /* EVENT_RECV_GET_DATA: wakes the sender */
	time_t deadline;
};

static void stress_raise(uint32_t *w)
{
	__atomic_add_fetch(w, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* sleeps on *w unless it moved from ev; 1 if the slice ran out */
static int stress_wait(uint32_t *w, uint32_t ev)
{
	struct timespec ts = { 0, STRESS_SLICE_NS };

	return syscall(SYS_futex, w, FUTEX_WAIT, ev, &ts, NULL, 0) < 0 && errno == ETIMEDOUT;
}

/* the sender's news: its next channel free and enough free for the receiver to tell it */
static int stress_tx_news(struct stress *st, struct ivc_tx *tx)
{
	return ivc_tx_writable(tx, st->s.c) && free_channels(&st->s) >= ivc_rx_kick_threshold(st->s.n);
}

/* the receiver's news: bytes committed it has not read, or what ivc_rx_news() says */
static int stress_rx_news(struct stress *st, struct ivc_rx *rx, uint64_t pos)
{
	return __atomic_load_n(&st->committed, __ATOMIC_ACQUIRE) > pos || ivc_rx_news(rx, st->s.c);
}

static int stress_timeout(struct stress *st, int *err)
{
	if (time(NULL) <= st->deadline)
		return 0;
	*err = -100;
	st->stop = 1;
	return 1;
}

static void *stress_tx(void *arg)
{
	struct stress *st = arg;
	struct ivc_tx tx;
	struct rng r = { st->seed };
	uint64_t pos = 0;
	uint8_t *buf = malloc(3 * st->s.cs);
	uint32_t w;

	ivc_tx_init(&tx, st->s.n, st->s.cs, 1);
	while (pos < st->total && !st->stop) {
		uint32_t kind = rng_range(&r, 0, 3), done = 0, msg;

		msg = rng_range(&r, 1, kind == 0 ? 16 : kind == 1 ? 512 : kind == 2 ? st->s.cs : 3 * st->s.cs);
		if (msg > st->total - pos)
			msg = (uint32_t)(st->total - pos);
		pat_fill(buf, pos, msg);
		while (done < msg && !st->stop) {
			uint32_t chan, off, n, k = 0, ev = __atomic_load_n(&st->tx_evt, __ATOMIC_ACQUIRE);
			int64_t room = ivc_tx_room(&tx, st->s.c, &chan, &off);

			if (room == 0 && st->sleep) {
				ivc_tx_want(&tx, st->s.c);
				room = ivc_tx_room(&tx, st->s.c, &chan, &off);
				if (room == 0) {
					st->sleeps_tx++;
					if (stress_wait(&st->tx_evt, ev) && stress_tx_news(st, &tx) &&
					    stress_wait(&st->tx_evt, ev) && stress_tx_news(st, &tx))
						st->lost_tx++;
				}
			}
			if (room < 0) {
				st->tx_err = (int)room;
				st->stop = 1;
				break;
			}
			if (room == 0) {
				if (!stress_timeout(st, &st->tx_err) && !st->sleep)
					sched_yield();
				continue;
			}
			n = MIN(msg - done, (uint32_t)room);
			while (k < n) { /* in random pieces */
				uint32_t page, po, c = ivc_chan_chunk(st->s.cs, chan, off + k, rng_range(&r, 1, n - k),
								      &page, &po);

				memcpy(st->s.data + (size_t)page * IVC_PAGE_SIZE + po, buf + done + k, c);
				k += c;
			}
			ivc_tx_commit(&tx, st->s.c, n);
			__atomic_store_n(&st->committed, pos + done + n, __ATOMIC_RELEASE);
			done += n;
			if (ivc_tx_need_kick(&tx, st->s.c, &w)) {
				stress_raise(&st->rx_evt);
				ivc_tx_kicked(&tx, w);
				st->kicks_tx++;
			}
		}
		pos += done;
		if (rng_range(&r, 0, 15) == 0 && ivc_tx_seal(&tx, st->s.c)) { /* now and then, an early seal */
			st->seals++;
			if (ivc_tx_need_kick(&tx, st->s.c, &w)) {
				stress_raise(&st->rx_evt);
				ivc_tx_kicked(&tx, w);
				st->kicks_tx++;
			}
		}
	}
	/* the end: the last channel sealed, then closed, and one event */
	ivc_tx_seal(&tx, st->s.c);
	IVC_WMB();
	IVC_WRITE(&st->s.c->tx_flags, IVC_TX_CLOSED);
	IVC_MB();
	stress_raise(&st->rx_evt);
	free(buf);
	return NULL;
}

static void *stress_rx(void *arg)
{
	struct stress *st = arg;
	struct ivc_rx rx;
	struct rng r = { st->seed ^ 0xFFFF };
	uint8_t *buf = malloc(3 * st->s.cs);
	uint64_t pos = 0;
	uint32_t w;

	ivc_rx_init(&rx, st->s.n, st->s.cs, 1);
	while (!st->stop) {
		/* one recvmsg: takes what is there, over several channels, up to a random size */
		uint32_t want = rng_range(&r, 1, rng_range(&r, 0, 1) ? 700 : 3 * st->s.cs), got = 0, size, off, chan;
		uint32_t page, po, k, ev;
		int pk = 0;
		uint32_t freed;

		while (got < want && (pk = ivc_rx_peek(&rx, st->s.c, 0, &size)) == 1) {
			uint32_t n = size < want - got ? size : want - got, done = 0;

			chan = ivc_rx_chan(&rx, 0, &off);
			while (done < n) {
				k = ivc_chan_chunk(st->s.cs, chan, off + done, n - done, &page, &po);
				memcpy(buf + got + done, st->s.data + (size_t)page * IVC_PAGE_SIZE + po, k);
				done += k;
			}
			ivc_rx_consume(&rx, st->s.c, n);
			got += n;
		}
		freed = ivc_rx_take_freed(&rx);
		st->channels += freed;
		if (freed && ivc_rx_need_kick(&rx, st->s.c, &w)) {
			stress_raise(&st->tx_evt);
			ivc_rx_kicked(&rx, w);
			st->kicks_rx++;
		}
		if (pk < 0) {
			st->rx_err = pk;
			st->stop = 1;
			break;
		}
		if (got) {
			long bad = pat_mismatch(buf, pos, got);

			if (bad >= 0) {
				snprintf(st->rx_msg, sizeof(st->rx_msg),
					 "byte %" PRIu64 ": got 0x%02x expected 0x%02x", pos + (uint64_t)bad, buf[bad],
					 pat(pos + (uint64_t)bad));
				st->stop = 1;
				break;
			}
			pos += got;
			if (st->sleep) /* the kernel's read re-arm: the next commit raises an event */
				ivc_rx_want(&rx, st->s.c);
			continue;
		}
		if (IVC_READ(&st->s.c->tx_flags) & IVC_TX_CLOSED) {
			int64_t left;

			IVC_RMB();
			left = ivc_rx_ready(&rx, st->s.c);
			if (left == 0 && ivc_rx_news(&rx, st->s.c) == 0)
				break;
			continue;
		}
		if (stress_timeout(st, &st->rx_err))
			break;
		if (!st->sleep) {
			sched_yield();
			continue;
		}
		ev = __atomic_load_n(&st->rx_evt, __ATOMIC_ACQUIRE);
		ivc_rx_want(&rx, st->s.c);
		if (ivc_rx_news(&rx, st->s.c) || (IVC_READ(&st->s.c->tx_flags) & IVC_TX_CLOSED))
			continue;
		st->sleeps_rx++;
		if (stress_wait(&st->rx_evt, ev) && stress_rx_news(st, &rx, pos) && stress_wait(&st->rx_evt, ev) &&
		    stress_rx_news(st, &rx, pos))
			st->lost_rx++;
	}
	st->received = pos;
	free(buf);
	return NULL;
}

static void stress_run(uint32_t n, uint32_t cs, int sleep)
{
	struct stress *st = calloc(1, sizeof(*st));
	pthread_t t1, t2;
	uint32_t in_flight;

	if (!st)
		exit(2);
	sim_new(&st->s, n, cs, 1);
	st->total = 8u << 20;
	st->seed = 0x57E55u * n + cs + (uint64_t)sleep;
	st->sleep = sleep;
	st->deadline = time(NULL) + 30;
	if (pthread_create(&t2, NULL, stress_rx, st) || pthread_create(&t1, NULL, stress_tx, st)) {
		fprintf(stderr, "ring_test: pthread_create\n");
		exit(2);
	}
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	{
		struct ivc_tx any;

		ivc_tx_init(&any, n, cs, 1);
		in_flight = ivc_tx_in_flight(&any, st->s.c);
	}
	sim_free(&st->s);
	struct stress copy = *st;
	free(st);
	CHECK(copy.rx_msg[0] == 0, "%s", copy.rx_msg);
	CHECK(copy.lost_tx == 0 && copy.lost_rx == 0, "lost wakeups: sender %" PRIu64 ", receiver %" PRIu64,
	      copy.lost_tx, copy.lost_rx);
	CHECK(copy.tx_err == 0, "sender: %d%s", copy.tx_err, copy.tx_err == -100 ? " (timeout)" : "");
	CHECK(copy.rx_err == 0, "receiver: %d%s", copy.rx_err, copy.rx_err == -100 ? " (timeout)" : "");
	CHECK_EQ(copy.received, copy.total);
	CHECK_EQ(in_flight, 0);
	CHECK(copy.channels >= copy.total / cs, "only %" PRIu64 " channels", copy.channels);
	CHECK(copy.seals > 2, "only %" PRIu64 " early seals", copy.seals);
	if (sleep) /* the sleeping paths ran */
		CHECK(copy.sleeps_rx + copy.sleeps_tx > 0 && copy.kicks_tx > 5,
		      "slept %" PRIu64 " + %" PRIu64 " times, receiver woken %" PRIu64, copy.sleeps_tx, copy.sleeps_rx,
		      copy.kicks_tx);
}

static void test_stress_1x4k(void) { stress_run(1, 4096, 0); }
static void test_stress_4x4k(void) { stress_run(4, 4096, 0); }
static void test_stress_16x4k(void) { stress_run(16, 4096, 0); }
static void test_stress_1x64k(void) { stress_run(1, 65536, 0); }
static void test_stress_4x64k(void) { stress_run(4, 65536, 0); }
static void test_stress_16x64k(void) { stress_run(16, 65536, 0); }
static void test_sleep_1x4k(void) { stress_run(1, 4096, 1); }
static void test_sleep_4x4k(void) { stress_run(4, 4096, 1); }
static void test_sleep_16x4k(void) { stress_run(16, 4096, 1); }
static void test_sleep_2x8k(void) { stress_run(2, 8192, 1); }
static void test_sleep_4x64k(void) { stress_run(4, 65536, 1); }
static void test_sleep_16x64k(void) { stress_run(16, 65536, 1); }

/* ---- runner ---- */

static const struct {
	const char *name;
	void (*fn)(void);
} tests[] = {
	{ "geometry_ok boundaries", test_geometry_ok },
	{ "data_pages and dir_pages", test_data_dir_pages },
	{ "chan_chunk across pages", test_chan_chunk },
	{ "ctrl_init then ctrl_check", test_ctrl_init_check },
	{ "links: a parked, scribbled control page reset and claimed is a new one", test_ctrl_reset_reuse },
	{ "ctrl_check refuses each bad field", test_ctrl_check_bad },
	{ "full and partial channels, partial reads", test_full_and_partial },
	{ "rx_ready sums, peek ahead does not consume", test_ready_and_peek },
	{ "rx_ready_peek counts as rx_ready and writes nothing", test_ready_peek_readonly },
	{ "rx_poll_news: a channel read to its end, then sealed, is not readable", test_poll_news_sealed_read },
	{ "sender sees channels busy until consumed", test_tx_busy },
	{ "capacity in bytes: n x cs one-byte writes, exactly", test_capacity_bytes },
	{ "packing: small writes share one channel", test_packing },
	{ "reading an open channel while the sender appends", test_read_while_appending },
	{ "early seal, empty seal reverts gen_num, abort, late seal released", test_seal },
	{ "gen_num wrap, 1 channel", test_wrap_1 },
	{ "gen_num wrap, 3 channels", test_wrap_3 },
	{ "gen_num wrap, 4 channels", test_wrap_4 },
	{ "gen_num wrap, 16 channels", test_wrap_16 },
	{ "gen_num wrap, every start near the edge", test_wrap_edges },
	{ "2 receivers", test_multi_2 },
	{ "3 receivers", test_multi_3 },
	{ "hostile: gen_num rolled back", test_hostile_gen_back },
	{ "hostile: gen_num jumped ahead", test_hostile_gen_ahead },
	{ "hostile: size 0 or > channel_size", test_hostile_size },
	{ "hostile: open channel shrinks, bad sizes and seals, garbage bits 19..30", test_hostile_open_size },
	{ "hostile: pend_read > nr_receivers, receiver side", test_hostile_pend_read_rx },
	{ "hostile: pend_read > nr_receivers, sender side", test_hostile_pend_read_tx },
	{ "hostile: values flipped between peeks", test_hostile_flip },
	{ "detach: consumed + sent again is the stream, every geometry, ending, stop", test_detach_resend_exact },
	{ "detach: positions not sent are refused, boundaries accepted, size words ignored", test_detach_position_bad },
	{ "detach: rx_position at the start, into a channel, after its release", test_rx_position },
	{ "event suppression: tx_need_kick per rx_want bump, pending until kicked", test_kick_tx },
	{ "event suppression: rx_need_kick per tx_want bump, pending until kicked", test_kick_rx },
	{ "event suppression: the receiver's kick threshold", test_kick_threshold },
	{ "want counters bumped from two threads lose nothing", test_want_atomic },
	{ "interleaving model, 1 channel", test_model_1 },
	{ "interleaving model, 2 channels", test_model_2 },
	{ "interleaving model, 3 channels", test_model_3 },
	{ "interleaving model, 4 channels", test_model_4 },
	{ "interleaving model, 11 channels", test_model_11 },
	{ "interleaving model, 16 channels", test_model_16 },
	{ "interleaving model catches lost wakeups (self-test)", test_model_catches_lost_wakeup },
	{ "two threads polling, 1 x 4 KiB", test_stress_1x4k },
	{ "two threads polling, 4 x 4 KiB", test_stress_4x4k },
	{ "two threads polling, 16 x 4 KiB", test_stress_16x4k },
	{ "two threads polling, 1 x 64 KiB", test_stress_1x64k },
	{ "two threads polling, 4 x 64 KiB", test_stress_4x64k },
	{ "two threads polling, 16 x 64 KiB", test_stress_16x64k },
	{ "two threads sleeping, 1 x 4 KiB", test_sleep_1x4k },
	{ "two threads sleeping, 4 x 4 KiB", test_sleep_4x4k },
	{ "two threads sleeping, 16 x 4 KiB", test_sleep_16x4k },
	{ "two threads sleeping, 2 x 8 KiB", test_sleep_2x8k },
	{ "two threads sleeping, 4 x 64 KiB", test_sleep_4x64k },
	{ "two threads sleeping, 16 x 64 KiB", test_sleep_16x64k },
};

int main(void)
{
	unsigned passed = 0, failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (unsigned i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		t_failed = 0;
		t_detail[0] = 0;
		tests[i].fn();
		for (unsigned k = 0; k < 16; k++) {
			free(live[k].c);
			free(live[k].data);
			live[k].c = live[k].data = NULL;
		}
		if (t_failed) {
			printf("not ok %u - %s: %s\n", i + 1, tests[i].name, t_detail);
			failed++;
		} else {
			printf("ok %u - %s\n", i + 1, tests[i].name);
			passed++;
		}
	}
	printf("ring: %u passed, %u failed\n", passed, failed);
	return failed ? 1 : 0;
}
