/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * ivc_ring.h: the tunnel's shared layout and the channel protocol of fast-IVC (thesis 3.4.5), with no kernel
 * dependency so the same code is unit-tested on the host (guest-kmod/tests/ring_test.c).
 *
 * A tunnel carries one direction of one TCP connection. It is made of pages the sender allocates, zeroes and
 * grants to the receiver's domain:
 *   - the control page (struct ivc_ctrl): tunnel geometry, the sender's flags, the receiver's state and one header
 *     per channel (gen_num, size, pend_read), each field group on its own cache line;
 *   - directory pages: the grant references of the data pages, IVC_DIR_ENTRIES per page;
 *   - the data pages: nr_channels channels of channel_size bytes, channel c at data page c * (channel_size / 4096).
 * The control page and directory pages are named in the DEM's EVENT_CREATE_TUNNEL (gref[0] = control page,
 * gref[1..] = directory pages); the data pages are granted read-only.
 *
 * Channel protocol, exactly the thesis' gen_num / size / pend_read:
 *   sender:   waits until the next channel (round robin) has pend_read == 0, writes gen_num = ++seq, copies the data,
 *             writes size, then (write barrier) pend_read = number of receivers: the channel is published and
 *             locked until every receiver has read it.
 *   receiver: keeps wait_gen, the next generation it expects. The channel it waits on is ready when
 *             gen_num == wait_gen and pend_read != 0; it reads size bytes (possibly over several reads), then
 *             decrements pend_read; the receiver that takes it to zero tells the sender (EVENT_RECV_GET_DATA).
 * Channels are initialised as if a previous round had run (channel c holds gen_num c + 1 - nr_channels), so the
 * receiver can always tell "not yet written" (gen_num == wait_gen - nr_channels) from a header the peer broke.
 *
 * Event suppression: a side that is about to sleep bumps its *_want counter (rx_want: "tell me when you publish",
 * tx_want: "tell me when you free a channel"), issues a full barrier and checks again. The other side raises the
 * event after its next publish / free only if the counter changed since it last raised for it, so a busy tunnel
 * runs without any event and a sleeping side is always woken.
 *
 * Hostile peers: every field the peer can write is read once (IVC_READ) into a local, checked against local state
 * the peer cannot write (wait_gen, nr_channels, channel_size, nr_receivers), and only the checked copy is used. A
 * violation returns a negative IVC_E* code; the caller breaks that one tunnel.
 *
 * The includer may define IVC_READ, IVC_WRITE, IVC_RMB, IVC_WMB, IVC_MB and IVC_ATOMIC_DEC_RETURN; the kernel
 * versions are used under __KERNEL__, GCC atomics otherwise.
 */
#ifndef FASTIVC_IVC_RING_H
#define FASTIVC_IVC_RING_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/compiler.h>
#include <asm/barrier.h>
#include <linux/atomic.h>
#ifndef IVC_READ
#define IVC_READ(p)            READ_ONCE(*(p))
#define IVC_WRITE(p, v)        WRITE_ONCE(*(p), (v))
#define IVC_RMB()              virt_rmb()
#define IVC_WMB()              virt_wmb()
#define IVC_MB()               virt_mb()
/* pend_read lives in a page shared with another domain: a locked decrement is atomic across domains too. */
#define IVC_ATOMIC_DEC_RETURN(p) ((uint32_t)atomic_dec_return((atomic_t *)(p)))
#endif
#else
#include <stdint.h>
#include <stddef.h>
#ifndef IVC_READ
#define IVC_READ(p)            __atomic_load_n((p), __ATOMIC_RELAXED)
#define IVC_WRITE(p, v)        __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define IVC_RMB()              __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define IVC_WMB()              __atomic_thread_fence(__ATOMIC_RELEASE)
#define IVC_MB()               __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define IVC_ATOMIC_DEC_RETURN(p) __atomic_sub_fetch((p), 1, __ATOMIC_SEQ_CST)
#endif
#endif

#define IVC_PAGE_SIZE          4096u
#define IVC_MAGIC              0x31435649u /* "IVC1" little-endian */
#define IVC_LAYOUT_VERSION     1u

