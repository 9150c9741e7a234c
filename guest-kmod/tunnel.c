// SPDX-License-Identifier: GPL-2.0-only
/*
 * tunnel.c: the Tunnel Manager (thesis 3.4.4). The sender allocates a tunnel's pages zeroed and dedicated (no other
 * data ever shares them), grants them to the receiver's domain (control page read-write, directory and data pages
 * read-only) and describes them in EVENT_CREATE_TUNNEL; the receiver maps them or rejects the tunnel.
 *
 * Release never frees a page the peer may still map: the sender ends each grant, and where the receiver still maps
 * the page Linux's grant table keeps it (deferred free) until the mapping is gone; the page is never reused before.
 * Those pages are counted in pages_deferred. The receiver unmaps in process context (the release work).
 */
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/uio.h>
#include <xen/grant_table.h>
#include <xen/page.h>
#include <linux/moduleparam.h>
#include <linux/delay.h>
#include "fastivc.h"

/*
 * The page budget: named limits on the pages this domain holds in tunnels, whatever the peers do.
 *   tx_pages_max  pages of our sending tunnels (control, directory and data pages, each one grant): 8192 pages,
 *                 32 MiB, a quarter of the 32768 grant entries of Xen's default max_grant_frames (64), so that
 *                 netfront and blkfront always find grants. A new tunnel that does not fit is made smaller
 *                 (geometry.c), and below the smallest stays on TCP (fallback_tunnel_budget).
 *   rx_pages_max  pages of peers' tunnels we map: 8192 pages, 32 MiB of address space and of the ballooned pages
 *                 that back the mappings. A CREATE_TUNNEL that does not fit is rejected (the peer stays on TCP).
 *   peer_pages_max  pages one peer domain may make us hold, whatever it does: our sending tunnels to it (granted),
 *                 its tunnels we map (mapped), and our released pages it still maps (deferred), together. 4096
 *                 pages, 16 MiB: half of each budget above, so a peer that takes all it may (or never unmaps) still
 *                 leaves room for the others, while a busy pair runs about eight bulk connections at the default
 *                 1 MiB tunnels (a connection holds one tunnel each way on each side). A sender that would pass it
 *                 makes its tunnel smaller, down to the smallest, then stays on TCP; a receiver rejects a tunnel that
 *                 would pass it, whatever geometry the sender chose (fallback_peer_quota on either side).
 *                 Connections already tunnelled are untouched; new ones tunnel again once pages come back.
 * Pages a peer still maps after their tunnel was released stay charged, to both, until it lets go (RELEASE_QUICK).
 */
unsigned int fastivc_tx_pages_max = 8192, fastivc_rx_pages_max = 8192;
module_param_named(tx_pages_max, fastivc_tx_pages_max, uint, 0644);
MODULE_PARM_DESC(tx_pages_max, "pages our sending tunnels may hold in all (default 8192: a quarter of the default grant table)");
module_param_named(rx_pages_max, fastivc_rx_pages_max, uint, 0644);
MODULE_PARM_DESC(rx_pages_max, "pages of peers' tunnels we may map in all (default 8192, 32 MiB)");
static atomic_t tx_pages_used, rx_pages_used;

unsigned int fastivc_peer_pages_max = 4096;
module_param_named(peer_pages_max, fastivc_peer_pages_max, uint, 0644);
MODULE_PARM_DESC(peer_pages_max, "pages one peer domain may make us hold: granted, mapped and deferred together (default 4096, 16 MiB)");
static atomic_t peer_pages[DOMID_FIRST_RESERVED]; /* per peer domain id: what peer_pages_max bounds */

/* Pages charged to peer now (statistics, /proc/fastivc/peers). */
unsigned int fastivc_peer_pages(domid_t peer)
{
	return peer < DOMID_FIRST_RESERVED ? atomic_read(&peer_pages[peer]) : 0;
}

