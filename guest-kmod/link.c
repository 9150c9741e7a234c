// SPDX-License-Identifier: GPL-2.0-only
/*
 * link.c: links between two domains (as SMC's link groups keep their buffers for the next connection). A tunnel
 * outlives its connection: the receiver keeps it mapped ("parked"), the sender keeps it granted ("pooled"), and the
 * next connection of the same pair and geometry takes it back, zeroed, with no grant, map or unmap hypercall and no
 * page to allocate (ivc_ring.h "Links" gives the protocol on the shared page).
 *
 * A link is the set of tunnels pooled or parked for one peer domain, with its counters. Its pages stay charged to
 * the page budget and to the peer's quota (tunnel.c peer_pages_max): a peer can never make us hold more through a
 * link than through open connections. A tunnel leaves its link when
 *   - it has been idle for link_idle_ms (the sender asks for it back; the receiver gives back what stayed parked
 *     three times as long, in case the sender never asks);
 *   - its sender asks for it back (IVC_TX_EVICT: it will not reuse it) or is suspending (IVC_TX_DETACH);
 *   - a new tunnel needs its pages (the peer's quota or a budget), before the new one would be refused;
 *   - the peer's address no longer leads to the peer (its domain died, was saved or migrated: checked once a second
 *     with the DEM), or a connection with it found it gone (fastivc_peer_gone);
 *   - this domain suspends (nothing of a peer may stay mapped across a save), the module unloads, or link_idle_ms
 *     is set to 0 (links off).
 *
 * A receiver parks a tunnel only after an RCU grace period (its release work): the lock-free readers of its old
 * socket (poll, wake-up conditions) are done with it by then, so whoever takes it from the link never waits.
 * Meanwhile the control page says IVC_RX_PARKING: the sender knows the connection is over, and waits to pool.
 *
 * Named limits:
 *   LINK_TUNNELS_MAX  tunnels pooled and parked in all: 1024, so that a scan (every LINK_SCAN) stays short;
 *   LINK_PEER_TUNNELS_MAX  of them for one peer domain: 64, so that one busy peer cannot take every place (the pages
 *                     are bounded by the budgets and quotas, not by these);
 *   LINK_CLAIM_MAX    how long a receiver keeps a tunnel the sender claimed (its CREATE is on its way) before it
 *                     unmaps it anyway: 10 s, far above an EVENT_CREATE_TUNNEL's delivery;
 *   LINK_PEER_CHECKS  DEM look-ups per second to see whether the links' peers still live: 8 (the next second goes on
 *                     from the last peer looked at).
 *
 * Locking: link_lock (spinlock) guards the two lists and the counts. It nests inside the socket lock (a sender takes
 * a pooled tunnel in tx_prepare) and nothing is taken or waited for under it. A tunnel on a list belongs to the list:
 * whoever takes it off under the lock owns it, and gives it back (unmaps, ends grants) only after dropping the lock;
 * nothing touches a tunnel after putting it on a list.
 */
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/xarray.h>
#include <linux/moduleparam.h>
#include "fastivc.h"

#define LINK_TUNNELS_MAX 1024
#define LINK_PEER_TUNNELS_MAX 64
#define LINK_SCAN (HZ / 5)
#define LINK_CLAIM_MAX (10 * HZ)
#define LINK_PEER_CHECKS 8

static int set_idle(const char *val, const struct kernel_param *kp);
static const struct kernel_param_ops idle_ops = { .set = set_idle, .get = param_get_uint };
unsigned int fastivc_link_idle_ms = 10000;
module_param_cb(link_idle_ms, &idle_ops, &fastivc_link_idle_ms, 0644);
MODULE_PARM_DESC(link_idle_ms, "how long a tunnel waits in its link for the pair's next connection (default 10000; 0: no links, and those kept now are given back)");

static LIST_HEAD(pooled); /* sender: tunnels granted, waiting for our next connection to their receiver */
static LIST_HEAD(parked); /* receiver: tunnels mapped, waiting for their sender's next connection */
static DEFINE_SPINLOCK(link_lock);
static unsigned int nr_pooled, nr_parked, pages_linked;
static struct delayed_work link_work;
/* the scan may be queued (set by ivc_link_init, cleared by ivc_link_exit, both under link_lock) */
static bool links_running;
static unsigned long next_peer_check;
static long peer_rotor = -1; /* the last peer check_peers looked at (only the scan touches it) */

