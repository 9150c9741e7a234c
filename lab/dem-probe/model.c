/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dem-probe host-test build only (make model -> dem-probe-model): a small reference model of the DEM written from
 * public/evtmgr.h, so the probe's own logic (encoding, decoding, query paging, the selftest's case construction
 * and its state checks) can be run on a host without Xen. It is not the DEM and never goes into the guest binary;
 * the guests run the real hypervisor.
 *
 * Environment:
 *   DEM_MODEL_STATE    file holding the model's state between runs (required; created empty)
 *   DEM_MODEL_DOMID    the calling domain (default 0; domain 0 is privileged)
 *   DEM_MODEL_DOMAINS  live domains, comma-separated (default 0,1,2,3)
 *   DEM_MODEL_BATCH    max_batch (default 4, small so that paging is exercised)
 *   DEM_MODEL_BUG      a deliberate non-conformance, to check that the selftest notices:
 *                      raise-pad (raise.pad is not checked), lookup-pad (ip_entry.pad/pad2 are not checked by lookup),
 *                      ipv4-only (every IPv6 address refused, as a DEM before IPv6), v4-mapped (IPv4-mapped IPv6
 *                      addresses accepted), two-families (a connection's ends may be of different families)
 *
 * Guest memory is reached with process_vm_readv/writev on our own pid, which fail with EFAULT exactly where a
 * hypervisor copy would (unmapped or PROT_NONE).
 */
#include "dem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/uio.h>
#include <unistd.h>

#define M_MAX_IP 32
#define M_MAX_IP_PER_DOMAIN 8
#define M_MAX_RECORDS 64
#define M_MAX_RECORDS_PER_DOMAIN 16
#define M_MAX_PENDING_PER_DOMAIN 8
#define M_MAGIC 0x44454d31u /* "DEM1" */

struct m_record {
	xen_evtmgr_record_t r;
	xen_evtmgr_tunnel_t tunnel;
	uint64_t seq; /* raise order of the pending bits (event_hint) */
};

struct m_state {
	uint32_t magic;
	uint32_t nr_ip, nr_rec;
	uint64_t seq;
	xen_evtmgr_ip_entry_t ip[M_MAX_IP];
	struct m_record rec[M_MAX_RECORDS];
	xen_evtmgr_counters_t c;
};

static struct m_state st;
static int state_fd = -1;
static domid_t caller;
static uint32_t batch = 4;
static const char *bug = "";
static domid_t live[64];
static unsigned nr_live;

static int copy_from(void *dst, const void *guest, size_t n)
{
	struct iovec l = { dst, n }, r = { (void *)guest, n };

	return process_vm_readv(getpid(), &l, 1, &r, 1, 0) == (ssize_t)n ? 0 : -EFAULT;
}

static int copy_to(void *guest, const void *src, size_t n)
{
	struct iovec l = { (void *)src, n }, r = { guest, n };

	return process_vm_writev(getpid(), &l, 1, &r, 1, 0) == (ssize_t)n ? 0 : -EFAULT;
}

static void save(void)
{
	if (pwrite(state_fd, &st, sizeof(st), 0) != (ssize_t)sizeof(st)) {
		perror("dem-probe-model: save");
		exit(1);
	}
}

int model_open(void)
{
	const char *path = getenv("DEM_MODEL_STATE"), *s;
	ssize_t n;

	if (!path || !*path) {
		errno = ENOENT;
		return -1;
	}
	state_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (state_fd < 0 || flock(state_fd, LOCK_EX) < 0)
		return -1;
	n = pread(state_fd, &st, sizeof(st), 0);
	if (n != (ssize_t)sizeof(st) || st.magic != M_MAGIC) {
		memset(&st, 0, sizeof(st));
		st.magic = M_MAGIC;
	}
	caller = (domid_t)atoi(getenv("DEM_MODEL_DOMID") ? getenv("DEM_MODEL_DOMID") : "0");
	if ((s = getenv("DEM_MODEL_BATCH")))
		batch = (uint32_t)atoi(s);
	if ((s = getenv("DEM_MODEL_BUG")))
		bug = s;
	s = getenv("DEM_MODEL_DOMAINS") ? getenv("DEM_MODEL_DOMAINS") : "0,1,2,3";
	for (const char *p = s; *p && nr_live < 64;) {
		live[nr_live++] = (domid_t)atoi(p);
		p = strchr(p, ',');
		if (!p)
			break;
		p++;
	}
	return 0;
}

static int is_live(domid_t d)
{
	for (unsigned i = 0; i < nr_live; i++)
		if (live[i] == d)
			return 1;
	return 0;
}

/* IPv4: addr[0..3], the rest zero. IPv6: all 16 bytes, not ::ffff:a.b.c.d (named as IPv4). Never all zero. */
static int addr_ok(const xen_evtmgr_addr_t *a)
{
	static const uint8_t v4mapped[12] = { [10] = 0xff, [11] = 0xff };
	int nonzero = 0;

	if (a->pad[0] || a->pad[1] || a->pad[2])
		return 0;
	if (a->family == XEN_EVTMGR_AF_INET6) {
		if (!strcmp(bug, "ipv4-only") || (!memcmp(a->addr, v4mapped, 12) && strcmp(bug, "v4-mapped")))
			return 0;
		for (int i = 0; i < 16; i++)
			nonzero |= a->addr[i];
		return nonzero != 0;
	}
	if (a->family != XEN_EVTMGR_AF_INET)
		return 0;
	for (int i = 4; i < 16; i++)
		if (a->addr[i])
			return 0;
	for (int i = 0; i < 4; i++)
		nonzero |= a->addr[i];
	return nonzero != 0;
}

/* Both ends of a connection are of one family. */
static int conn_ok(const xen_evtmgr_conn_t *c)
{
	return addr_ok(&c->src) && addr_ok(&c->dst) && !c->pad &&
	       (c->src.family == c->dst.family || !strcmp(bug, "two-families"));
}

static int find_ip(const xen_evtmgr_addr_t *a)
{
	for (uint32_t i = 0; i < st.nr_ip; i++)
		if (addr_equal(&st.ip[i].addr, a))
			return (int)i;
	return -1;
}

static domid_t owner_of(const xen_evtmgr_addr_t *a)
{
	int i = find_ip(a);

	return i < 0 ? XEN_EVTMGR_DOMID_NONE : st.ip[i].domid;
}

/* Table order of the header: by family, then address bytes. */
static int addr_before(const xen_evtmgr_addr_t *a, const xen_evtmgr_addr_t *b)
{
	if (a->family != b->family)
		return a->family < b->family;
	return memcmp(a->addr, b->addr, sizeof(a->addr)) < 0;
}

/* An address leaves its owner (ip_del, or ip_set to another domain): records that name it go, as the header says. */
static void purge_addr(domid_t owner, const xen_evtmgr_addr_t *a)
{
	for (uint32_t i = 0; i < st.nr_rec;) {
		const xen_evtmgr_record_t *r = &st.rec[i].r;

		if ((r->raiser == owner && addr_equal(&r->conn.src, a)) || (r->owner == owner && addr_equal(&r->conn.dst, a))) {
			memmove(&st.rec[i], &st.rec[i + 1], (st.nr_rec - i - 1) * sizeof(st.rec[0]));
			st.nr_rec--;
			st.c.records_freed++;
		} else {
			i++;
		}
	}
}

static unsigned count_ip(domid_t d)
{
	unsigned n = 0;

	for (uint32_t i = 0; i < st.nr_ip; i++)
		n += st.ip[i].domid == d;
	return n;
}

static unsigned count_records(domid_t owner, int pending_only)
{
	unsigned n = 0;

	for (uint32_t i = 0; i < st.nr_rec; i++)
		n += st.rec[i].r.owner == owner && (!pending_only || st.rec[i].r.pending);
	return n;
}

static void swap_conn(xen_evtmgr_conn_t *out, const xen_evtmgr_conn_t *in)
{
	memset(out, 0, sizeof(*out));
	out->src = in->dst;
	out->dst = in->src;
	out->src_port = in->dst_port;
	out->dst_port = in->src_port;
}

static void update_now(void)
{
	st.c.ip_entries = st.nr_ip;
	st.c.records = st.nr_rec;
	st.c.pending = 0;
	for (uint32_t i = 0; i < st.nr_rec; i++)
		st.c.pending += st.rec[i].r.pending != 0;
}

static long op_ip(unsigned int cmd, void *arg)
{
	xen_evtmgr_ip_entry_t e;
	int i;

	if (cmd != XEN_EVTMGR_OP_ip_lookup && caller != 0)
		return -EPERM;
	if (copy_from(&e, arg, sizeof(e)))
		return -EFAULT;
	if (!addr_ok(&e.addr) || ((e.pad || e.pad2) && !(cmd == XEN_EVTMGR_OP_ip_lookup && !strcmp(bug, "lookup-pad"))))
		return -EINVAL;
	i = find_ip(&e.addr);
	switch (cmd) {
	case XEN_EVTMGR_OP_ip_lookup:
		st.c.lookups++;
		e.domid = i < 0 ? XEN_EVTMGR_DOMID_NONE : st.ip[i].domid;
		return copy_to(arg, &e, sizeof(e));
	case XEN_EVTMGR_OP_ip_set:
		if (!is_live(e.domid))
			return -ESRCH;
		if (i >= 0 && st.ip[i].domid == e.domid)
			return 0;
		if (count_ip(e.domid) >= M_MAX_IP_PER_DOMAIN || (i < 0 && st.nr_ip == M_MAX_IP))
			return -ENOSPC;
		if (i >= 0) {
			purge_addr(st.ip[i].domid, &e.addr);
			st.ip[i].domid = e.domid;
			return 0;
		}
		for (i = 0; (uint32_t)i < st.nr_ip && addr_before(&st.ip[i].addr, &e.addr); i++)
			;
		memmove(&st.ip[i + 1], &st.ip[i], (st.nr_ip - (uint32_t)i) * sizeof(st.ip[0]));
		st.nr_ip++;
		st.ip[i] = (xen_evtmgr_ip_entry_t){ .addr = e.addr, .domid = e.domid };
		return 0;
	default: /* ip_del */
		if (i < 0)
			return -ENOENT;
		if (e.domid != XEN_EVTMGR_DOMID_NONE && e.domid != st.ip[i].domid)
			return -ESRCH;
		purge_addr(st.ip[i].domid, &e.addr);
		memmove(&st.ip[i], &st.ip[i + 1], (st.nr_ip - (uint32_t)i - 1) * sizeof(st.ip[0]));
		st.nr_ip--;
		return 0;
	}
}

static int tunnel_ok(const xen_evtmgr_tunnel_t *t)
{
	if (t->nr_channels < 1 || t->nr_channels > XEN_EVTMGR_MAX_CHANNELS)
		return 0;
	if (t->channel_size % 4096 || t->channel_size < XEN_EVTMGR_MIN_CHANNEL_SIZE ||
	    t->channel_size > XEN_EVTMGR_MAX_CHANNEL_SIZE)
		return 0;
	if (t->nr_grefs < 1 || t->nr_grefs > XEN_EVTMGR_MAX_GREFS || t->flags)
		return 0;
	for (uint32_t i = t->nr_grefs; i < XEN_EVTMGR_MAX_GREFS; i++)
		if (t->gref[i])
			return 0;
	return 1;
}

static long op_raise(void *arg)
{
	static const xen_evtmgr_tunnel_t zero;
	xen_evtmgr_raise_t r;
	struct m_record *rec = NULL;
	domid_t owner;

	if (copy_from(&r, arg, sizeof(r)))
		return -EFAULT;
	if (!conn_ok(&r.conn) || (r.pad && strcmp(bug, "raise-pad")) || !r.events || (r.events & ~XEN_EVTMGR_EVENT_ALL))
		return -EINVAL;
	if (r.events & XEN_EVTMGR_EVENT_CREATE_TUNNEL ? !tunnel_ok(&r.tunnel)
						       : memcmp(&r.tunnel, &zero, sizeof(zero)) != 0)
		return -EINVAL;
	if (owner_of(&r.conn.src) != caller)
		return -EACCES;
	owner = owner_of(&r.conn.dst);
	if (owner == XEN_EVTMGR_DOMID_NONE)
		return -ENOENT;
	if (owner == caller)
		return -ELOOP;
	if (!is_live(owner))
		return -ESRCH;
	for (uint32_t i = 0; i < st.nr_rec; i++)
		if (st.rec[i].r.owner == owner && conn_equal(&st.rec[i].r.conn, &r.conn))
			rec = &st.rec[i];
	if (!rec) {
		if (count_records(owner, 0) >= M_MAX_RECORDS_PER_DOMAIN || st.nr_rec == M_MAX_RECORDS)
			return -ENOSPC;
		rec = &st.rec[st.nr_rec++];
		memset(rec, 0, sizeof(*rec));
		rec->r.conn = r.conn;
		rec->r.owner = owner;
		rec->r.raiser = caller;
		st.c.records_created++;
	}
	if (!rec->r.pending && count_records(owner, 1) >= M_MAX_PENDING_PER_DOMAIN)
		return -EBUSY;
	if (!count_records(owner, 1))
		st.c.virqs++;
	if (!rec->r.pending)
		rec->seq = ++st.seq;
	rec->r.pending |= r.events;
	for (int b = 0; b < 6; b++)
		if (r.events & (1u << b))
			rec->r.raised[b]++;
	if (r.events & XEN_EVTMGR_EVENT_CREATE_TUNNEL) {
		rec->tunnel = r.tunnel;
		rec->r.nr_channels = r.tunnel.nr_channels;
		rec->r.channel_size = r.tunnel.channel_size;
	}
	st.c.raises++;
	return 0;
}

static long op_get_events(void *arg)
{
	xen_evtmgr_get_events_t g;
	uint32_t n = 0;

	if (copy_from(&g, arg, sizeof(g)))
		return -EFAULT;
	if (g.nr == 0)
		return -EINVAL;
	if (g.nr > batch)
		return -E2BIG;
	st.c.fetches++;
	while (n < g.nr) {
		struct m_record *best = NULL;
		xen_evtmgr_event_t e;

		for (uint32_t i = 0; i < st.nr_rec; i++)
			if (st.rec[i].r.owner == caller && st.rec[i].r.pending && (!best || st.rec[i].seq < best->seq))
				best = &st.rec[i];
		if (!best)
			break;
		memset(&e, 0, sizeof(e));
		swap_conn(&e.conn, &best->r.conn);
		e.events = best->r.pending;
		e.peer = best->r.raiser;
		if (e.events & XEN_EVTMGR_EVENT_CREATE_TUNNEL)
			e.tunnel = best->tunnel;
		if (copy_to(&((xen_evtmgr_get_events_t *)arg)->ev[n], &e, sizeof(e)))
			return -EFAULT;
		best->r.pending = 0;
		best->r.fetched++;
		st.c.events_delivered++;
		n++;
	}
	g.nr = n;
	g.more = count_records(caller, 1) != 0;
	return copy_to(arg, &g, sizeof(g));
}

static long op_release(void *arg)
{
	xen_evtmgr_conn_t c, raiser_view;

	if (copy_from(&c, arg, sizeof(c)))
		return -EFAULT;
	if (!conn_ok(&c))
		return -EINVAL;
	swap_conn(&raiser_view, &c);
	for (uint32_t i = 0; i < st.nr_rec; i++)
		if (st.rec[i].r.owner == caller && conn_equal(&st.rec[i].r.conn, &raiser_view)) {
			memmove(&st.rec[i], &st.rec[i + 1], (st.nr_rec - i - 1) * sizeof(st.rec[0]));
			st.nr_rec--;
			st.c.records_freed++;
			return 0;
		}
	return -ENOENT;
}

static long op_query(void *arg)
{
	xen_evtmgr_query_t q;
	uint32_t total, n = 0;

	if (caller != 0)
		return -EPERM;
	if (copy_from(&q, arg, sizeof(q)))
		return -EFAULT;
	if (q.what != XEN_EVTMGR_QUERY_ip && q.what != XEN_EVTMGR_QUERY_records)
		return -EINVAL;
	if (q.nr > batch)
		return -E2BIG;
	total = q.what == XEN_EVTMGR_QUERY_ip ? st.nr_ip : st.nr_rec;
	/* records grouped by owner (stable: creation order within an owner) */
	uint32_t order[M_MAX_RECORDS], k = 0;
	for (uint32_t d = 0; d < 65536 && k < st.nr_rec; d++)
		for (uint32_t i = 0; i < st.nr_rec; i++)
			if (st.rec[i].r.owner == d)
				order[k++] = i;
	for (uint32_t i = q.start; i < total && n < q.nr; i++, n++) {
		int r;

		if (q.what == XEN_EVTMGR_QUERY_ip)
			r = copy_to((xen_evtmgr_ip_entry_t *)((xen_evtmgr_query_t *)arg + 1) + n, &st.ip[i],
				    sizeof(st.ip[i]));
		else
			r = copy_to((xen_evtmgr_record_t *)((xen_evtmgr_query_t *)arg + 1) + n, &st.rec[order[i]].r,
				    sizeof(st.rec[order[i]].r));
		if (r)
			return r;
	}
	update_now();
	q.nr = n;
	q.total = total;
	q.counters = st.c;
	return copy_to(arg, &q, sizeof(q));
}

long model_op(unsigned int cmd, void *arg)
{
	long rc;

	switch (cmd) {
	case XEN_EVTMGR_OP_info: {
		xen_evtmgr_info_t i = {
			.abi_version = XEN_EVTMGR_ABI_VERSION,
			.virq = DEM_VIRQ,
			.max_ip_per_domain = M_MAX_IP_PER_DOMAIN,
			.max_records_per_domain = M_MAX_RECORDS_PER_DOMAIN,
			.max_pending_per_domain = M_MAX_PENDING_PER_DOMAIN,
			.max_batch = batch,
			.domid = caller,
		};
		return copy_to(arg, &i, sizeof(i));
	}
	case XEN_EVTMGR_OP_ip_set:
	case XEN_EVTMGR_OP_ip_del:
	case XEN_EVTMGR_OP_ip_lookup:
		rc = op_ip(cmd, arg);
		break;
	case XEN_EVTMGR_OP_raise:
		rc = op_raise(arg);
		if (rc < 0)
			st.c.raises_denied++;
		break;
	case XEN_EVTMGR_OP_get_events:
		rc = op_get_events(arg);
		break;
	case XEN_EVTMGR_OP_release:
		rc = op_release(arg);
		break;
	case XEN_EVTMGR_OP_query:
		rc = op_query(arg);
		break;
	default:
		return -EOPNOTSUPP;
	}
	update_now();
	save();
	return rc;
}