unsigned int fastivc_tx_pages(void) { return atomic_read(&tx_pages_used); }
unsigned int fastivc_rx_pages(void) { return atomic_read(&rx_pages_used); }

/*
 * Charges n pages to a budget; false (nothing charged) if they do not fit. Never over the limit, even for a moment:
 * two charges near it cannot both fail because each saw the other's pages.
 */
static bool budget_get(atomic_t *used, unsigned int max, u32 n)
{
	int old = atomic_read(used);

	do {
		if ((u64)old + n > READ_ONCE(max))
			return false;
	} while (!atomic_try_cmpxchg(used, &old, old + n));
	return true;
}

/*
 * Charges a tunnel's n pages to the domain's budget (used) and to the peer's quota. 0, or why not: -EDQUOT (the
 * domain's budget), -ENOSPC (the peer's quota); nothing is charged then.
 */
static int charge(atomic_t *used, unsigned int max, domid_t peer, u32 n)
{
	if (peer >= DOMID_FIRST_RESERVED)
		return -EINVAL;
	if (!budget_get(&peer_pages[peer], fastivc_peer_pages_max, n))
		return -ENOSPC;
	if (!budget_get(used, max, n)) {
		atomic_sub(n, &peer_pages[peer]);
		return -EDQUOT;
	}
	return 0;
}

static void uncharge(atomic_t *used, domid_t peer, u32 n)
{
	atomic_sub(n, used);
	atomic_sub(n, &peer_pages[peer]);
}

static void tunnel_free_tx(struct ivc_tunnel *t)
{
	u32 i, n = 1 + t->nr_dir_pages + t->nr_data_pages;

	for (i = 0; i < n; i++) {
		struct page *pg;

		/* a creation that failed part way may have no page arrays (kvfree/kfree take NULL) */
		if (i == 0)
			pg = t->ctrl_page;
		else if (i <= t->nr_dir_pages)
			pg = t->dir_pages ? t->dir_pages[i - 1] : NULL;
		else
			pg = t->data ? t->data[i - 1 - t->nr_dir_pages] : NULL;
		if (!pg)
			continue;
		if (t->refs[i] == 0) { /* never granted: ours alone */
			__free_page(pg);
			continue;
		}
		if (gnttab_try_end_foreign_access(t->refs[i])) {
			__free_page(pg);
		} else {
			/* still mapped at unload (counted when it began to wait, tunnel_retry_work): Linux frees it later */
			gnttab_end_foreign_access(t->refs[i], pg);
		}
	}
	kvfree(t->refs);
	kvfree(t->data);
	kfree(t->dir_pages);
}

static void unmap_pages(domid_t peer, struct page **pages, grant_handle_t *handles, u32 n)
{
	struct gnttab_unmap_grant_ref *ops;
	struct page **mapped;
	u32 i, k = 0;

	if (!n)
		return;
	ops = kvcalloc(n, sizeof(*ops), GFP_KERNEL | __GFP_NOFAIL);
	mapped = kvcalloc(n, sizeof(*mapped), GFP_KERNEL | __GFP_NOFAIL);
	for (i = 0; i < n; i++) {
		if (handles[i] == INVALID_GRANT_HANDLE)
			continue;
		gnttab_set_unmap_op(&ops[k], (unsigned long)pfn_to_kaddr(page_to_pfn(pages[i])), GNTMAP_host_map,
				    handles[i]);
		mapped[k++] = pages[i];
		handles[i] = INVALID_GRANT_HANDLE;
	}
	if (k)
		atomic64_inc(&fastivc_stats.grant_unmap_calls); /* one GNTTABOP_unmap_grant_ref batch */
	if (k && gnttab_unmap_refs(ops, NULL, mapped, k))
		pr_warn_ratelimited("fastivc: unmapping %u pages of domain %u failed\n", k, peer);
	kvfree(ops);
	kvfree(mapped);
}