/* Geometry limits: the DEM's (public/evtmgr.h XEN_EVTMGR_MAX_CHANNELS etc.), repeated so this header stands alone. */
#define IVC_MAX_CHANNELS       16u          /* channel headers in the control page */
#define IVC_MIN_CHANNEL_SIZE   4096u        /* a page: channels are page aligned so data pages can be granted RO */
#define IVC_MAX_CHANNEL_SIZE   (256u << 10) /* 16 x 256 KiB = 4 MiB, 1024 grants per tunnel at most */
#define IVC_DIR_ENTRIES        (IVC_PAGE_SIZE / 4u) /* grant references per directory page */
#define IVC_MAX_DATA_PAGES     (IVC_MAX_CHANNELS * (IVC_MAX_CHANNEL_SIZE / IVC_PAGE_SIZE))
#define IVC_MAX_DIR_PAGES      ((IVC_MAX_DATA_PAGES + IVC_DIR_ENTRIES - 1) / IVC_DIR_ENTRIES)
/* TCP has exactly one receiver per direction; the protocol (and its tests) allow more, as the thesis does. */
#define IVC_MAX_RECEIVERS      8u

/* ivc_ctrl.tx_flags, written by the sender only */
#define IVC_TX_SWITCHED        (1u << 0) /* data after TCP sequence switch_seq travels in the tunnel */
#define IVC_TX_CLOSED          (1u << 1) /* the sender will publish nothing more */
#define IVC_TX_REVERTED        (1u << 2) /* every channel was consumed; data continues on TCP */

/* ivc_ctrl.rx_state, written by the receiver only */
#define IVC_RX_NONE            0u
#define IVC_RX_MAPPED          1u /* the receiver mapped the tunnel and accepts it */
#define IVC_RX_CLOSED          2u /* the receiver unmapped it */

/* Violations, returned negative. The caller breaks the tunnel and counts the code. */
#define IVC_E_GEN              1  /* gen_num neither the expected nor the previous round's */
#define IVC_E_SIZE             2  /* size 0 or larger than the channel */
#define IVC_E_PEND_READ        3  /* pend_read larger than the number of receivers */
#define IVC_E_LAYOUT           4  /* control page disagrees with the geometry the DEM carried */

struct ivc_chan_hdr {
	uint32_t gen_num;   /* generation of the data in the channel; sender writes */
	uint32_t size;      /* bytes of data in the channel; sender writes */
	uint32_t pend_read; /* receivers that have not finished reading it; sender sets, receivers decrement */
	uint32_t pad[13];
};

struct ivc_ctrl {
	/* cache line 0: written by the sender only */
	uint32_t magic;         /* IVC_MAGIC */
	uint32_t version;       /* IVC_LAYOUT_VERSION */
	uint32_t nr_channels;
	uint32_t channel_size;
	uint32_t nr_data_pages; /* nr_channels * channel_size / 4096 */
	uint32_t nr_receivers;  /* what the sender writes into pend_read */
	uint32_t tx_flags;      /* IVC_TX_* */
	uint32_t switch_seq;    /* TCP sequence number of the first byte carried by the tunnel (with IVC_TX_SWITCHED) */
	uint32_t tx_want;       /* bumped by a sender about to wait for a free channel */
	uint32_t pad0[7];
	/* cache line 1: written by the receiver only */
	uint32_t rx_state;      /* IVC_RX_* */
	uint32_t rx_want;       /* bumped by a receiver about to wait for data */
	uint32_t pad1[14];
	/* cache lines 2..17 */
	struct ivc_chan_hdr chan[IVC_MAX_CHANNELS];
};

#ifdef __KERNEL__
static_assert(sizeof(struct ivc_chan_hdr) == 64);
static_assert(sizeof(struct ivc_ctrl) == 18 * 64);
#else
_Static_assert(sizeof(struct ivc_chan_hdr) == 64, "channel header is one cache line");
_Static_assert(sizeof(struct ivc_ctrl) == 18 * 64, "control page layout");
#endif

/* Is (nr_channels, channel_size) a geometry a tunnel may have? */
static inline int ivc_geometry_ok(uint32_t nr_channels, uint32_t channel_size)
{
	return nr_channels >= 1 && nr_channels <= IVC_MAX_CHANNELS && channel_size >= IVC_MIN_CHANNEL_SIZE &&
	       channel_size <= IVC_MAX_CHANNEL_SIZE && channel_size % IVC_PAGE_SIZE == 0;
}

