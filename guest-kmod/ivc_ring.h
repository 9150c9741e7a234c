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
 * Channel protocol (layout version 2): the thesis' gen_num / size / pend_read, with channels filled by bytes, not
 * by calls. A tunnel holds nr_channels x channel_size bytes whatever the sizes of the writes.
 *   open      the sender takes channel idx (round robin) once its pend_read is 0, and writes gen_num = seq + 1
 *             before any data. The channel is invisible until its first bytes are committed.
 *   fill      each write appends at `fill`: data, write barrier, size = fill. The first commit then (write barrier)
 *             sets pend_read = number of receivers: the channel is published. Later writes keep appending to the
 *             same channel, so consecutive small writes share it (packing, as TCP's autocorking does while the
 *             reader is busy), and a reader already in the channel sees each new size at once.
 *   seal      size gets IVC_SIZE_SEALED when the channel is full (in the same write as its last size), or when the
 *             sender must end it early (ivc_tx_seal: before reverting to TCP). The sealed size is final; only then
 *             does the sender move to the next channel.
 *   read      the receiver keeps wait_gen, the generation expected next. Its channel is published when gen_num ==
 *             wait_gen and pend_read != 0. It reads size (once per look; an open channel's size may only grow),
 *             then the bytes between its offset and size, possibly while the sender still appends after them.
 *   free      once the channel is sealed and read to its sealed size, the receiver decrements pend_read; the
 *             receiver that takes it to zero gives the channel back to the sender (EVENT_RECV_GET_DATA if asked).
 * A channel is in one state at a time: free (pend_read 0, previous round's gen_num), begun (new gen_num,
 * pend_read 0), open (pend_read set, size < channel_size, no seal), sealed (seal set); nothing is written to a
 * channel's data below its size while pend_read != 0. Channels are initialised as if a previous round had run
 * (channel c holds gen_num c + 1 - nr_channels), so the receiver can always tell "not yet written" (gen_num ==
 * wait_gen - nr_channels) from a header the peer broke.
 *
 * Event suppression: a side that is about to sleep increments its *_want counter atomically (rx_want: "tell me
 * when you publish", tx_want: "tell me when you free room"), issues a full barrier and checks again. The other side
 * raises the event after its next commit / free only if the counter changed since its last raise that succeeded: a
 * raise that fails leaves the request pending, so the next commit or free (or the SEM's tick) retries it. A busy
 * tunnel runs without any event and a sleeping side is always woken. The receiver tells a waiting sender only once
 * a tenth of the channels is free (ivc_rx_kick_threshold), as SMC does with 10% of its buffer.
 *
 * Detach (layout version 3): a direction leaves its tunnel without waiting for the reader, before its domain
 * suspends (save, migration), with nothing lost or reordered. The receiver writes the position up to which its
 * application consumed, (rx_gen, rx_off) = the generation it waits for and the bytes of that channel it took
 * (ivc_rx_position), then IVC_RX_DETACHED, and unmaps. The sender stops writing and sends everything it committed
 * after that position again, on TCP, from its own pages (ivc_tx_resend_next): at TCP sequence switch_seq, where the
 * channels' bytes sit in the stream, since nothing went to TCP while the tunnel was open. The receiver reads on
 * from TCP. A sender about to suspend asks for the detach with IVC_TX_DETACH. One receiver per tunnel (TCP). A
 * position the sender did not send is a violation (IVC_E_POSITION); a receiver that claims less than it took only
 * gets bytes twice, a receiver that claims more loses them: either way only its own connection. Once the sender's
 * FIN is on TCP (IVC_TX_FIN, IVC_TX_CLOSED) nothing can be sent again after it: a detach that leaves unread bytes
 * then resets the connection instead.
 *
 * Links (layout version 4): a tunnel outlives its connection, so that the next connection between the same two
 * domains costs no grant, map or unmap. A receiver done with a connection writes IVC_RX_PARKING instead of
 * IVC_RX_CLOSED, keeps the pages mapped and, once its own lock-free readers are done with them, IVC_RX_PARKED. A sender done with it, once it reads IVC_RX_PARKED, zeroes the bytes it
 * wrote, resets its fields (ivc_ctrl_reset) and keeps the grants. The next connection's sender claims the tunnel
 * with an atomic exchange of rx_state from IVC_RX_PARKED to IVC_RX_NONE and offers it in EVENT_CREATE_TUNNEL with the
 * same grant references; the receiver finds it mapped already. Either side may end the arrangement, and the exchange
 * decides races: the receiver gives a tunnel back by exchanging IVC_RX_PARKED for IVC_RX_CLOSED before it unmaps
 * (failing if the sender claimed it: that CREATE is on its way); the sender asks for it back with IVC_TX_EVICT and
 * ends its grants once the receiver unmapped (and sets it on any tunnel it will not reuse, so that its receiver does
 * not park it). A sender that switched at its first byte, before the receiver took the tunnel (sock.c tx_early_ok),
 * takes it back with an exchange from IVC_RX_NONE to IVC_RX_CLOSED; the receiver takes it with one from IVC_RX_NONE
 * to IVC_RX_ACCEPTED. Nothing the peer writes here can make us hold more than our quota.
 *
 * Hostile peers: every field the peer can write is read once (IVC_READ) into a local, checked against local state
 * the peer cannot write (wait_gen, nr_channels, channel_size, nr_receivers), and only the checked copy is used. A
 * violation returns a negative IVC_E* code; the caller breaks that one tunnel.
 *
 * The includer may define IVC_READ, IVC_WRITE, IVC_RMB, IVC_WMB, IVC_MB, IVC_ATOMIC_DEC_RETURN and IVC_ATOMIC_INC; the kernel
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
#define IVC_ATOMIC_INC(p)      atomic_inc((atomic_t *)(p))
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
#define IVC_ATOMIC_INC(p)      ((void)__atomic_add_fetch((p), 1, __ATOMIC_SEQ_CST))
#endif
#endif

#define IVC_PAGE_SIZE          4096u
#define IVC_MAGIC              0x31435649u /* "IVC1" little-endian */
#define IVC_LAYOUT_VERSION     4u /* 2: channels fill by bytes (open, sealed); 3: detach (rx_gen, rx_off); 4: links
				      (IVC_RX_PARKED, IVC_TX_EVICT, ivc_ctrl_reset) */

/* Geometry limits: the DEM's (public/evtmgr.h XEN_EVTMGR_MAX_CHANNELS etc.), repeated so this header stands alone. */
#define IVC_MAX_CHANNELS       16u          /* channel headers in the control page */
#define IVC_MIN_CHANNEL_SIZE   4096u        /* a page: channels are page aligned so data pages can be granted RO */
#define IVC_MAX_CHANNEL_SIZE   (256u << 10) /* 16 x 256 KiB = 4 MiB, 1024 grants per tunnel at most */
#define IVC_DIR_ENTRIES        (IVC_PAGE_SIZE / 4u) /* grant references per directory page */
#define IVC_MAX_DATA_PAGES     (IVC_MAX_CHANNELS * (IVC_MAX_CHANNEL_SIZE / IVC_PAGE_SIZE))
#define IVC_MAX_DIR_PAGES      ((IVC_MAX_DATA_PAGES + IVC_DIR_ENTRIES - 1) / IVC_DIR_ENTRIES)
/* TCP has exactly one receiver per direction; the protocol (and its tests) allow more, as the thesis does. */
#define IVC_MAX_RECEIVERS      8u

/* ivc_chan_hdr.size: bytes in the channel (bits 0..30), and the seal (bit 31): the sender appends nothing more */
#define IVC_SIZE_SEALED        (1u << 31)

/* ivc_ctrl.tx_flags, written by the sender only */
#define IVC_TX_SWITCHED        (1u << 0) /* data after TCP sequence switch_seq travels in the tunnel */
#define IVC_TX_CLOSED          (1u << 1) /* the sender will publish nothing more */
#define IVC_TX_REVERTED        (1u << 2) /* every channel was consumed; data continues on TCP */
#define IVC_TX_DETACH          (1u << 3) /* the sender asks the receiver to detach (its domain is about to suspend) */
#define IVC_TX_FIN             (1u << 4) /* the sender shut down its side: its FIN follows the tunnel's bytes on TCP */
#define IVC_TX_EVICT           (1u << 5) /* links: the sender takes this parked tunnel back; the receiver unmaps it */

/* ivc_ctrl.rx_state, written by the receiver only */
#define IVC_RX_NONE            0u
#define IVC_RX_MAPPED          1u /* the receiver mapped the tunnel and accepts it */
#define IVC_RX_CLOSED          2u /* the receiver unmapped it */
#define IVC_RX_ACCEPTED        3u /* mapped and accepted, not readable yet: no read has gone through the module */
#define IVC_RX_DETACHED        4u /* the receiver left having consumed exactly up to (rx_gen, rx_off); the sender
				     sends the rest again on TCP, at switch_seq (see "Detach" above) */
#define IVC_RX_PARKED          5u /* links: the receiver is done with this connection and keeps the tunnel mapped for
				     the pair's next one (see "Links" above); to the sender, as closed */
#define IVC_RX_PARKING         6u /* links: done with the connection, to be parked shortly (IVC_RX_PARKED) or closed;
				     to the sender, as closed, and not yet to be claimed */

/* Violations, returned negative. The caller breaks the tunnel and counts the code. */
#define IVC_E_GEN              1  /* gen_num neither the expected nor the previous round's */
#define IVC_E_SIZE             2  /* size 0, larger than the channel, or shrinking */
#define IVC_E_PEND_READ        3  /* pend_read larger than the number of receivers */
#define IVC_E_LAYOUT           4  /* control page disagrees with the geometry the DEM carried */
#define IVC_E_POSITION         5  /* a detached receiver's position is not one of the bytes sent */

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
	uint32_t rx_gen;        /* with IVC_RX_DETACHED: the generation the receiver waited for ... */
	uint32_t rx_off;        /* ... and the bytes of it the receiver consumed (ivc_rx_position) */
	uint32_t pad1[12];
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

	/* IVC_WRITE: also over a page a peer may write (ivc_ctrl_reset) */
	IVC_WRITE(&c->magic, IVC_MAGIC);
	IVC_WRITE(&c->version, IVC_LAYOUT_VERSION);
	IVC_WRITE(&c->nr_channels, nr_channels);
	IVC_WRITE(&c->channel_size, channel_size);
	IVC_WRITE(&c->nr_data_pages, ivc_data_pages(nr_channels, channel_size));
	IVC_WRITE(&c->nr_receivers, nr_receivers);
	for (i = 0; i < nr_channels; i++)
		IVC_WRITE(&c->chan[i].gen_num, i + 1u - nr_channels); /* "the previous round", see the top of this file */
}

/*
 * Links: the sender makes a parked tunnel new again for the next connection. The sender's fields and every channel
 * header are as ivc_ctrl_init() left them; the receiver's cache line is not touched (the receiver owns it until the
 * sender claims the tunnel, see "Links"). The data the previous connection wrote is the caller's to zero. The
 * geometry comes from the caller's own record, never from the page.
 */
static inline void ivc_ctrl_reset(struct ivc_ctrl *c, uint32_t n, uint32_t channel_size, uint32_t nr_receivers)
{
	uint32_t i;

	/* all of the sender's line again, and every channel header: the receiver may write the whole page */
	IVC_WRITE(&c->tx_flags, 0);
	IVC_WRITE(&c->switch_seq, 0);
	IVC_WRITE(&c->tx_want, 0);
	for (i = 0; i < sizeof(c->pad0) / sizeof(c->pad0[0]); i++)
		IVC_WRITE(&c->pad0[i], 0);
	for (i = 0; i < IVC_MAX_CHANNELS; i++) {
		for (uint32_t k = 0; k < sizeof(c->chan[i].pad) / sizeof(c->chan[i].pad[0]); k++)
			IVC_WRITE(&c->chan[i].pad[k], 0);
		IVC_WRITE(&c->chan[i].size, 0);
		IVC_WRITE(&c->chan[i].pend_read, 0);
		IVC_WRITE(&c->chan[i].gen_num, 0);
	}
	ivc_ctrl_init(c, n, channel_size, nr_receivers); /* the header and the channels' first generation */
}

/* Links: the sender, having claimed a parked tunnel, clears the receiver's words the previous connection left. */
static inline void ivc_ctrl_claimed(struct ivc_ctrl *c)
{
	IVC_WRITE(&c->rx_want, 0);
	IVC_WRITE(&c->rx_gen, 0);
	IVC_WRITE(&c->rx_off, 0);
	for (uint32_t i = 0; i < sizeof(c->pad1) / sizeof(c->pad1[0]); i++)
		IVC_WRITE(&c->pad1[i], 0);
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

/*
 * The sender's state. Channel idx is the one being filled: none yet (fill == 0 and !begun), begun (gen_num written,
 * invisible to receivers) or open (published: pend_read set, size growing). seq is the generation of the last
 * channel sealed.
 */
struct ivc_tx {
	uint32_t nr_channels, channel_size, nr_receivers;
	uint32_t seq;        /* generation of the last channel sealed */
	uint32_t idx;        /* channel being filled, or to fill next */
	uint32_t fill;       /* bytes in channel idx (published when non-zero) */
	uint32_t begun;      /* channel idx has its new gen_num */
	uint32_t kicked;     /* the receiver's rx_want value we last raised EVENT_SEND_DATA for, successfully */
	uint32_t sealed_size[IVC_MAX_CHANNELS]; /* our own record of each channel's final size (the peer can write
						   the control page): what a detach sends again */
};

static inline void ivc_tx_init(struct ivc_tx *tx, uint32_t nr_channels, uint32_t channel_size,
			       uint32_t nr_receivers)
{
	tx->nr_channels = nr_channels;
	tx->channel_size = channel_size;
	tx->nr_receivers = nr_receivers;
	tx->seq = 0;
	tx->idx = 0;
	tx->fill = 0;
	tx->begun = 0;
	tx->kicked = 0;
	for (uint32_t i = 0; i < IVC_MAX_CHANNELS; i++)
		tx->sealed_size[i] = 0;
}

/* 1 if channel idx is free (receivers released it), 0 if they still hold it, negative on a violation. */
static inline int ivc_tx_free(const struct ivc_tx *tx, struct ivc_ctrl *c)
{
	uint32_t pr = IVC_READ(&c->chan[IVC_READ(&tx->idx)].pend_read);

	if (pr > tx->nr_receivers)
		return -IVC_E_PEND_READ;
	if (pr != 0)
		return 0;
	IVC_MB(); /* the receivers' reads of the old data happen before our writes of the new */
	return 1;
}

/*
 * Room to write now: bytes that fit at (*chan, *off), 0 if no channel can take a byte (the next one is still held
 * by receivers), negative on a violation. Opens the next channel when the last one was sealed: writes its gen_num
 * (before any data, as in the thesis); it stays invisible until ivc_tx_commit() publishes it.
 */
static inline int64_t ivc_tx_room(struct ivc_tx *tx, struct ivc_ctrl *c, uint32_t *chan, uint32_t *off)
{
	int r;

	if (!tx->begun) {
		r = ivc_tx_free(tx, c);
		if (r <= 0)
			return r;
		IVC_WRITE(&c->chan[tx->idx].gen_num, tx->seq + 1u);
		tx->begun = 1;
		tx->fill = 0;
	}
	*chan = tx->idx;
	*off = tx->fill;
	return (int64_t)tx->channel_size - tx->fill;
}

/* Moves to the next channel after channel idx was sealed. */
static inline void ivc_tx_next(struct ivc_tx *tx)
{
	tx->seq++;
	tx->idx = tx->idx + 1 == tx->nr_channels ? 0 : tx->idx + 1;
	tx->fill = 0;
	tx->begun = 0;
}

/*
 * Makes n more bytes (1..room, already copied at the place ivc_tx_room() gave) visible to the receivers: the data
 * before the new size, the size before the first pend_read. A channel that is full is sealed with the same write.
 * Returns 1 if that sealed it.
 */
static inline int ivc_tx_commit(struct ivc_tx *tx, struct ivc_ctrl *c, uint32_t n)
{
	struct ivc_chan_hdr *h = &c->chan[tx->idx];
	uint32_t first = tx->fill == 0, full;

	tx->fill += n;
	full = tx->fill == tx->channel_size;
	IVC_WMB(); /* the data before the size that covers it */
	IVC_WRITE(&h->size, tx->fill | (full ? IVC_SIZE_SEALED : 0u));
	if (first) {
		IVC_WMB(); /* gen_num and size before pend_read */
		IVC_WRITE(&h->pend_read, tx->nr_receivers);
	}
	if (!full)
		return 0;
	tx->sealed_size[tx->idx] = tx->fill;
	ivc_tx_next(tx);
	return 1;
}

/*
 * Seals the channel being filled, whatever its fill: the receivers free it once they have read it. A channel begun
 * with nothing committed goes back to the previous round's gen_num. Returns 1 if a channel was sealed.
 */
static inline int ivc_tx_seal(struct ivc_tx *tx, struct ivc_ctrl *c)
{
	if (!tx->begun)
		return 0;
	if (tx->fill == 0) {
		IVC_WRITE(&c->chan[tx->idx].gen_num, tx->seq + 1u - tx->nr_channels);
		tx->begun = 0;
		return 0;
	}
	IVC_WMB();
	IVC_WRITE(&c->chan[tx->idx].size, tx->fill | IVC_SIZE_SEALED);
	tx->sealed_size[tx->idx] = tx->fill;
	ivc_tx_next(tx);
	return 1;
}

/* Gives up a channel ivc_tx_room() opened when nothing could be copied into it (a fault). */
static inline void ivc_tx_abort(struct ivc_tx *tx, struct ivc_ctrl *c)
{
	if (tx->begun && tx->fill == 0)
		ivc_tx_seal(tx, c);
}

/* Lock-free, for poll: could a write make progress now? (room in the open channel, or the next one free) */
static inline int ivc_tx_writable(const struct ivc_tx *tx, struct ivc_ctrl *c)
{
	if (IVC_READ(&tx->begun))
		return 1;
	return ivc_tx_free(tx, c) != 0;
}

/*
 * After a commit or a seal: should EVENT_SEND_DATA be raised? (a receiver asked for one since the last raise that
 * succeeded) Returns 1 and the request's value in *w; the caller passes it to ivc_tx_kicked() once the raise
 * succeeded, so a raise that fails leaves the request pending and the next commit tries again.
 */
static inline int ivc_tx_need_kick(const struct ivc_tx *tx, struct ivc_ctrl *c, uint32_t *w)
{
	IVC_MB(); /* publish before reading rx_want; pairs with ivc_rx_want() */
	*w = IVC_READ(&c->rx_want);
	return *w != tx->kicked;
}

static inline void ivc_tx_kicked(struct ivc_tx *tx, uint32_t w)
{
	tx->kicked = w;
}

/*
 * About to wait for room: ask for EVENT_RECV_GET_DATA. An atomic increment, since a poller bumps it too, without the
 * socket lock: two bumps never merge into one. The caller checks the room again after.
 */
static inline void ivc_tx_want(struct ivc_tx *tx, struct ivc_ctrl *c)
{
	(void)tx;
	IVC_ATOMIC_INC(&c->tx_want);
	IVC_MB();
}

/* Channels published and not yet freed by the receivers (what a sender still has in flight, the open one too). */
static inline uint32_t ivc_tx_in_flight(const struct ivc_tx *tx, struct ivc_ctrl *c)
{
	uint32_t i, n = 0;

	for (i = 0; i < tx->nr_channels; i++)
		if (IVC_READ(&c->chan[i].pend_read) != 0)
			n++;
	return n;
}

/*
 * Bytes the sender committed to the channel of generation gen, from our own record, if that channel still holds it;
 * -1 otherwise. *chan: that channel. They are the current generation seq + 1 (begun or not: 0 bytes if not) and the
 * nr_channels - 1 before it, and, while the current channel is not begun, the one before those too: its channel (idx)
 * still holds it, unread (every channel held, the sender waiting: the reader is there).
 */
static inline int64_t ivc_tx_committed(const struct ivc_tx *tx, uint32_t gen, uint32_t *chan)
{
	uint32_t back = tx->seq + 1u - gen; /* 0: the current channel */

	if (back > tx->nr_channels || (back == tx->nr_channels && tx->begun))
		return -1;
	*chan = (tx->idx + tx->nr_channels - back % tx->nr_channels) % tx->nr_channels;
	if (back == 0)
		return tx->begun ? tx->fill : 0;
	return tx->sealed_size[*chan];
}

/*
 * A detached receiver's position (read once from the control page by the caller): 0 if it is one of the bytes sent
 * (a generation of the last nr_channels, an offset within what that channel holds), -IVC_E_POSITION otherwise.
 */
static inline int ivc_tx_position_ok(const struct ivc_tx *tx, uint32_t gen, uint32_t off)
{
	uint32_t chan;
	int64_t n = ivc_tx_committed(tx, gen, &chan);

	return n >= 0 && off <= n ? 0 : -IVC_E_POSITION;
}

/*
 * The next bytes to send again after a detach, from the cursor (*gen, *off) (a checked position, see
 * ivc_tx_position_ok): 1 with the channel, the offset in it and the length (>= 1), 0 when everything committed has
 * been sent. Skips channels with nothing left; moves the cursor to the start of those bytes. The caller advances
 * *off by what it sent. The sender writes nothing to the tunnel any more, so its state stands still.
 */
static inline int ivc_tx_resend_next(const struct ivc_tx *tx, uint32_t *gen, uint32_t *off, uint32_t *chan,
				     uint32_t *len)
{
	int64_t n;

	for (;;) {
		n = ivc_tx_committed(tx, *gen, chan);
		if (n < 0)
			return 0; /* past the current channel */
		if (*off < n) {
			*len = (uint32_t)n - *off;
			return 1;
		}
		if (*gen == tx->seq + 1u)
			return 0; /* the current channel, all sent */
		(*gen)++;
		*off = 0;
	}
}

/* ---- receiver ---- */

struct ivc_rx {
	uint32_t nr_channels, channel_size, nr_receivers;
	uint32_t wait_gen;   /* generation expected next */
	uint32_t idx;        /* channel holding wait_gen */
	uint32_t off;        /* bytes of the current channel already consumed */
	uint32_t size;       /* checked size of the current channel as last read (never shrinks), valid while have */
	uint32_t sealed;     /* the current channel was seen sealed (its size is final) */
	uint32_t have;       /* the current channel was found published and checked */
	uint32_t freed;      /* channels this receiver freed since ivc_rx_take_freed() */
	uint32_t kicked;     /* the sender's tx_want value we last raised EVENT_RECV_GET_DATA for, successfully */
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
	rx->sealed = 0;
	rx->have = 0;
	rx->freed = 0;
	rx->kicked = 0;
}

/*
 * Is the channel `ahead` after the current one published? 1 if so, 0 if not yet (previous round, or begun and not
 * published), negative on a violation. Reads gen_num then pend_read, once each.
 */
static inline int ivc_rx_published(const struct ivc_rx *rx, struct ivc_ctrl *c, uint32_t ahead)
{
	uint32_t idx = (rx->idx + ahead) % rx->nr_channels, gen, pr;

	gen = IVC_READ(&c->chan[idx].gen_num);
	IVC_RMB(); /* gen_num before pend_read: never pair a new gen_num with an older round's pend_read */
	pr = IVC_READ(&c->chan[idx].pend_read);
	if (gen == rx->wait_gen + ahead - rx->nr_channels)
		return 0; /* the previous round: not written yet */
	if (gen != rx->wait_gen + ahead)
		return -IVC_E_GEN;
	if (pr == 0)
		return 0; /* begun, not published */
	if (pr > rx->nr_receivers)
		return -IVC_E_PEND_READ;
	return 1;
}

/* Reads a published channel's size word once: bytes and seal, checked against the geometry. */
static inline int ivc_rx_size(const struct ivc_rx *rx, struct ivc_ctrl *c, uint32_t idx, uint32_t *bytes,
			      uint32_t *sealed)
{
	uint32_t w;

	IVC_RMB(); /* pend_read (or the previous size) before size, size before the data it covers */
	w = IVC_READ(&c->chan[idx].size);
	*bytes = w & ~IVC_SIZE_SEALED;
	*sealed = !!(w & IVC_SIZE_SEALED);
	if (*bytes == 0 || *bytes > rx->channel_size)
		return -IVC_E_SIZE;
	IVC_RMB();
	return 0;
}

/* Frees the current channel (sealed and read to its end) and moves to the next. Returns 1 if pend_read reached 0. */
static inline int ivc_rx_release(struct ivc_rx *rx, struct ivc_ctrl *c)
{
	uint32_t left;

	IVC_MB(); /* our reads of the data before the sender may overwrite it */
	left = IVC_ATOMIC_DEC_RETURN(&c->chan[rx->idx].pend_read);
	rx->wait_gen++;
	rx->idx = rx->idx + 1 == rx->nr_channels ? 0 : rx->idx + 1;
	rx->off = 0;
	rx->size = 0;
	rx->sealed = 0;
	rx->have = 0;
	if (left == 0)
		rx->freed++;
	return left == 0;
}

/*
 * The current channel's news: 1 and *avail (>= 1 bytes not yet consumed) if it has data, 0 if not yet, negative on a
 * violation. A channel sealed and read to its end is released on the way (ivc_rx_take_freed() says so), so a
 * reader never stops on one. Re-reads the size of an open channel: it must never shrink.
 */
static inline int ivc_rx_current(struct ivc_rx *rx, struct ivc_ctrl *c, uint32_t *avail)
{
	uint32_t bytes, sealed, hops;
	int r;

	for (hops = 0; hops <= rx->nr_channels; hops++) {
		if (!rx->have) {
			r = ivc_rx_published(rx, c, 0);
			if (r <= 0)
				return r;
			rx->have = 1;
			rx->size = 0;
			rx->sealed = 0;
		}
		if (!rx->sealed) {
			r = ivc_rx_size(rx, c, rx->idx, &bytes, &sealed);
			if (r < 0)
				return r;
			if (bytes < rx->size)
				return -IVC_E_SIZE; /* an open channel's size only grows */
			rx->size = bytes;
			rx->sealed = sealed;
		}
		if (rx->off < rx->size) {
			*avail = rx->size - rx->off;
			return 1;
		}
		if (!rx->sealed)
			return 0; /* open, everything read: the sender may append */
		ivc_rx_release(rx, c);
	}
	return 0;
}

/*
 * State of the channel `ahead` channels after the current one (0 = the current one): 1 and *size if it has data to
 * read (for ahead == 0 what is left of it), 0 if not yet, negative on a violation. *sealed (may be NULL) says whether
 * that channel is sealed: only then can the one after it hold data. For ahead > 0 nothing is consumed or cached; the
 * caller asks for `ahead` only after `ahead - 1` was sealed.
 */
static inline int ivc_rx_avail(struct ivc_rx *rx, struct ivc_ctrl *c, uint32_t ahead, uint32_t *size,
			       uint32_t *sealed)
{
	uint32_t idx, sz, s;
	int r;

	if (ahead >= rx->nr_channels)
		return 0;
	if (ahead == 0) {
		r = ivc_rx_current(rx, c, size);
		if (r > 0 && sealed)
			*sealed = rx->sealed;
		return r;
	}
	r = ivc_rx_published(rx, c, ahead);
	if (r <= 0)
		return r;
	idx = (rx->idx + ahead) % rx->nr_channels;
	r = ivc_rx_size(rx, c, idx, &sz, &s);
	if (r < 0)
		return r;
	*size = sz;
	if (sealed)
		*sealed = s;
	return 1;
}

/* ivc_rx_avail() without the seal. */
static inline int ivc_rx_peek(struct ivc_rx *rx, struct ivc_ctrl *c, uint32_t ahead, uint32_t *size)
{
	return ivc_rx_avail(rx, c, ahead, size, NULL);
}

/* Index of the channel `ahead` after the current one, and the offset reading starts at. */
static inline uint32_t ivc_rx_chan(const struct ivc_rx *rx, uint32_t ahead, uint32_t *off)
{
	*off = ahead == 0 ? rx->off : 0;
	return (rx->idx + ahead) % rx->nr_channels;
}

/*
 * Bytes ready to read now: the current channel's rest, then every channel after it while the one before is sealed
 * (at most nr_channels), or a violation.
 */
static inline int64_t ivc_rx_ready(struct ivc_rx *rx, struct ivc_ctrl *c)
{
	uint32_t ahead, sz, sealed = 0;
	int64_t total = 0;
	int r;

	for (ahead = 0; ahead < rx->nr_channels; ahead++) {
		r = ivc_rx_avail(rx, c, ahead, &sz, &sealed);
		if (r < 0)
			return r;
		if (r == 0)
			break;
		total += sz;
		if (!sealed)
			break;
	}
	return total;
}

/*
 * Consumes n bytes of the current channel (n <= what ivc_rx_avail() reported for it). A sealed channel read to its
 * end is released: returns 1 if this receiver freed it (pend_read reached zero: the sender may reuse it), 0
 * otherwise.
 */
static inline int ivc_rx_consume(struct ivc_rx *rx, struct ivc_ctrl *c, uint32_t n)
{
	rx->off += n;
	if (rx->off < rx->size || !rx->sealed)
		return 0;
	return ivc_rx_release(rx, c);
}

/* Channels freed since the last call (by consume, or released on the way by ivc_rx_avail()). */
static inline uint32_t ivc_rx_take_freed(struct ivc_rx *rx)
{
	uint32_t n = rx->freed;

	rx->freed = 0;
	return n;
}

/*
 * How many channels must be free before a waiting sender is told (EVENT_RECV_GET_DATA): a tenth of the tunnel, as
 * SMC (RFC 7609) updates its consumer cursor only once 10% of the buffer is free, and at least one channel. A sender
 * waits only when every channel is sealed, so a reader that keeps reading always frees that many.
 */
static inline uint32_t ivc_rx_kick_threshold(uint32_t nr_channels)
{
	return (nr_channels + 9u) / 10u;
}

/*
 * After freeing channels: should EVENT_RECV_GET_DATA be raised? (the sender asked since the last raise that
 * succeeded, and enough channels are free) Returns 1 and the request's value in *w for ivc_rx_kicked().
 */
static inline int ivc_rx_need_kick(const struct ivc_rx *rx, struct ivc_ctrl *c, uint32_t *w)
{
	uint32_t i, busy = 0;

	IVC_MB();
	*w = IVC_READ(&c->tx_want);
	if (*w == rx->kicked)
		return 0;
	for (i = 0; i < rx->nr_channels; i++)
		if (IVC_READ(&c->chan[i].pend_read) != 0)
			busy++;
	return rx->nr_channels - busy >= ivc_rx_kick_threshold(rx->nr_channels);
}

static inline void ivc_rx_kicked(struct ivc_rx *rx, uint32_t w)
{
	rx->kicked = w;
}

/* What the receiver consumed, for a detach: the generation it waits for and the bytes of it already taken. */
static inline void ivc_rx_position(const struct ivc_rx *rx, uint32_t *gen, uint32_t *off)
{
	*gen = rx->wait_gen;
	*off = rx->have ? rx->off : 0;
}

/* About to wait for data: ask for EVENT_SEND_DATA (atomic, see ivc_tx_want). The caller checks again after. */
static inline void ivc_rx_want(struct ivc_rx *rx, struct ivc_ctrl *c)
{
	(void)rx;
	IVC_ATOMIC_INC(&c->rx_want);
	IVC_MB();
}

/*
 * Lock-free readiness for poll and wake-up conditions: 1 if the current channel has news for the owner (bytes not
 * yet consumed, a seal to act on, or a value the owner must look at under the lock), 0 if not. Changes nothing.
 */
static inline int ivc_rx_news(const struct ivc_rx *rx, const struct ivc_ctrl *c)
{
	uint32_t idx = IVC_READ(&rx->idx), wait_gen = IVC_READ(&rx->wait_gen), gen, pr, w;

	if (IVC_READ(&rx->have)) {
		if (IVC_READ(&rx->sealed))
			return 1; /* the owner releases it on its next look */
		w = IVC_READ(&c->chan[idx].size);
		return (w & ~IVC_SIZE_SEALED) != IVC_READ(&rx->off) || (w & IVC_SIZE_SEALED);
	}
	gen = IVC_READ(&c->chan[idx].gen_num);
	pr = IVC_READ(&c->chan[idx].pend_read);
	if (gen == wait_gen - rx->nr_channels)
		return 0;
	return gen != wait_gen || pr != 0;
}

/*
 * A lock-free estimate of ivc_rx_ready(), for callers that do not own the receiver's state (poll, a wait condition):
 * reads the receiver's cursor once and the channel headers, and writes nothing (ivc_rx_ready() may release a channel
 * read to its end, which only the owner may do). A violation, or a cursor caught while the owner moves it, stops the
 * count: the owner finds and handles a violation on its next look.
 */
static inline int64_t ivc_rx_ready_peek(const struct ivc_rx *rx, const struct ivc_ctrl *c)
{
	uint32_t idx = IVC_READ(&rx->idx), wait_gen = IVC_READ(&rx->wait_gen), off = IVC_READ(&rx->off);
	uint32_t ahead, i, gen, pr, w, bytes;
	int64_t total = 0;

	if (idx >= rx->nr_channels)
		return 0;
	for (ahead = 0; ahead < rx->nr_channels; ahead++) {
		i = (idx + ahead) % rx->nr_channels;
		gen = IVC_READ(&c->chan[i].gen_num);
		IVC_RMB();
		pr = IVC_READ(&c->chan[i].pend_read);
		if (gen != wait_gen + ahead || pr == 0 || pr > rx->nr_receivers)
			break;
		IVC_RMB();
		w = IVC_READ(&c->chan[i].size);
		bytes = w & ~IVC_SIZE_SEALED;
		if (bytes > rx->channel_size)
			break;
		if (ahead == 0)
			bytes = bytes > off ? bytes - off : 0;
		total += bytes;
		if (!(w & IVC_SIZE_SEALED))
			break;
	}
	return total;
}

/*
 * For poll (lock-free, writes nothing): ivc_rx_news() less the one case that brings no bytes and needs no look under
 * the lock from the reader: the current channel read to its end, then sealed (the sender's shutdown or linger), with
 * nothing after it. Its release is housekeeping (the next read, or the owner on the seal's event); reporting it as
 * readable would make a poller's recv() answer EAGAIN, which TCP never does after POLLIN.
 */
static inline int ivc_rx_poll_news(const struct ivc_rx *rx, const struct ivc_ctrl *c)
{
	uint32_t idx, w;

	if (!ivc_rx_news(rx, c))
		return 0;
	if (!IVC_READ(&rx->have))
		return 1;
	idx = IVC_READ(&rx->idx);
	if (idx >= rx->nr_channels)
		return 1;
	w = IVC_READ(&c->chan[idx].size);
	if (!(IVC_READ(&rx->sealed) || (w & IVC_SIZE_SEALED)) || (w & ~IVC_SIZE_SEALED) != IVC_READ(&rx->off))
		return 1;
	return ivc_rx_ready_peek(rx, c) > 0;
}

#endif /* FASTIVC_IVC_RING_H */