static void tunnel_free_rx(struct ivc_tunnel *t)
{
	if (t->map_pages) {
		unmap_pages(t->peer, t->map_pages, t->handles, t->nr_maps);
		gnttab_free_pages(t->nr_maps, t->map_pages);
	}
	kvfree(t->map_pages);
	kvfree(t->handles);
}

void ivc_tunnel_free(struct ivc_tunnel *t)
{
	if (t->sender)
		tunnel_free_tx(t);
	else
		tunnel_free_rx(t);
	uncharge(t->sender ? &tx_pages_used : &rx_pages_used, t->peer, t->budget_pages);
	kfree(t);
}

/*
 * A sender's pages are given back once the receiver no longer maps them. A receiver that is letting go (it closed or
 * detached: it unmaps in its release work, after an RCU grace period) gets RELEASE_QUICK looks, RELEASE_DELAY apart
 * (a second in all). One that still maps pages after that holds them: they stay charged to tx_pages_max and to its
 * peer_pages_max (so a peer that never unmaps holds no more than its quota, and its new tunnels stay on TCP past
 * it), are counted in pages_deferred, and are looked at again every RELEASE_SLOW until it lets go. At module unload what is still held
 * goes to Linux's deferred free (gnttab_end_foreign_access: the page is never reused while mapped).
 * releases_waiting: tunnels in that wait (module unload and the suspend wait for them).
 */
#define RELEASE_QUICK 50
#define RELEASE_DELAY (HZ / 50) /* links: a tunnel its receiver parks is back in the pool within 20 ms */
#define RELEASE_SLOW HZ
static atomic_t releases_waiting, releases_quick; /* all waiting; those in their first second (not held yet) */
static bool releases_stopping;

/* Tunnels whose receiver is letting go now (the suspend waits for them; held ones it does not wait for) */
unsigned int ivc_tunnel_releases_waiting(void)
{
	return atomic_read(&releases_quick);
}

/* Grants of t still in use by the receiver (owner only). */
static u32 grants_left(const struct ivc_tunnel *t)
{
	u32 i, n = 0;

	for (i = 0; i < 1 + t->nr_dir_pages + t->nr_data_pages; i++)
		n += t->refs[i] != 0;
	return n;
}

/*
 * Links: a receiver still in the tunnel may park it rather than unmap it (link.c); its grants stay whole meanwhile,
 * for the first second of the wait.
 */
static bool receiver_inside(const struct ivc_tunnel *t)
{
	u32 s = READ_ONCE(t->ctrl->rx_state);

	return !t->no_reuse && ivc_link_enabled() && !(READ_ONCE(t->ctrl->tx_flags) & IVC_TX_EVICT) &&
	       (s == IVC_RX_MAPPED || s == IVC_RX_ACCEPTED || s == IVC_RX_PARKING);
}

/* Not to be pooled: its receiver must not park it (or must give it back if it did, link.c) */
/* Sender: a tunnel its receiver keeps (parked) is asked back: it unmaps it, and we will not reuse it (link.c). */
void ivc_tunnel_ask_back(struct ivc_tunnel *t)
{
	if (!(READ_ONCE(t->ctrl->tx_flags) & IVC_TX_EVICT))
		WRITE_ONCE(t->ctrl->tx_flags, READ_ONCE(t->ctrl->tx_flags) | IVC_TX_EVICT);
}

static void waiting_done(bool quick)
{
	if (quick)
		atomic_dec(&releases_quick);
	atomic_dec(&releases_waiting);
}