static inline uint32_t ivc_data_pages(uint32_t nr_channels, uint32_t channel_size)
{
	return nr_channels * (channel_size / IVC_PAGE_SIZE);
}

static inline uint32_t ivc_dir_pages(uint32_t nr_data_pages)
{
	return (nr_data_pages + IVC_DIR_ENTRIES - 1) / IVC_DIR_ENTRIES;
}

/*
 * Where byte `off` of channel `chan` lives: data page index and offset in it; returns how many of `len` bytes can
 * be copied there before the page ends.
 */
static inline uint32_t ivc_chan_chunk(uint32_t channel_size, uint32_t chan, uint32_t off, uint32_t len,
				      uint32_t *page, uint32_t *page_off)
{
	uint32_t in_page;

	*page = chan * (channel_size / IVC_PAGE_SIZE) + off / IVC_PAGE_SIZE;
	*page_off = off % IVC_PAGE_SIZE;
	in_page = IVC_PAGE_SIZE - *page_off;
	return len < in_page ? len : in_page;
}

/* The sender fills a fresh, zeroed control page before granting it. */
static inline void ivc_ctrl_init(struct ivc_ctrl *c, uint32_t nr_channels, uint32_t channel_size,
				 uint32_t nr_receivers)
{
	uint32_t i;

	c->magic = IVC_MAGIC;
	c->version = IVC_LAYOUT_VERSION;
	c->nr_channels = nr_channels;
	c->channel_size = channel_size;
	c->nr_data_pages = ivc_data_pages(nr_channels, channel_size);
	c->nr_receivers = nr_receivers;
	for (i = 0; i < nr_channels; i++)
		c->chan[i].gen_num = i + 1u - nr_channels; /* "the previous round", see the top of this file */
}

/* The receiver checks the control page against the geometry the DEM carried; fields read once. */
static inline int ivc_ctrl_check(const struct ivc_ctrl *c, uint32_t nr_channels, uint32_t channel_size,
				 uint32_t *nr_receivers)
{
	uint32_t magic = IVC_READ(&c->magic), version = IVC_READ(&c->version);
	uint32_t n = IVC_READ(&c->nr_channels), s = IVC_READ(&c->channel_size);
	uint32_t pages = IVC_READ(&c->nr_data_pages), r = IVC_READ(&c->nr_receivers);

	if (magic != IVC_MAGIC || version != IVC_LAYOUT_VERSION || n != nr_channels || s != channel_size ||
	    !ivc_geometry_ok(n, s) || pages != ivc_data_pages(n, s) || r < 1 || r > IVC_MAX_RECEIVERS)
		return -IVC_E_LAYOUT;
	*nr_receivers = r;
	return 0;
}

/* ---- sender ---- */

struct ivc_tx {
	uint32_t nr_channels, channel_size, nr_receivers;
	uint32_t seq;        /* generation of the last channel published */
	uint32_t idx;        /* channel to fill next */
	uint32_t want;       /* the tx_want value we last wrote */
	uint32_t kicked;     /* the receiver's rx_want value we last raised EVENT_SEND_DATA for */
};

static inline void ivc_tx_init(struct ivc_tx *tx, uint32_t nr_channels, uint32_t channel_size,
			       uint32_t nr_receivers)
{
	tx->nr_channels = nr_channels;
	tx->channel_size = channel_size;
	tx->nr_receivers = nr_receivers;
	tx->seq = 0;
	tx->idx = 0;
	tx->want = 0;
	tx->kicked = 0;
}

/* 1 if the next channel may be filled, 0 if receivers still hold it, negative on a violation. */
static inline int ivc_tx_free(const struct ivc_tx *tx, struct ivc_ctrl *c)
{
	uint32_t pr = IVC_READ(&c->chan[tx->idx].pend_read);

	if (pr > tx->nr_receivers)
		return -IVC_E_PEND_READ;
	if (pr != 0)
		return 0;
	IVC_MB(); /* the receivers' reads of the old data happen before our writes of the new */
	return 1;
}

/* Starts filling the free channel: writes its gen_num (before any data, as in the thesis). Returns its index. */
static inline uint32_t ivc_tx_begin(const struct ivc_tx *tx, struct ivc_ctrl *c)
{
	IVC_WRITE(&c->chan[tx->idx].gen_num, tx->seq + 1u);
	return tx->idx;
}