/* per peer domain, made on first use (a few words per domain, freed at unload) */
struct fastivc_link {
	atomic64_t setups, reuses;      /* since load */
	unsigned int tunnels;           /* pooled and parked now (link_lock) */
	struct xen_evtmgr_addr raddr;   /* an address of the peer, to ask the DEM whether it still lives (link_lock) */
};
static DEFINE_XARRAY(links);

static struct fastivc_link *link_of(domid_t peer)
{
	struct fastivc_link *l = xa_load(&links, peer), *n;

	if (l)
		return l;
	n = kzalloc(sizeof(*n), GFP_KERNEL);
	if (!n)
		return NULL;
	l = xa_cmpxchg(&links, peer, NULL, n, GFP_KERNEL);
	if (l) { /* another got there first, or no memory for the entry */
		kfree(n);
		return xa_is_err(l) ? NULL : l;
	}
	return n;
}

/* A tunnel was set up anew (reuse false) or taken from a link (true), for peer. Process context. */
void ivc_link_count(domid_t peer, bool reuse)
{
	struct fastivc_link *l = link_of(peer);

	atomic64_inc(reuse ? &fastivc_stats.link_reuses : &fastivc_stats.link_setups);
	if (l)
		atomic64_inc(reuse ? &l->reuses : &l->setups);
}

bool ivc_link_enabled(void)
{
	return READ_ONCE(fastivc_link_idle_ms) && READ_ONCE(links_running) && !READ_ONCE(fastivc_suspending);
}

static void link_kick(unsigned long delay)
{
	spin_lock(&link_lock);
	if (links_running)
		mod_delayed_work(fastivc_wq, &link_work, delay);
	spin_unlock(&link_lock);
}

/* the shared rx_state word: both sides exchange it atomically (ivc_ring.h "Links") */
static u32 rx_state_xchg(struct ivc_tunnel *t, u32 old, u32 new)
{
	return cmpxchg(&t->ctrl->rx_state, old, new);
}

/* Adds t to a list (link_lock held): false if a limit says no. */
static bool link_add(struct ivc_tunnel *t, struct fastivc_link *l, struct list_head *list)
{
	/* not once ivc_link_exit has emptied the lists (a release work running late at unload) */
	if (!links_running || nr_pooled + nr_parked >= LINK_TUNNELS_MAX || l->tunnels >= LINK_PEER_TUNNELS_MAX)
		return false;
	list_add_tail(&t->link_node, list);
	if (list == &pooled)
		nr_pooled++;
	else
		nr_parked++;
	l->tunnels++;
	l->raddr = t->raddr;
	pages_linked += t->budget_pages;
	t->link_since = jiffies;
	t->link_claimed = 0;
	return true;
}

/* Takes t off its list (link_lock held); the caller owns it. */
static void link_del(struct ivc_tunnel *t, struct list_head *list)
{
	struct fastivc_link *l = xa_load(&links, t->peer);

	list_del(&t->link_node);
	if (list == &pooled)
		nr_pooled--;
	else
		nr_parked--;
	if (l)
		l->tunnels--;
	pages_linked -= t->budget_pages;
}

/* ---- sender ---- */

/*
 * A pooled tunnel for peer with this geometry, claimed (ours again, reset, with the receiver's words cleared), or
 * NULL. Lock held by the caller's socket; process context.
 */
struct ivc_tunnel *ivc_link_take_tx(domid_t peer, u32 nr_channels, u32 channel_size)
{
	struct ivc_tunnel *t, *found = NULL;

	if (!ivc_link_enabled())
		return NULL;
	spin_lock(&link_lock);
	list_for_each_entry(t, &pooled, link_node) {
		if (t->peer != peer || t->nr_channels != nr_channels || t->channel_size != channel_size)
			continue;
		if (rx_state_xchg(t, IVC_RX_PARKED, IVC_RX_NONE) != IVC_RX_PARKED)
			continue; /* the receiver gave it back: the scan lets it go */
		link_del(t, &pooled);
		found = t;
		break;
	}
	spin_unlock(&link_lock);
	if (!found)
		return NULL;
	ivc_ctrl_claimed(found->ctrl);
	found->offered = false;
	ivc_link_count(peer, true);
	return found;
}