static void tunnel_retry_work(struct work_struct *w)
{
	struct ivc_tunnel *t = container_of(to_delayed_work(w), struct ivc_tunnel, retry_work);
	bool ended, quick = t->release_tries < RELEASE_QUICK;

	/* its receiver parked it: kept for the pair's next connection (and no longer ours to touch) */
	if (!READ_ONCE(releases_stopping) && ivc_link_pool_tx(t)) {
		waiting_done(quick);
		return;
	}
	if (quick && receiver_inside(t)) {
		ended = false;
	} else {
		ivc_tunnel_ask_back(t);
		ended = ivc_tunnel_end_grants(t);
	}

	if (!ended && !READ_ONCE(releases_stopping)) {
		if (++t->release_tries == RELEASE_QUICK) {
			atomic_dec(&releases_quick);
			/* held: counted once (the whole tunnel stays charged to the peer's quota until freed) */
			atomic64_add(grants_left(t), &fastivc_stats.pages_deferred);
		}
		queue_delayed_work(fastivc_wq, &t->retry_work,
				   t->release_tries < RELEASE_QUICK ? RELEASE_DELAY : RELEASE_SLOW);
		return;
	}
	waiting_done(t->release_tries < RELEASE_QUICK);
	ivc_tunnel_free(t); /* what is still mapped at unload: Linux's deferred free */
}

/*
 * Lab only (fault_inject PORT:never_unmap): receiving tunnels released while the fault is set stay mapped, as a peer
 * that never unmaps would keep them, until fault_inject is set again or the module unloads. So the lab can show that
 * the sender holds at most its quota for us. Never set on a production host.
 */
static LIST_HEAD(kept_list);
static DEFINE_MUTEX(kept_lock);

/* fault_inject was set again, or the module unloads: the kept tunnels are unmapped and freed now (process context) */
void ivc_tunnel_release_kept(void)
{
	struct ivc_tunnel *t, *tmp;
	LIST_HEAD(gone);

	mutex_lock(&kept_lock);
	list_splice_init(&kept_list, &gone);
	mutex_unlock(&kept_lock);
	list_for_each_entry_safe(t, tmp, &gone, kept) {
		list_del(&t->kept);
		ivc_tunnel_free(t);
	}
}

/*
 * A tunnel no socket or link has any more (process context): a sender's is kept in its link if the receiver parked
 * it, or waits for the receiver to unmap it before its pages go; a receiver's is unmapped and freed.
 */
void ivc_tunnel_let_go(struct ivc_tunnel *t)
{
	if (t->sender && !READ_ONCE(releases_stopping)) {
		if (ivc_link_pool_tx(t))
			return;
		/*
		 * A tunnel of a link offered to a connection whose receiver never took it (its EVENT_CREATE_TUNNEL was
		 * dropped with the receiver's record when it closed first): taken back, so that the receiver, which still
		 * keeps it parked, unmaps it now (link.c) rather than after LINK_CLAIM_MAX. A CREATE still on its way
		 * then finds it closed.
		 */
		if (t->claimed && t->offered)
			cmpxchg(&t->ctrl->rx_state, IVC_RX_NONE, IVC_RX_CLOSED);
		if (!receiver_inside(t))
			ivc_tunnel_ask_back(t);
		if (receiver_inside(t) || !ivc_tunnel_end_grants(t)) {
			t->release_tries = 0;
			atomic_inc(&releases_waiting);
			atomic_inc(&releases_quick);
			INIT_DELAYED_WORK(&t->retry_work, tunnel_retry_work);
			queue_delayed_work(fastivc_wq, &t->retry_work, RELEASE_DELAY);
			return;
		}
	}
	ivc_tunnel_free(t);
}

static void tunnel_release_work(struct work_struct *w)
{
	struct ivc_tunnel *t = container_of(to_rcu_work(w), struct ivc_tunnel, release_work);

	if (unlikely(t->fault_keep) && fastivc_fault_keeping() && !READ_ONCE(releases_stopping)) {
		mutex_lock(&kept_lock);
		list_add_tail(&t->kept, &kept_list);
		mutex_unlock(&kept_lock);
		return;
	}
	/* a receiver's connection is over: its tunnel waits in the link for the next one (link.c), or goes */
	if (t->park && !t->no_reuse && ivc_link_park_rx(t))
		return;
	/* the tunnel is this work's alone now: nobody else ends its grants */
	ivc_tunnel_let_go(t);
}