/* Publishes the channel being filled with `size` bytes (1..channel_size) and moves to the next one. */
static inline void ivc_tx_publish(struct ivc_tx *tx, struct ivc_ctrl *c, uint32_t size)
{
	struct ivc_chan_hdr *h = &c->chan[tx->idx];

	IVC_WRITE(&h->size, size);
	IVC_WMB(); /* data, gen_num and size before pend_read */
	IVC_WRITE(&h->pend_read, tx->nr_receivers);
	tx->seq++;
	tx->idx = tx->idx + 1 == tx->nr_channels ? 0 : tx->idx + 1;
}

/* After publishing: should EVENT_SEND_DATA be raised? (a receiver went to sleep since the last one) */
static inline int ivc_tx_need_kick(struct ivc_tx *tx, struct ivc_ctrl *c)
{
	uint32_t w;

	IVC_MB(); /* publish before reading rx_want; pairs with ivc_rx_want() */
	w = IVC_READ(&c->rx_want);
	if (w == tx->kicked)
		return 0;
	tx->kicked = w;
	return 1;
}

/* About to wait for a free channel: ask for EVENT_RECV_GET_DATA. The caller checks ivc_tx_free() again after. */
static inline void ivc_tx_want(struct ivc_tx *tx, struct ivc_ctrl *c)
{
	/* incremented from the shared value: poll() bumps it too, without the socket lock */
	tx->want = IVC_READ(&c->tx_want) + 1u;
	IVC_WRITE(&c->tx_want, tx->want);
	IVC_MB();
}

/* Gives up the channel ivc_tx_begin() started (nothing could be copied): back to the previous round's gen_num. */
static inline void ivc_tx_abort(const struct ivc_tx *tx, struct ivc_ctrl *c)
{
	IVC_WRITE(&c->chan[tx->idx].gen_num, tx->seq + 1u - tx->nr_channels);
}

/* Channels published and not yet freed by the receivers (what a sender may still have in flight). */
static inline uint32_t ivc_tx_in_flight(const struct ivc_tx *tx, struct ivc_ctrl *c)
{
	uint32_t i, n = 0;

	for (i = 0; i < tx->nr_channels; i++)
		if (IVC_READ(&c->chan[i].pend_read) != 0)
			n++;
	return n;
}

/* ---- receiver ---- */

struct ivc_rx {
	uint32_t nr_channels, channel_size, nr_receivers;
	uint32_t wait_gen;   /* generation expected next */
	uint32_t idx;        /* channel holding wait_gen */
	uint32_t off;        /* bytes of the current channel already consumed */
	uint32_t size;       /* checked size of the current channel, valid while have != 0 */
	uint32_t have;       /* the current channel was found ready and checked */
	uint32_t want;       /* the rx_want value we last wrote */
	uint32_t kicked;     /* the sender's tx_want value we last raised EVENT_RECV_GET_DATA for */
};

static inline void ivc_rx_init(struct ivc_rx *rx, uint32_t nr_channels, uint32_t channel_size,
			       uint32_t nr_receivers)
{
	rx->nr_channels = nr_channels;
	rx->channel_size = channel_size;
	rx->nr_receivers = nr_receivers;
	rx->wait_gen = 1;
	rx->idx = 0;
	rx->off = 0;
	rx->size = 0;
	rx->have = 0;
	rx->want = 0;
	rx->kicked = 0;
}

/*
 * State of the channel `ahead` channels after the current one (0 = the current one): 1 and *size if it is
 * published (for ahead == 0 *size is what is left to read), 0 if not yet, negative on a violation. Does not consume.
 */