/* Zeroes what the last connection wrote into the channels (only that: a tunnel may be 4 MiB, a request 100 bytes). */
static void zero_written(struct ivc_tunnel *t)
{
	u32 c, off, pg, pgoff, n;

	for (c = 0; c < t->nr_channels; c++) {
		for (off = 0; off < t->dirty[c]; off += n) {
			n = ivc_chan_chunk(t->channel_size, c, off, t->dirty[c] - off, &pg, &pgoff);
			memset(page_address(t->data[pg]) + pgoff, 0, n);
		}
		t->dirty[c] = 0;
	}
}

/*
 * Release work (the tunnel is its alone, its socket gone): keep a sender's tunnel for the next connection if its
 * receiver parked it. true: it is in the pool now, and no longer the caller's (not to be touched).
 */
bool ivc_link_pool_tx(struct ivc_tunnel *t)
{
	u32 s = READ_ONCE(t->ctrl->rx_state), i;
	struct fastivc_link *l;
	bool ok;

	if (!t->sender || t->no_reuse || !ivc_link_enabled())
		return false;
	/* claimed for a CREATE that never went out (its raise failed): the receiver still has it parked */
	if (s == IVC_RX_NONE && t->claimed && !t->offered)
		s = rx_state_xchg(t, IVC_RX_NONE, IVC_RX_PARKED) == IVC_RX_NONE ? IVC_RX_PARKED : s;
	if (s != IVC_RX_PARKED || (READ_ONCE(t->ctrl->tx_flags) & IVC_TX_EVICT))
		return false;
	for (i = 0; i < 1 + t->nr_dir_pages + t->nr_data_pages; i++)
		if (!t->refs[i])
			return false; /* a grant ended meanwhile: the receiver cannot find it whole; it goes */
	l = link_of(t->peer);
	if (!l)
		return false;
	virt_mb(); /* the receiver's last reads before our writes (as ivc_tx_free) */
	zero_written(t);
	ivc_ctrl_reset(t->ctrl, t->nr_channels, t->channel_size, 1);
	t->claimed = true;
	spin_lock(&link_lock);
	ok = link_add(t, l, &pooled);
	spin_unlock(&link_lock);
	if (ok)
		link_kick(LINK_SCAN);
	return ok;
}

/* ---- receiver ---- */

/*
 * May a receiving tunnel its connection is done with be parked? Not if its sender will not reuse it (IVC_TX_EVICT)
 * or is suspending (IVC_TX_DETACH). Then rx_release writes IVC_RX_PARKING and the release work parks it.
 */
bool ivc_link_may_park(const struct ivc_tunnel *t)
{
	return !t->sender && !t->no_reuse && !t->fault_keep && ivc_link_enabled() &&
	       !(READ_ONCE(t->ctrl->tx_flags) & (IVC_TX_EVICT | IVC_TX_DETACH)) &&
	       READ_ONCE(nr_pooled) + READ_ONCE(nr_parked) < LINK_TUNNELS_MAX;
}

/*
 * Release work, after an RCU grace period (no reader of the old socket looks at it any more): the tunnel, marked
 * IVC_RX_PARKING, waits mapped for the sender's next connection. false: not parked (a limit, links off, or the
 * sender wrote something else meanwhile); the caller unmaps it, the control page saying IVC_RX_CLOSED.
 */