/* Module unload, once no socket is left: the held tunnels go to Linux's deferred free, now. */
void ivc_tunnel_release_drain(void)
{
	WRITE_ONCE(releases_stopping, true);
	flush_workqueue(fastivc_wq);
	ivc_tunnel_release_kept();
	while (atomic_read(&releases_waiting)) {
		flush_workqueue(fastivc_wq);
		msleep(jiffies_to_msecs(RELEASE_DELAY));
	}
}

/*
 * Frees the tunnel, after an RCU grace period (poll and wake-up conditions read tunnels without the socket lock,
 * under rcu_read_lock) and in process context (unmapping), on fastivc_wq. The caller no longer touches it.
 */
void ivc_tunnel_release(struct ivc_tunnel *t)
{
	if (!t)
		return;
	INIT_RCU_WORK(&t->release_work, tunnel_release_work);
	queue_rcu_work(fastivc_wq, &t->release_work);
}

/*
 * Sender, before this domain suspends: ends every grant of the tunnel that the receiver no longer maps (the pages stay
 * ours, with their data, and are freed at release as never granted). true once none is left: nothing of the tunnel
 * is in the peer's hands. Owner only (lock held), on a tunnel still in the socket.
 */
bool ivc_tunnel_end_grants(struct ivc_tunnel *t)
{
	u32 i, n = 1 + t->nr_dir_pages + t->nr_data_pages;
	bool all = true;

	if (!t->sender || !t->refs)
		return true;
	for (i = 0; i < n; i++) {
		if (t->refs[i] == 0)
			continue;
		if (gnttab_try_end_foreign_access(t->refs[i]))
			t->refs[i] = 0;
		else
			all = false;
	}
	return all;
}

static struct page *zeroed_page(void)
{
	return alloc_page(GFP_KERNEL | __GFP_ZERO);
}

/* CREATE_TUNNEL's description of a sender's tunnel (control page and directory grants) */
static void describe(const struct ivc_tunnel *t, struct xen_evtmgr_tunnel *info)
{
	u32 i;

	memset(info, 0, sizeof(*info));
	info->nr_channels = t->nr_channels;
	info->channel_size = t->channel_size;
	info->nr_grefs = 1 + t->nr_dir_pages;
	for (i = 0; i < info->nr_grefs; i++)
		info->gref[i] = t->refs[i];
}

/*
 * Sender: a tunnel for a new connection to peer, from the pair's link when one of this geometry waits there (no
 * allocation, no grant), else new. NULL and *why when it cannot be had: over the budget or the peer's quota (the
 * link's tunnels are asked back first, for the next try: *evicted is set then), no memory, no grant.
 */
