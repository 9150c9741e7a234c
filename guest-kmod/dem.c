// SPDX-License-Identifier: GPL-2.0-only
/*
 * dem.c: the Domain Event Manager's hypercalls (evtmgr_op, 43), as the guest uses them. Arguments live in kernel
 * memory (the stack or kmalloc): Xen reads them through the guest's own page tables, as for every PV hypercall.
 * Errors come back as negative Linux errno values (Xen's and Linux's numbers agree for all the DEM returns).
 */
#include <linux/kernel.h>
#include <linux/string.h>
#include <xen/xen.h>
#include <asm/xen/hypercall.h>
#include "fastivc.h"

static long evtmgr_op(unsigned int cmd, void *arg)
{
	atomic64_inc(&fastivc_stats.dem_calls);
	return xen_single_call(EVTMGR_HYPERCALL, cmd, (unsigned long)arg, 0, 0, 0);
}

void fastivc_addr_v4(struct xen_evtmgr_addr *a, __be32 ip)
{
	memset(a, 0, sizeof(*a));
	a->family = EVTMGR_AF_INET;
	memcpy(a->addr, &ip, 4);
}

void fastivc_addr_v6(struct xen_evtmgr_addr *a, const struct in6_addr *ip)
{
	memset(a, 0, sizeof(*a));
	a->family = EVTMGR_AF_INET6;
	memcpy(a->addr, ip, 16);
}

int dem_info(struct xen_evtmgr_info *info)
{
	memset(info, 0, sizeof(*info));
	return evtmgr_op(EVTMGR_OP_info, info);
}

int dem_lookup(const struct xen_evtmgr_addr *addr, domid_t *domid)
{
	struct xen_evtmgr_ip_entry e;
	long rc;

	memset(&e, 0, sizeof(e));
	e.addr = *addr;
	rc = evtmgr_op(EVTMGR_OP_ip_lookup, &e);
	if (rc)
		return rc;
	*domid = e.domid;
	return 0;
}

static void conn_of(struct xen_evtmgr_conn *c, const struct fastivc_sock *ctx)
{
	memset(c, 0, sizeof(*c));
	c->src = ctx->laddr;
	c->dst = ctx->raddr;
	c->src_port = ctx->lport;
	c->dst_port = ctx->rport;
}

/* Raises `events` on a connection named from our end (src: ours), with no socket context (the SEM's answers). */
int dem_raise_conn(const struct xen_evtmgr_conn *conn, u32 events)
{
	struct xen_evtmgr_raise r;
	long rc;

	memset(&r, 0, sizeof(r));
	r.conn = *conn;
	r.conn.pad = 0;
	r.events = events;
	rc = evtmgr_op(EVTMGR_OP_raise, &r);
	if (!rc)
		atomic64_inc(&fastivc_stats.events_raised);
	return rc;
}

/* Raises `events` on the connection of ctx towards its peer; `tunnel` only with EVENT_CREATE_TUNNEL. */
int dem_raise(struct fastivc_sock *ctx, u32 events, const struct xen_evtmgr_tunnel *tunnel)
{
	struct xen_evtmgr_raise r;
	long rc;

	memset(&r, 0, sizeof(r));
	conn_of(&r.conn, ctx);
	r.events = events;
	if (tunnel)
		r.tunnel = *tunnel;
	rc = evtmgr_op(EVTMGR_OP_raise, &r);
	if (!rc) {
		atomic64_inc(&fastivc_stats.events_raised);
		WRITE_ONCE(ctx->events_raised, ctx->events_raised + 1);
	}
	return rc;
}

int dem_get_events(struct xen_evtmgr_get_events *ge, u32 room)
{
	ge->nr = room;
	ge->more = 0;
	atomic64_inc(&fastivc_stats.fetches);
	return evtmgr_op(EVTMGR_OP_get_events, ge);
}

/* Drops this domain's record of a connection (the events raised towards us on it), named from our end. */
int dem_release_conn(const struct xen_evtmgr_conn *conn)
{
	struct xen_evtmgr_conn c = *conn;

	c.pad = 0;
	return evtmgr_op(EVTMGR_OP_release, &c);
}

/* ... when the socket closes. */
int dem_release(struct fastivc_sock *ctx)
{
	struct xen_evtmgr_conn c;

	conn_of(&c, ctx);
	return evtmgr_op(EVTMGR_OP_release, &c);
}