bool ivc_link_park_rx(struct ivc_tunnel *t)
{
	struct fastivc_link *l = ivc_link_enabled() ? link_of(t->peer) : NULL;
	bool ok = false;

	if (l && !(READ_ONCE(t->ctrl->tx_flags) & (IVC_TX_EVICT | IVC_TX_DETACH))) {
		spin_lock(&link_lock);
		/* the state last, under the lock: once it says PARKED the sender may claim it, and the scan take it */
		if (nr_pooled + nr_parked < LINK_TUNNELS_MAX && l->tunnels < LINK_PEER_TUNNELS_MAX &&
		    rx_state_xchg(t, IVC_RX_PARKING, IVC_RX_PARKED) == IVC_RX_PARKING)
			ok = link_add(t, l, &parked);
		spin_unlock(&link_lock);
	}
	if (ok)
		link_kick(LINK_SCAN);
	else
		rx_state_xchg(t, IVC_RX_PARKING, IVC_RX_CLOSED);
	return ok;
}

static bool same_tunnel(const struct ivc_tunnel *t, domid_t peer, const struct xen_evtmgr_tunnel *info)
{
	return t->peer == peer && t->key.nr_channels == info->nr_channels &&
	       t->key.channel_size == info->channel_size && t->key.nr_grefs == info->nr_grefs &&
	       info->nr_grefs <= EVTMGR_MAX_GREFS &&
	       !memcmp(t->key.gref, info->gref, info->nr_grefs * sizeof(info->gref[0]));
}

/* link_lock held: the parked tunnel a CREATE names, if any */
static struct ivc_tunnel *find_parked(domid_t peer, const struct xen_evtmgr_tunnel *info)
{
	struct ivc_tunnel *t;

	list_for_each_entry(t, &parked, link_node)
		if (same_tunnel(t, peer, info))
			return t;
	return NULL;
}

static struct ivc_tunnel *take_parked(domid_t peer, const struct xen_evtmgr_tunnel *info)
{
	struct ivc_tunnel *t;

	spin_lock(&link_lock);
	t = find_parked(peer, info);
	if (t)
		link_del(t, &parked);
	spin_unlock(&link_lock);
	return t;
}

/* A receiving tunnel leaves its link: given back to the sender (unless it claimed it meanwhile), unmapped, freed. */
static void give_back_rx(struct ivc_tunnel *t)
{
	rx_state_xchg(t, IVC_RX_PARKED, IVC_RX_CLOSED);
	ivc_tunnel_free(t);
}

/*
 * EVENT_CREATE_TUNNEL: the parked tunnel it names, taken off the link (process context), or NULL. The caller checks
 * its control page as for a new one.
 */
struct ivc_tunnel *ivc_link_take_rx(domid_t peer, const struct xen_evtmgr_tunnel *info)
{
	struct ivc_tunnel *t = take_parked(peer, info);

	if (t) {
		t->park = false; /* its next release decides again */
		ivc_link_count(peer, true);
	}
	return t;
}

/* Does a CREATE name a tunnel parked in our link (one its sender may have switched to at its first byte)? */
bool ivc_link_parked(domid_t peer, const struct xen_evtmgr_tunnel *info)
{
	bool found;

	spin_lock(&link_lock);
	found = find_parked(peer, info);
	spin_unlock(&link_lock);
	return found;
}

/* A CREATE we reject: the parked tunnel it names (if any) goes now, so that its sender can end its grants. */
void ivc_link_forget_rx(domid_t peer, const struct xen_evtmgr_tunnel *info)
{
	struct ivc_tunnel *t = take_parked(peer, info);

	if (t)
		give_back_rx(t);
}

/* ---- leaving ---- */

enum { WHY_IDLE, WHY_ALL, WHY_PEER };