struct ivc_tunnel *ivc_tunnel_create_tx(domid_t peer, const struct xen_evtmgr_addr *raddr, u32 nr_channels,
					u32 channel_size, struct xen_evtmgr_tunnel *info, enum fastivc_reason *why,
					bool *evicted, bool fault_nomem)
{
	struct ivc_tunnel *t;
	u32 i, n;
	int ref, rc;

	*why = FIVC_R_NO_MEMORY;
	if (!ivc_geometry_ok(nr_channels, channel_size))
		return NULL;
	/* fault_inject PORT:nomem tests the allocation below: not a tunnel from the link then */
	t = fault_nomem ? NULL : ivc_link_take_tx(peer, nr_channels, channel_size);
	if (t) {
		describe(t, info);
		ivc_tx_init(&t->tx, nr_channels, channel_size, 1);
		*why = FIVC_R_NONE;
		return t;
	}
	n = 1 + ivc_dir_pages(ivc_data_pages(nr_channels, channel_size)) + ivc_data_pages(nr_channels, channel_size);
	rc = charge(&tx_pages_used, fastivc_tx_pages_max, peer, n);
	if (rc) {
		/*
		 * What waits in links is given back before anything is refused: the parked tunnels at once (try again),
		 * the pooled ones once their receivers unmap them (a later try: *evicted).
		 */
		if (ivc_link_evict(peer, rc == -EDQUOT, true)) {
			*evicted = true;
			rc = charge(&tx_pages_used, fastivc_tx_pages_max, peer, n);
		}
	}
	if (rc) {
		*why = rc == -ENOSPC ? FIVC_R_PEER_QUOTA : FIVC_R_BUDGET;
		return NULL;
	}
	t = kzalloc(sizeof(*t), GFP_KERNEL);
	if (!t) {
		uncharge(&tx_pages_used, peer, n);
		return NULL;
	}
	t->budget_pages = n;
	t->sender = true;
	t->peer = peer;
	t->raddr = *raddr;
	t->nr_channels = nr_channels;
	t->channel_size = channel_size;
	t->nr_data_pages = ivc_data_pages(nr_channels, channel_size);
	t->nr_dir_pages = ivc_dir_pages(t->nr_data_pages);
	n = 1 + t->nr_dir_pages + t->nr_data_pages;
	t->refs = kvcalloc(n, sizeof(*t->refs), GFP_KERNEL);
	t->data = kvcalloc(t->nr_data_pages, sizeof(*t->data), GFP_KERNEL);
	t->dir_pages = kcalloc(t->nr_dir_pages, sizeof(*t->dir_pages), GFP_KERNEL);
	if (unlikely(fault_nomem)) { /* fault_inject PORT:nomem: as if this allocation had failed */
		kfree(t->dir_pages);
		t->dir_pages = NULL;
	}
	if (!t->refs || !t->data || !t->dir_pages)
		goto fail;
	t->ctrl_page = zeroed_page();
	if (!t->ctrl_page)
		goto fail;
	t->ctrl = page_address(t->ctrl_page);
	for (i = 0; i < t->nr_dir_pages; i++)
		if (!(t->dir_pages[i] = zeroed_page()))
			goto fail;
	for (i = 0; i < t->nr_data_pages; i++)
		if (!(t->data[i] = zeroed_page()))
			goto fail;
	ivc_ctrl_init(t->ctrl, nr_channels, channel_size, 1);

	/* grants: the control page read-write (pend_read, rx_state, rx_want), everything else read-only */
	*why = FIVC_R_GRANT_FAILED;
	for (i = 0; i < n; i++) {
		struct page *pg = i == 0 ? t->ctrl_page : i <= t->nr_dir_pages ? t->dir_pages[i - 1] :
				  t->data[i - 1 - t->nr_dir_pages];

		ref = gnttab_grant_foreign_access(peer, xen_page_to_gfn(pg), i != 0);
		if (ref < 0)
			goto fail;
		t->refs[i] = ref;
		if (i > t->nr_dir_pages) {
			u32 d = i - 1 - t->nr_dir_pages;
			u32 *dir = page_address(t->dir_pages[d / IVC_DIR_ENTRIES]);

			dir[d % IVC_DIR_ENTRIES] = ref;
		}
	}
	describe(t, info);
	ivc_tx_init(&t->tx, nr_channels, channel_size, 1);
	ivc_link_count(peer, false);
	*why = FIVC_R_NONE;
	return t;
fail:
	if (t->refs)
		tunnel_free_tx(t);
	else {
		kvfree(t->data);
		kfree(t->dir_pages);
	}
	uncharge(&tx_pages_used, peer, t->budget_pages);
	kfree(t);
	return NULL;
}

/* Maps n grant references of `peer` into freshly allocated pages; on any failure unmaps what was mapped. */
static int map_pages(domid_t peer, const grant_ref_t *refs, u32 n, bool readonly, struct page **pages,
		     grant_handle_t *handles)
{
	struct gnttab_map_grant_ref *ops;
	u32 i;
	int rc, bad = 0;

	ops = kvcalloc(n, sizeof(*ops), GFP_KERNEL);
	if (!ops)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		gnttab_set_map_op(&ops[i], (unsigned long)pfn_to_kaddr(page_to_pfn(pages[i])),
				  GNTMAP_host_map | (readonly ? GNTMAP_readonly : 0), refs[i], peer);
		handles[i] = INVALID_GRANT_HANDLE;
	}
	atomic64_inc(&fastivc_stats.grant_map_calls); /* one GNTTABOP_map_grant_ref batch */
	rc = gnttab_map_refs(ops, NULL, pages, n);
	for (i = 0; i < n; i++) {
		if (ops[i].status == GNTST_okay)
			handles[i] = ops[i].handle;
		else
			bad++;
	}
	kvfree(ops);
	if (rc || bad) {
		unmap_pages(peer, pages, handles, n);
		return rc ? rc : -EFAULT;
	}
	return 0;
}