static inline int ivc_rx_peek(struct ivc_rx *rx, struct ivc_ctrl *c, uint32_t ahead, uint32_t *size)
{
	uint32_t idx, gen, pr, sz;

	if (ahead >= rx->nr_channels)
		return 0;
	if (ahead == 0 && rx->have) {
		*size = rx->size - rx->off;
		return 1;
	}
	idx = (rx->idx + ahead) % rx->nr_channels;
	gen = IVC_READ(&c->chan[idx].gen_num);
	IVC_RMB(); /* gen_num before pend_read: never pair a new gen_num with an older round's pend_read */
	pr = IVC_READ(&c->chan[idx].pend_read);
	if (gen == rx->wait_gen + ahead - rx->nr_channels)
		return 0; /* the previous round: not written yet */
	if (gen != rx->wait_gen + ahead)
		return -IVC_E_GEN;
	if (pr == 0)
		return 0; /* being filled */
	if (pr > rx->nr_receivers)
		return -IVC_E_PEND_READ;
	IVC_RMB(); /* pend_read before size and data; pairs with the write barrier in ivc_tx_publish() */
	sz = IVC_READ(&c->chan[idx].size);
	if (sz == 0 || sz > rx->channel_size)
		return -IVC_E_SIZE;
	if (ahead == 0) {
		rx->have = 1;
		rx->size = sz;
		rx->off = 0;
	}
	*size = sz;
	return 1;
}

/* Index of the channel `ahead` after the current one, and the offset reading starts at. */
static inline uint32_t ivc_rx_chan(const struct ivc_rx *rx, uint32_t ahead, uint32_t *off)
{
	*off = ahead == 0 ? rx->off : 0;
	return (rx->idx + ahead) % rx->nr_channels;
}

/*
 * Bytes ready to read now (all published channels, at most nr_channels), or a violation. Checks the current
 * channel (ivc_rx_peek with ahead 0) first.
 */
static inline int64_t ivc_rx_ready(struct ivc_rx *rx, struct ivc_ctrl *c)
{
	uint32_t ahead, sz;
	int64_t total = 0;
	int r;

	for (ahead = 0; ahead < rx->nr_channels; ahead++) {
		r = ivc_rx_peek(rx, c, ahead, &sz);
		if (r < 0)
			return r;
		if (r == 0)
			break;
		total += sz;
	}
	return total;
}

/*
 * Consumes n bytes of the current channel (which ivc_rx_peek found ready; n <= what it reported). When the channel
 * is used up, decrements pend_read and moves on; returns 1 if this receiver freed the channel (pend_read reached
 * zero: the sender may reuse it), 0 otherwise.
 */
static inline int ivc_rx_consume(struct ivc_rx *rx, struct ivc_ctrl *c, uint32_t n)
{
	uint32_t left;

	rx->off += n;
	if (rx->off < rx->size)
		return 0;
	IVC_MB(); /* our reads of the data before the sender may overwrite it */
	left = IVC_ATOMIC_DEC_RETURN(&c->chan[rx->idx].pend_read);
	rx->wait_gen++;
	rx->idx = rx->idx + 1 == rx->nr_channels ? 0 : rx->idx + 1;
	rx->off = 0;
	rx->size = 0;
	rx->have = 0;
	return left == 0;
}

/* After freeing a channel: should EVENT_RECV_GET_DATA be raised? (the sender went to wait since the last one) */
static inline int ivc_rx_need_kick(struct ivc_rx *rx, struct ivc_ctrl *c)
{
	uint32_t w;

	IVC_MB();
	w = IVC_READ(&c->tx_want);
	if (w == rx->kicked)
		return 0;
	rx->kicked = w;
	return 1;
}

/* About to wait for data: ask for EVENT_SEND_DATA. The caller checks ivc_rx_peek() again after. */
static inline void ivc_rx_want(struct ivc_rx *rx, struct ivc_ctrl *c)
{
	/* incremented from the shared value: poll() bumps it too, without the socket lock */
	rx->want = IVC_READ(&c->rx_want) + 1u;
	IVC_WRITE(&c->rx_want, rx->want);
	IVC_MB();
}

/*
 * Lock-free readiness for poll and wake-up conditions: 1 if the current channel has news for the owner (published,
 * or a value the owner must look at under the lock), 0 if not. Changes nothing.
 */
static inline int ivc_rx_news(const struct ivc_rx *rx, const struct ivc_ctrl *c)
{
	uint32_t gen, pr;

	if (IVC_READ(&rx->have))
		return 1;
	gen = IVC_READ(&c->chan[rx->idx].gen_num);
	pr = IVC_READ(&c->chan[rx->idx].pend_read);
	if (gen == rx->wait_gen - rx->nr_channels)
		return 0;
	return gen != rx->wait_gen || pr != 0;
}

#endif /* FASTIVC_IVC_RING_H */