/* Takes off the lists what must go; the caller gives it back outside the lock. */
static void collect(struct list_head *tx_gone, struct list_head *rx_gone, int why, domid_t peer)
{
	unsigned long idle = msecs_to_jiffies(READ_ONCE(fastivc_link_idle_ms)), now = jiffies;
	struct ivc_tunnel *t, *tmp;

	spin_lock(&link_lock);
	list_for_each_entry_safe(t, tmp, &pooled, link_node) {
		bool go = why == WHY_ALL || (why == WHY_PEER && t->peer == peer) || !idle ||
			  READ_ONCE(t->ctrl->rx_state) != IVC_RX_PARKED || time_after(now, t->link_since + idle);

		if (!go)
			continue;
		link_del(t, &pooled);
		list_add_tail(&t->link_node, tx_gone);
	}
	list_for_each_entry_safe(t, tmp, &parked, link_node) {
		u32 s = READ_ONCE(t->ctrl->rx_state);
		bool go = why == WHY_ALL || (why == WHY_PEER && t->peer == peer) || !idle ||
			  (READ_ONCE(t->ctrl->tx_flags) & (IVC_TX_EVICT | IVC_TX_DETACH));

		if (!go && s == IVC_RX_PARKED) {
			t->link_claimed = 0;
			go = time_after(now, t->link_since + 3 * idle);
		} else if (!go && s == IVC_RX_CLOSED) {
			go = true; /* claimed, then taken back by its sender (its connection went on without it) */
		} else if (!go) { /* claimed: its CREATE is on its way, unless it never comes */
			if (!t->link_claimed)
				t->link_claimed = now | 1;
			go = time_after(now, t->link_claimed + LINK_CLAIM_MAX);
		}
		if (!go)
			continue;
		link_del(t, &parked);
		list_add_tail(&t->link_node, rx_gone);
	}
	spin_unlock(&link_lock);
}

static unsigned int give_back(struct list_head *tx_gone, struct list_head *rx_gone)
{
	struct ivc_tunnel *t, *tmp;
	unsigned int n = 0;

	list_for_each_entry_safe(t, tmp, tx_gone, link_node) {
		list_del(&t->link_node);
		/* the receiver is asked to unmap it (tunnel.c ends the grants once it has) */
		t->no_reuse = true;
		ivc_tunnel_let_go(t);
		n++;
	}
	list_for_each_entry_safe(t, tmp, rx_gone, link_node) {
		list_del(&t->link_node);
		give_back_rx(t);
		n++;
	}
	if (n)
		atomic64_add(n, &fastivc_stats.link_evictions);
	return n;
}

static void leave(int why, domid_t peer)
{
	LIST_HEAD(tx_gone);
	LIST_HEAD(rx_gone);

	collect(&tx_gone, &rx_gone, why, peer);
	give_back(&tx_gone, &rx_gone);
}

/*
 * A new tunnel with peer does not fit: the peer's quota (all_peers false: that peer's tunnels, both ways, since the
 * quota counts both) or a budget (all_peers true: every link's tunnels of that side). Parked tunnels go at once, so
 * the caller may charge again; pooled ones come back once their receivers unmap them. Returns how many left.
 * Process context.
 */
unsigned int ivc_link_evict(domid_t peer, bool all_peers, bool sender)
{
	LIST_HEAD(tx_gone);
	LIST_HEAD(rx_gone);
	struct ivc_tunnel *t, *tmp;
	unsigned int n_tx = 0, n_rx = 0;

	spin_lock(&link_lock);
	if (sender || !all_peers)
		list_for_each_entry_safe(t, tmp, &pooled, link_node) {
			if (!all_peers && t->peer != peer)
				continue;
			link_del(t, &pooled);
			list_add_tail(&t->link_node, &tx_gone);
			n_tx++;
		}
	if (!sender || !all_peers)
		list_for_each_entry_safe(t, tmp, &parked, link_node) {
			if (!all_peers && t->peer != peer)
				continue;
			/* what its sender claimed stays: that CREATE is on its way */
			if (READ_ONCE(t->ctrl->rx_state) != IVC_RX_PARKED)
				continue;
			link_del(t, &parked);
			list_add_tail(&t->link_node, &rx_gone);
			n_rx++;
		}
	spin_unlock(&link_lock);
	give_back(&tx_gone, &rx_gone);
	return n_tx + n_rx;
}

/* The peer's domain is gone (a connection found out): its links go. Process context. */
void ivc_link_peer_gone(domid_t peer)
{
	leave(WHY_PEER, peer);
}

/* Suspend, unload, links switched off: every link goes; a receiver's mappings are gone when this returns. */
void ivc_link_flush(void)
{
	leave(WHY_ALL, 0);
}

/*
 * Once a second: is each link's peer still at its address? A domain that died, or was saved or migrated, has left
 * the DEM's table (or its address leads to another domain now). LINK_PEER_CHECKS peers with tunnels in a link per
 * second, going round them all; a dead peer's links are given back.
 */