/*
 * Receiver: maps the tunnel described by EVENT_CREATE_TUNNEL. Every value the sender wrote is read once and checked
 * against the geometry the DEM validated, and the geometry against our own limits: the tunnel must fit the peer's
 * quota and our budget before anything is mapped. Returns NULL and *why = -errno on failure: -ENOSPC over the peer's
 * quota, -EDQUOT over rx_pages_max.
 */
struct ivc_tunnel *ivc_tunnel_map_rx(domid_t peer, const struct xen_evtmgr_addr *raddr,
				     const struct xen_evtmgr_tunnel *info, int *why, bool *from_link)
{
	u32 nch = info->nr_channels, csize = info->channel_size, ndata, ndir, i, nrecv;
	struct page **dir_pages = NULL;
	grant_handle_t *dir_handles = NULL;
	grant_ref_t *refs = NULL;
	struct ivc_tunnel *t;
	int rc;

	*why = -EINVAL;
	*from_link = false;
	if (!ivc_geometry_ok(nch, csize))
		return NULL;
	ndata = ivc_data_pages(nch, csize);
	ndir = ivc_dir_pages(ndata);
	if (info->nr_grefs != 1 + ndir || info->nr_grefs > EVTMGR_MAX_GREFS)
		return NULL;
	/* the pair's link: mapped already (its control page is checked as a new one's) */
	t = ivc_link_take_rx(peer, info);
	if (t) {
		if (ivc_ctrl_check(t->ctrl, nch, csize, &nrecv) || nrecv != 1) {
			ivc_tunnel_free(t);
			*why = -EPROTO;
			return NULL;
		}
		ivc_rx_init(&t->rx, nch, csize, 1);
		*why = 0;
		*from_link = true;
		return t;
	}
	rc = charge(&rx_pages_used, fastivc_rx_pages_max, peer, 1 + ndir + ndata);
	/* parked tunnels are given back before anything is refused (the peer's only, for its quota) */
	if (rc && ivc_link_evict(peer, rc == -EDQUOT, false))
		rc = charge(&rx_pages_used, fastivc_rx_pages_max, peer, 1 + ndir + ndata);
	if (rc) {
		*why = rc;
		return NULL;
	}
	*why = -ENOMEM;
	t = kzalloc(sizeof(*t), GFP_KERNEL);
	if (!t) {
		uncharge(&rx_pages_used, peer, 1 + ndir + ndata);
		return NULL;
	}
	t->budget_pages = 1 + ndir + ndata;
	t->peer = peer;
	t->raddr = *raddr;
	t->key.nr_channels = nch;
	t->key.channel_size = csize;
	t->key.nr_grefs = info->nr_grefs;
	memcpy(t->key.gref, info->gref, info->nr_grefs * sizeof(info->gref[0]));
	t->nr_channels = nch;
	t->channel_size = csize;
	t->nr_data_pages = ndata;
	t->nr_maps = 1 + ndata;
	t->map_pages = kvcalloc(t->nr_maps, sizeof(*t->map_pages), GFP_KERNEL);
	t->handles = kvcalloc(t->nr_maps, sizeof(*t->handles), GFP_KERNEL);
	refs = kvcalloc(t->nr_maps, sizeof(*refs), GFP_KERNEL);
	dir_pages = kcalloc(ndir, sizeof(*dir_pages), GFP_KERNEL);
	dir_handles = kcalloc(ndir, sizeof(*dir_handles), GFP_KERNEL);
	if (!t->map_pages || !t->handles || !refs || !dir_pages || !dir_handles)
		goto fail_free;
	for (i = 0; i < t->nr_maps; i++)
		t->handles[i] = INVALID_GRANT_HANDLE;
	if (gnttab_alloc_pages(t->nr_maps, t->map_pages))
		goto fail_free;
	if (gnttab_alloc_pages(ndir, dir_pages))
		goto fail_pages;

	/* 1. the control page (read-write) and the directory (read-only) */
	refs[0] = info->gref[0];
	rc = map_pages(peer, refs, 1, false, t->map_pages, t->handles);
	if (rc) {
		*why = rc;
		goto fail_dirs;
	}
	t->ctrl = page_address(t->map_pages[0]);
	rc = ivc_ctrl_check(t->ctrl, nch, csize, &nrecv);
	if (rc || nrecv != 1) {
		*why = -EPROTO;
		goto fail_dirs;
	}
	rc = map_pages(peer, &info->gref[1], ndir, true, dir_pages, dir_handles);
	if (rc) {
		*why = rc;
		goto fail_dirs;
	}
	for (i = 0; i < ndata; i++) {
		const u32 *dir = page_address(dir_pages[i / IVC_DIR_ENTRIES]);

		refs[1 + i] = READ_ONCE(dir[i % IVC_DIR_ENTRIES]);
	}
	unmap_pages(peer, dir_pages, dir_handles, ndir);

	/* 2. the data pages (read-only) */
	rc = map_pages(peer, refs + 1, ndata, true, t->map_pages + 1, t->handles + 1);
	if (rc) {
		*why = rc;
		goto fail_dirs;
	}
	gnttab_free_pages(ndir, dir_pages);
	kfree(dir_pages);
	kfree(dir_handles);
	kvfree(refs);
	t->data = t->map_pages + 1;
	ivc_rx_init(&t->rx, nch, csize, 1);
	ivc_link_count(peer, false);
	*why = 0;
	return t;

fail_dirs:
	unmap_pages(peer, t->map_pages, t->handles, t->nr_maps);
	gnttab_free_pages(ndir, dir_pages);
fail_pages:
	gnttab_free_pages(t->nr_maps, t->map_pages);
fail_free:
	kvfree(t->map_pages);
	kvfree(t->handles);
	kvfree(refs);
	kfree(dir_pages);
	kfree(dir_handles);
	uncharge(&rx_pages_used, peer, t->budget_pages);
	kfree(t);
	return NULL;
}

