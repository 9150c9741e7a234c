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
	return xen_single_call(EVTMGR_HYPERCALL, cmd, (unsigned long)arg, 0, 0, 0);
}

static void addr_v4(struct xen_evtmgr_addr *a, __be32 ip)
{
	memset(a, 0, sizeof(*a));
	a->family = EVTMGR_AF_INET;
	memcpy(a->addr, &ip, 4);
}

int dem_info(struct xen_evtmgr_info *info)
{
	memset(info, 0, sizeof(*info));
	return evtmgr_op(EVTMGR_OP_info, info);
}

int dem_lookup(__be32 addr, domid_t *domid)
{
	struct xen_evtmgr_ip_entry e;
	long rc;

	memset(&e, 0, sizeof(e));
	addr_v4(&e.addr, addr);
	rc = evtmgr_op(EVTMGR_OP_ip_lookup, &e);
	if (rc)
		return rc;
	*domid = e.domid;
	return 0;
}

static void conn_v4(struct xen_evtmgr_conn *c, __be32 laddr, u16 lport, __be32 raddr, u16 rport)
{
	memset(c, 0, sizeof(*c));
	addr_v4(&c->src, laddr);
	addr_v4(&c->dst, raddr);
	c->src_port = lport;
	c->dst_port = rport;
}

int dem_raise_conn(__be32 laddr, u16 lport, __be32 raddr, u16 rport, u32 events)
{
	struct xen_evtmgr_raise r;
	long rc;

	memset(&r, 0, sizeof(r));
	conn_v4(&r.conn, laddr, lport, raddr, rport);
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
	conn_v4(&r.conn, ctx->laddr, ctx->lport, ctx->raddr, ctx->rport);
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

/* Drops this domain's record of a connection (the events raised towards us on it). */
int dem_release_conn(__be32 laddr, u16 lport, __be32 raddr, u16 rport)
{
	struct xen_evtmgr_conn c;

	conn_v4(&c, laddr, lport, raddr, rport);
	return evtmgr_op(EVTMGR_OP_release, &c);
}

/* ... when the socket closes. */
int dem_release(struct fastivc_sock *ctx)
{
	return dem_release_conn(ctx->laddr, ctx->lport, ctx->raddr, ctx->rport);
}