static void check_peers(void)
{
	struct fastivc_link *l;
	unsigned long idx = peer_rotor + 1;
	unsigned int n = 0, wrapped = 0;

	while (n < LINK_PEER_CHECKS) {
		struct xen_evtmgr_addr addr;
		bool has;
		domid_t d;
		int rc;

		l = xa_find(&links, &idx, DOMID_FIRST_RESERVED - 1, XA_PRESENT);
		if (!l) {
			if (wrapped++ || peer_rotor < 0)
				break;
			idx = 0;
			peer_rotor = -1;
			continue;
		}
		spin_lock(&link_lock);
		has = l->tunnels > 0;
		addr = l->raddr;
		spin_unlock(&link_lock);
		peer_rotor = idx;
		if (has) {
			n++;
			rc = dem_lookup(&addr, &d);
			if ((rc == 0 && d != idx) || rc == -ENOENT || rc == -ESRCH)
				ivc_link_peer_gone(idx);
		}
		if (idx >= DOMID_FIRST_RESERVED - 1)
			break;
		idx++;
	}
}

static void link_scan(struct work_struct *w)
{
	if (!ivc_link_enabled()) {
		ivc_link_flush();
		return;
	}
	if (time_after_eq(jiffies, next_peer_check)) {
		next_peer_check = jiffies + HZ;
		check_peers();
	}
	leave(WHY_IDLE, 0);
	if (READ_ONCE(nr_pooled) + READ_ONCE(nr_parked))
		link_kick(LINK_SCAN);
}

static int set_idle(const char *val, const struct kernel_param *kp)
{
	int rc = param_set_uint(val, kp);

	/* at load the value is only stored: the scan exists once the module runs (links_running) */
	if (!rc)
		link_kick(0); /* 0: the links go now; otherwise the new idle time applies */
	return rc;
}

/* for /proc/fastivc/stats and peers */
void ivc_link_totals(unsigned int *pooled_n, unsigned int *parked_n, unsigned int *pages)
{
	spin_lock(&link_lock);
	*pooled_n = nr_pooled;
	*parked_n = nr_parked;
	*pages = pages_linked;
	spin_unlock(&link_lock);
}

/* one peer's link: tunnels pooled and parked now, setups and reuses since load (false: never linked) */
bool ivc_link_peer(domid_t peer, unsigned int *pooled_n, unsigned int *parked_n, u64 *setups, u64 *reuses)
{
	struct fastivc_link *l = xa_load(&links, peer);
	struct ivc_tunnel *t;

	*pooled_n = *parked_n = 0;
	*setups = *reuses = 0;
	if (!l)
		return false;
	*setups = atomic64_read(&l->setups);
	*reuses = atomic64_read(&l->reuses);
	spin_lock(&link_lock);
	list_for_each_entry(t, &pooled, link_node)
		*pooled_n += t->peer == peer;
	list_for_each_entry(t, &parked, link_node)
		*parked_n += t->peer == peer;
	spin_unlock(&link_lock);
	return true;
}

/* the peers that ever had a link, in order: *peer is the last one returned (start at -1) */
bool ivc_link_next_peer(long *peer)
{
	unsigned long idx = *peer + 1;

	if (!xa_find(&links, &idx, DOMID_FIRST_RESERVED - 1, XA_PRESENT))
		return false;
	*peer = idx;
	return true;
}

void ivc_link_init(void)
{
	INIT_DELAYED_WORK(&link_work, link_scan);
	spin_lock(&link_lock);
	links_running = true;
	spin_unlock(&link_lock);
}

/* Module unload, once no socket is left (before tunnel.c's drain, which ends the pooled tunnels' grants). */
void ivc_link_exit(void)
{
	spin_lock(&link_lock);
	links_running = false; /* nothing queues the scan from now on */
	spin_unlock(&link_lock);
	cancel_delayed_work_sync(&link_work);
	ivc_link_flush();
}

/* After /proc/fastivc is gone (its readers use the per-peer entries). */
void ivc_link_free(void)
{
	struct fastivc_link *l;
	unsigned long i;

	xa_for_each(&links, i, l)
		kfree(l);
	xa_destroy(&links);
}