/* Copies len bytes from `from` into channel chan at off. Returns bytes copied (short on a fault). */
int ivc_copy_to_chan(struct ivc_tunnel *t, u32 chan, u32 off, struct iov_iter *from, u32 len)
{
	u32 done = 0, pg, pgoff, n;
	size_t c;

	while (done < len) {
		n = ivc_chan_chunk(t->channel_size, chan, off + done, len - done, &pg, &pgoff);
		c = copy_from_iter(page_address(t->data[pg]) + pgoff, n, from);
		done += c;
		if (c < n)
			break;
	}
	if (off + done > t->dirty[chan]) /* what a link zeroes before the next connection (link.c) */
		t->dirty[chan] = off + done;
	return done;
}

/* Copies len bytes of channel chan from off to `to`. Returns bytes copied (short on a fault). */
int ivc_copy_from_chan(struct ivc_tunnel *t, u32 chan, u32 off, struct iov_iter *to, u32 len)
{
	u32 done = 0, pg, pgoff, n;
	size_t c;

	while (done < len) {
		n = ivc_chan_chunk(t->channel_size, chan, off + done, len - done, &pg, &pgoff);
		c = copy_to_iter(page_address(t->data[pg]) + pgoff, n, to);
		done += c;
		if (c < n)
			break;
	}
	return done;
}
