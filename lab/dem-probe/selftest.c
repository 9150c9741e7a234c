/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dem-probe selftest: single-domain conformance of the DEM against the exact return value or errno that
 * public/evtmgr.h documents for each case. It needs three addresses: --self (owned by this domain), --peer
 * (owned by another live domain) and --unowned (not owned by this domain); --privileged adds the IP-table and
 * query cases a control domain may run, the others check that an unprivileged domain gets EPERM.
 *
 * Every negative raise is built so that the only defect is the one under test (src is ours, dst is the peer's),
 * so a DEM that wrongly accepts it would leave a record at the peer; it is counted, reported in "state_left", and
 * with --privileged looked for in the records table. Successful calls that change state (the privileged IP-table
 * round trip) are undone before the end, whatever happens in between. The selftest never fetches: a successful
 * get_events would take events away from fastivc.ko.
 *
 * IPv6: --self, --peer, --unowned and --spare are IPv4 (the address-layout cases spoil their IPv4 encoding); the
 * IPv6 cases use 2001:db8::fa (nobody's, as 192.0.2.250) and, with --privileged, --spare6 (default 2001:db8::c9),
 * which the run owns for a while and removes. No successful raise is made with them either.
 */
#include "dem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ESRCH_DOMID 30000 /* a domain id no lab domain has */

struct st {
	struct jb j;
	unsigned passed, failed;
	int privileged;
	xen_evtmgr_info_t info;
	domid_t own, peer_dom;
	xen_evtmgr_addr_t self, peer, unowned, spare, nobody;
	xen_evtmgr_addr_t spare6, nobody6; /* IPv6: --spare6, and 2001:db8::fa which nobody owns */
	void *noaccess;
	unsigned char *buf; /* touched, room for max_batch + 1 entries of any kind */
	unsigned leaks;     /* negative raises that succeeded */
	int self_added;     /* --privileged: --self was unowned, the run made it ours and removes it at the end */
	const char *error;  /* why the run stopped early, if it did */
};

static void rc_text(char *buf, size_t n, long rc)
{
	if (rc >= 0)
		snprintf(buf, n, "ok");
	else
		snprintf(buf, n, "%s", errno_name((int)-rc));
}

static void record(struct st *s, const char *name, int pass, const char *expected, const char *got)
{
	jb_printf(&s->j, "%s{\"name\":", s->passed + s->failed ? "," : "");
	jb_str(&s->j, name);
	jb_printf(&s->j, ",\"pass\":%s,\"expected\":", pass ? "true" : "false");
	jb_str(&s->j, expected);
	jb_printf(&s->j, ",\"got\":");
	jb_str(&s->j, got);
	jb_printf(&s->j, "}");
	if (pass)
		s->passed++;
	else
		s->failed++;
}

/* want: 0 for success, else the positive errno the header documents. Returns 1 on pass. */
static int expect(struct st *s, const char *name, long rc, int want)
{
	char exp[32], got[32];
	int pass = want ? rc == -want : rc >= 0;

	rc_text(exp, sizeof(exp), -(long)want);
	rc_text(got, sizeof(got), rc);
	record(s, name, pass, exp, got);
	return pass;
}

static void expect_domid(struct st *s, const char *name, long rc, domid_t got, domid_t want)
{
	char e[32], g[32];

	if (want == XEN_EVTMGR_DOMID_NONE)
		snprintf(e, sizeof(e), "DOMID_NONE");
	else
		snprintf(e, sizeof(e), "%u", want);
	if (rc < 0)
		rc_text(g, sizeof(g), rc);
	else if (got == XEN_EVTMGR_DOMID_NONE)
		snprintf(g, sizeof(g), "DOMID_NONE");
	else
		snprintf(g, sizeof(g), "%u", got);
	record(s, name, rc >= 0 && got == want, e, g);
}

static long lookup(const xen_evtmgr_addr_t *a, domid_t *owner)
{
	xen_evtmgr_ip_entry_t e = { .addr = *a };
	long rc = dem_op_obj(XEN_EVTMGR_OP_ip_lookup, &e, sizeof(e));

	*owner = rc < 0 ? XEN_EVTMGR_DOMID_NONE : e.domid;
	return rc;
}

static long ip_op(unsigned int cmd, const xen_evtmgr_addr_t *a, domid_t d)
{
	xen_evtmgr_ip_entry_t e = { .addr = *a, .domid = d };

	return dem_op_obj(cmd, &e, sizeof(e));
}

/* ::ffff:a.b.c.d, the IPv4-mapped IPv6 form of an IPv4 address: the DEM refuses it (one name per address). */
static xen_evtmgr_addr_t mapped(const xen_evtmgr_addr_t *v4)
{
	xen_evtmgr_addr_t a = { .family = XEN_EVTMGR_AF_INET6 };

	a.addr[10] = a.addr[11] = 0xff;
	memcpy(&a.addr[12], v4->addr, 4);
	return a;
}

static void base_conn(const struct st *s, xen_evtmgr_conn_t *c)
{
	memset(c, 0, sizeof(*c));
	c->src = s->self;
	c->dst = s->peer;
	c->src_port = SELFTEST_SRC_PORT;
	c->dst_port = SELFTEST_DST_PORT;
}

/* A valid raise of SEND_DATA from --self to --peer; each case spoils exactly one thing. */
static void base_raise(const struct st *s, xen_evtmgr_raise_t *r)
{
	memset(r, 0, sizeof(*r));
	base_conn(s, &r->conn);
	r->events = XEN_EVTMGR_EVENT_SEND_DATA;
}

/* A valid CREATE_TUNNEL raise: 4 channels of a page, one grant reference. */
static void base_create(const struct st *s, xen_evtmgr_raise_t *r)
{
	base_raise(s, r);
	r->events = XEN_EVTMGR_EVENT_CREATE_TUNNEL;
	r->tunnel.nr_channels = 4;
	r->tunnel.channel_size = XEN_EVTMGR_MIN_CHANNEL_SIZE;
	r->tunnel.nr_grefs = 1;
	r->tunnel.gref[0] = 8;
}

static void raise_case(struct st *s, const char *name, xen_evtmgr_raise_t *r, int want)
{
	long rc = dem_op_obj(XEN_EVTMGR_OP_raise, r, sizeof(*r));

	if (rc >= 0)
		s->leaks++;
	expect(s, name, rc, want);
}

static xen_evtmgr_get_events_t *get_events_buf(struct st *s, uint32_t nr)
{
	xen_evtmgr_get_events_t *g = (xen_evtmgr_get_events_t *)s->buf;

	memset(g, 0, sizeof(*g) + sizeof(xen_evtmgr_event_t));
	g->nr = nr;
	return g;
}

static long query(struct st *s, uint32_t what, uint32_t start, uint32_t nr, xen_evtmgr_query_t **out)
{
	xen_evtmgr_query_t *q = (xen_evtmgr_query_t *)s->buf;

	memset(q, 0, sizeof(*q));
	q->what = what;
	q->start = start;
	q->nr = nr;
	*out = q;
	return dem_op(XEN_EVTMGR_OP_query, q);
}

/* Owner of `a` in the query ip table: 1 found, 0 not found, < 0 the query failed. */
static long query_ip_owner(struct st *s, const xen_evtmgr_addr_t *a, domid_t *owner)
{
	uint32_t start = 0;

	for (;;) {
		xen_evtmgr_query_t *q;
		long rc = query(s, XEN_EVTMGR_QUERY_ip, start, s->info.max_batch, &q);

		if (rc < 0)
			return rc;
		if (q->nr > s->info.max_batch)
			return -EPROTO;
		for (uint32_t i = 0; i < q->nr; i++) {
			xen_evtmgr_ip_entry_t *e = (xen_evtmgr_ip_entry_t *)(q + 1) + i;

			if (addr_equal(&e->addr, a)) {
				*owner = e->domid;
				return 1;
			}
		}
		start += q->nr;
		if (start >= q->total || q->nr == 0)
			return 0;
	}
}

/* Table order (evtmgr.h): by family, IPv4 before IPv6, then address bytes. 1 in order, 0 not, < 0 error. */
static long query_ip_in_order(struct st *s)
{
	xen_evtmgr_addr_t prev = { 0 };
	uint32_t start = 0;

	for (;;) {
		xen_evtmgr_query_t *q;
		long rc = query(s, XEN_EVTMGR_QUERY_ip, start, s->info.max_batch, &q);

		if (rc < 0)
			return rc;
		if (q->nr > s->info.max_batch)
			return -EPROTO;
		for (uint32_t i = 0; i < q->nr; i++) {
			const xen_evtmgr_addr_t *a = &((xen_evtmgr_ip_entry_t *)(q + 1))[i].addr;

			if (start + i &&
			    (a->family < prev.family ||
			     (a->family == prev.family && memcmp(a->addr, prev.addr, sizeof(a->addr)) <= 0)))
				return 0;
			prev = *a;
		}
		start += q->nr;
		if (start >= q->total || q->nr == 0)
			return 1;
	}
}

/* Whether the records table has a record for conn, as the raiser names it: 1 yes, 0 no, < 0 error. */
static long query_has_record(struct st *s, const xen_evtmgr_conn_t *c)
{
	uint32_t start = 0;

	for (;;) {
		xen_evtmgr_query_t *q;
		long rc = query(s, XEN_EVTMGR_QUERY_records, start, s->info.max_batch, &q);

		if (rc < 0)
			return rc;
		if (q->nr > s->info.max_batch)
			return -EPROTO;
		for (uint32_t i = 0; i < q->nr; i++)
			if (conn_equal(&((xen_evtmgr_record_t *)(q + 1))[i].conn, c))
				return 1;
		start += q->nr;
		if (start >= q->total || q->nr == 0)
			return 0;
	}
}

/* ---------------------------------------------------------------- case groups */

static void info_cases(struct st *s)
{
	char e[64], g[96];
	const xen_evtmgr_info_t *i = &s->info;

	snprintf(g, sizeof(g), "%u", i->abi_version);
	record(s, "info abi_version is XEN_EVTMGR_ABI_VERSION (1)", i->abi_version == XEN_EVTMGR_ABI_VERSION, "1", g);
	snprintf(e, sizeof(e), "%u", DEM_VIRQ);
	snprintf(g, sizeof(g), "%u", i->virq);
	record(s, "info virq is VIRQ_EVTMGR", i->virq == DEM_VIRQ, e, g);
	snprintf(g, sizeof(g), "ip=%u records=%u pending=%u batch=%u", i->max_ip_per_domain, i->max_records_per_domain,
		 i->max_pending_per_domain, i->max_batch);
	record(s, "info limits are > 0",
	       i->max_ip_per_domain && i->max_records_per_domain && i->max_pending_per_domain && i->max_batch, "all > 0",
	       g);
}

static void unknown_op_cases(struct st *s)
{
	memset(s->buf, 0, 256);
	expect(s, "unknown op 99 -> EOPNOTSUPP", dem_op(99, s->buf), EOPNOTSUPP);
	expect(s, "unknown op 8 (first unused) -> EOPNOTSUPP", dem_op(XEN_EVTMGR_OP_query + 1, s->buf), EOPNOTSUPP);
}

static void lookup_cases(struct st *s)
{
	domid_t d;
	long rc;
	char g[32];

	rc = lookup(&s->peer, &d);
	if (rc < 0)
		rc_text(g, sizeof(g), rc);
	else if (d == XEN_EVTMGR_DOMID_NONE)
		snprintf(g, sizeof(g), "DOMID_NONE");
	else
		snprintf(g, sizeof(g), "%u", d);
	s->peer_dom = d;
	record(s, "lookup --peer -> another live domain", rc >= 0 && d != XEN_EVTMGR_DOMID_NONE && d != s->own,
	       "a domid other than own", g);

	rc = lookup(&s->unowned, &d);
	if (rc < 0)
		rc_text(g, sizeof(g), rc);
	else
		snprintf(g, sizeof(g), "%u", d);
	record(s, "lookup --unowned -> not own", rc >= 0 && d != s->own, "not own domid", g);

	rc = lookup(&s->nobody, &d);
	expect_domid(s, "lookup 192.0.2.250 (nobody's) -> DOMID_NONE", rc, d, XEN_EVTMGR_DOMID_NONE);
}

static void efault_case(struct st *s, const char *op, unsigned int cmd)
{
	char name[96];

	snprintf(name, sizeof(name), "%s arg (void*)1 -> EFAULT", op);
	expect(s, name, dem_op(cmd, (void *)1), EFAULT);
	snprintf(name, sizeof(name), "%s arg on a PROT_NONE page -> EFAULT", op);
	expect(s, name, dem_op(cmd, s->noaccess), EFAULT);
}

static void efault_cases(struct st *s)
{
	efault_case(s, "info", XEN_EVTMGR_OP_info);
	efault_case(s, "ip_lookup", XEN_EVTMGR_OP_ip_lookup);
	efault_case(s, "raise", XEN_EVTMGR_OP_raise);
	efault_case(s, "get_events", XEN_EVTMGR_OP_get_events);
	efault_case(s, "release", XEN_EVTMGR_OP_release);
	if (s->privileged) {
		/* for a domain without privilege the order of EPERM and EFAULT is not specified */
		efault_case(s, "ip_set", XEN_EVTMGR_OP_ip_set);
		efault_case(s, "ip_del", XEN_EVTMGR_OP_ip_del);
		efault_case(s, "query", XEN_EVTMGR_OP_query);
	}
}

/* Spoiled addresses and ip_entry fields, through ip_lookup (any domain, no state). */
static void lookup_einval_cases(struct st *s)
{
	static const struct {
		const char *name;
		int field; /* 0 addr.pad[0], 1 addr.pad[2], 2 addr[4], 3 addr[15], 4 pad, 5 pad2, 6.. family */
		uint8_t family;
	} c[] = {
		{ "lookup addr.pad[0] != 0 -> EINVAL", 0, 0 },
		{ "lookup addr.pad[2] != 0 -> EINVAL", 1, 0 },
		{ "lookup IPv4 address tail addr[4] != 0 -> EINVAL", 2, 0 },
		{ "lookup IPv4 address tail addr[15] != 0 -> EINVAL", 3, 0 },
		{ "lookup ip_entry.pad != 0 -> EINVAL", 4, 0 },
		{ "lookup ip_entry.pad2 != 0 -> EINVAL", 5, 0 },
		{ "lookup family 0 -> EINVAL", 6, 0 },
		{ "lookup family 5 -> EINVAL", 6, 5 },
		{ "lookup family 255 -> EINVAL", 6, 255 },
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		xen_evtmgr_ip_entry_t e = { .addr = s->self };

		switch (c[i].field) {
		case 0: e.addr.pad[0] = 1; break;
		case 1: e.addr.pad[2] = 0x80; break;
		case 2: e.addr.addr[4] = 1; break;
		case 3: e.addr.addr[15] = 1; break;
		case 4: e.pad = 1; break;
		case 5: e.pad2 = 0x80000000u; break;
		default: e.addr.family = c[i].family; break;
		}
		expect(s, c[i].name, dem_op_obj(XEN_EVTMGR_OP_ip_lookup, &e, sizeof(e)), EINVAL);
	}
}

static void raise_cases(struct st *s)
{
	xen_evtmgr_raise_t r;

	base_raise(s, &r), r.conn.src.pad[1] = 1;
	raise_case(s, "raise conn.src.pad != 0 -> EINVAL", &r, EINVAL);
	base_raise(s, &r), r.conn.dst.pad[0] = 1;
	raise_case(s, "raise conn.dst.pad != 0 -> EINVAL", &r, EINVAL);
	base_raise(s, &r), r.conn.src.addr[8] = 1;
	raise_case(s, "raise conn.src address tail != 0 -> EINVAL", &r, EINVAL);
	base_raise(s, &r), r.conn.pad = 1;
	raise_case(s, "raise conn.pad != 0 -> EINVAL", &r, EINVAL);
	base_raise(s, &r), r.pad = 1;
	raise_case(s, "raise pad != 0 -> EINVAL", &r, EINVAL);
	base_raise(s, &r), r.conn.src.family = XEN_EVTMGR_AF_INET6;
	raise_case(s, "raise conn.src family AF_INET6, conn.dst IPv4 (two families) -> EINVAL", &r, EINVAL);
	base_raise(s, &r), r.conn.dst.family = 0;
	raise_case(s, "raise conn.dst family 0 -> EINVAL", &r, EINVAL);

	base_raise(s, &r), r.events = 0;
	raise_case(s, "raise events 0 -> EINVAL", &r, EINVAL);
	base_raise(s, &r), r.events = 1u << 6;
	raise_case(s, "raise events bit 6 -> EINVAL", &r, EINVAL);
	base_raise(s, &r), r.events = XEN_EVTMGR_EVENT_SEND_DATA | (1u << 31);
	raise_case(s, "raise events send_data|bit 31 -> EINVAL", &r, EINVAL);

	base_create(s, &r), r.events = XEN_EVTMGR_EVENT_SEND_DATA;
	raise_case(s, "raise tunnel set without CREATE_TUNNEL -> EINVAL", &r, EINVAL);
	base_create(s, &r), r.tunnel.flags = 1;
	raise_case(s, "raise CREATE tunnel.flags != 0 -> EINVAL", &r, EINVAL);
	base_create(s, &r), r.tunnel.gref[1] = 9;
	raise_case(s, "raise CREATE unused gref[1] != 0 (nr_grefs 1) -> EINVAL", &r, EINVAL);
	base_create(s, &r), r.tunnel.gref[XEN_EVTMGR_MAX_GREFS - 1] = 9;
	raise_case(s, "raise CREATE unused gref[7] != 0 (nr_grefs 1) -> EINVAL", &r, EINVAL);
	base_create(s, &r), r.tunnel.nr_channels = 0;
	raise_case(s, "raise CREATE channels 0 -> EINVAL", &r, EINVAL);
	base_create(s, &r), r.tunnel.nr_channels = XEN_EVTMGR_MAX_CHANNELS + 1;
	raise_case(s, "raise CREATE channels 17 -> EINVAL", &r, EINVAL);
	base_create(s, &r), r.tunnel.channel_size = 0;
	raise_case(s, "raise CREATE channel size 0 -> EINVAL", &r, EINVAL);
	base_create(s, &r), r.tunnel.channel_size = 1000;
	raise_case(s, "raise CREATE channel size 1000 -> EINVAL", &r, EINVAL);
	base_create(s, &r), r.tunnel.channel_size = 6144;
	raise_case(s, "raise CREATE channel size 6144 (not a page multiple) -> EINVAL", &r, EINVAL);
	base_create(s, &r), r.tunnel.channel_size = 512u << 10;
	raise_case(s, "raise CREATE channel size 512 KiB -> EINVAL", &r, EINVAL);
	base_create(s, &r), r.tunnel.nr_grefs = 0, r.tunnel.gref[0] = 0;
	raise_case(s, "raise CREATE nr_grefs 0 -> EINVAL", &r, EINVAL);
	base_create(s, &r), r.tunnel.nr_grefs = XEN_EVTMGR_MAX_GREFS + 1;
	raise_case(s, "raise CREATE nr_grefs 9 -> EINVAL", &r, EINVAL);

	base_raise(s, &r), r.conn.src = s->unowned;
	raise_case(s, "raise from --unowned (not the caller's) -> EACCES", &r, EACCES);
	base_raise(s, &r), r.conn.dst = s->nobody;
	raise_case(s, "raise to 192.0.2.250 (owned by nobody) -> ENOENT", &r, ENOENT);
	base_raise(s, &r), r.conn.dst = s->self;
	raise_case(s, "raise to the caller's own --self -> ELOOP", &r, ELOOP);
}

static void get_events_cases(struct st *s)
{
	expect(s, "get_events nr 0 -> EINVAL", dem_op(XEN_EVTMGR_OP_get_events, get_events_buf(s, 0)), EINVAL);
	expect(s, "get_events nr max_batch+1 -> E2BIG",
	       dem_op(XEN_EVTMGR_OP_get_events, get_events_buf(s, s->info.max_batch + 1)), E2BIG);
	expect(s, "get_events nr 0xffffffff -> E2BIG",
	       dem_op(XEN_EVTMGR_OP_get_events, get_events_buf(s, UINT32_MAX)), E2BIG);
}

static void release_cases(struct st *s)
{
	xen_evtmgr_conn_t c;

	base_conn(s, &c);
	expect(s, "release of a record that does not exist -> ENOENT",
	       dem_op_obj(XEN_EVTMGR_OP_release, &c, sizeof(c)), ENOENT);
	base_conn(s, &c), c.pad = 1;
	expect(s, "release conn.pad != 0 -> EINVAL", dem_op_obj(XEN_EVTMGR_OP_release, &c, sizeof(c)), EINVAL);
	base_conn(s, &c), c.dst.pad[2] = 1;
	expect(s, "release conn.dst.pad != 0 -> EINVAL", dem_op_obj(XEN_EVTMGR_OP_release, &c, sizeof(c)), EINVAL);
	base_conn(s, &c), c.src.family = 0;
	expect(s, "release conn.src family 0 -> EINVAL", dem_op_obj(XEN_EVTMGR_OP_release, &c, sizeof(c)), EINVAL);
}

/* IPv6 through ip_lookup, raise and release: what any domain can check without an IPv6 address of its own. */
static void ipv6_cases(struct st *s)
{
	xen_evtmgr_ip_entry_t e;
	xen_evtmgr_raise_t r;
	xen_evtmgr_conn_t c;
	domid_t d;
	long rc;

	rc = lookup(&s->nobody6, &d);
	expect_domid(s, "lookup 2001:db8::fa (IPv6, nobody's) -> DOMID_NONE", rc, d, XEN_EVTMGR_DOMID_NONE);
	e = (xen_evtmgr_ip_entry_t){ .addr = mapped(&s->self) };
	expect(s, "lookup ::ffff:--self (IPv4-mapped IPv6) -> EINVAL",
	       dem_op_obj(XEN_EVTMGR_OP_ip_lookup, &e, sizeof(e)), EINVAL);
	e = (xen_evtmgr_ip_entry_t){ .addr.family = XEN_EVTMGR_AF_INET6 };
	expect(s, "lookup :: (IPv6, all zero) -> EINVAL", dem_op_obj(XEN_EVTMGR_OP_ip_lookup, &e, sizeof(e)), EINVAL);
	e = (xen_evtmgr_ip_entry_t){ .addr = s->nobody6 }, e.addr.pad[1] = 1;
	expect(s, "lookup IPv6 addr.pad != 0 -> EINVAL", dem_op_obj(XEN_EVTMGR_OP_ip_lookup, &e, sizeof(e)), EINVAL);

	base_raise(s, &r), r.conn.dst = s->nobody6;
	raise_case(s, "raise --self (IPv4) -> 2001:db8::fa (IPv6): two families -> EINVAL", &r, EINVAL);
	base_raise(s, &r), r.conn.src = mapped(&s->self), r.conn.dst = mapped(&s->peer);
	raise_case(s, "raise ::ffff:--self -> ::ffff:--peer (IPv4-mapped IPv6) -> EINVAL", &r, EINVAL);
	base_raise(s, &r), r.conn.src = s->nobody6, r.conn.dst = s->nobody6;
	raise_case(s, "raise from 2001:db8::fa (IPv6, not the caller's) -> EACCES", &r, EACCES);

	base_conn(s, &c), c.dst = s->nobody6;
	expect(s, "release --self (IPv4) -> 2001:db8::fa (IPv6): two families -> EINVAL",
	       dem_op_obj(XEN_EVTMGR_OP_release, &c, sizeof(c)), EINVAL);
	base_conn(s, &c), c.src = s->nobody6, c.dst = s->nobody6;
	expect(s, "release of an IPv6 connection that has no record -> ENOENT",
	       dem_op_obj(XEN_EVTMGR_OP_release, &c, sizeof(c)), ENOENT);
}

static void unprivileged_cases(struct st *s)
{
	xen_evtmgr_query_t *q;

	/* Built so that a DEM that forgot the check changes nothing: self is already ours; 192.0.2.250 is absent. */
	expect(s, "ip_set without privilege -> EPERM", ip_op(XEN_EVTMGR_OP_ip_set, &s->self, s->own), EPERM);
	expect(s, "ip_del without privilege -> EPERM",
	       ip_op(XEN_EVTMGR_OP_ip_del, &s->nobody, XEN_EVTMGR_DOMID_NONE), EPERM);
	expect(s, "query ip without privilege -> EPERM", query(s, XEN_EVTMGR_QUERY_ip, 0, 1, &q), EPERM);
	expect(s, "query records without privilege -> EPERM", query(s, XEN_EVTMGR_QUERY_records, 0, 1, &q), EPERM);
}

static void privileged_query_cases(struct st *s)
{
	xen_evtmgr_query_t *q;
	domid_t d = XEN_EVTMGR_DOMID_NONE;
	long rc;

	expect(s, "query ip -> ok", query(s, XEN_EVTMGR_QUERY_ip, 0, s->info.max_batch, &q), 0);
	expect(s, "query records -> ok", query(s, XEN_EVTMGR_QUERY_records, 0, s->info.max_batch, &q), 0);
	expect(s, "query nr max_batch+1 -> E2BIG", query(s, XEN_EVTMGR_QUERY_ip, 0, s->info.max_batch + 1, &q), E2BIG);
	expect(s, "query what 7 -> EINVAL", query(s, 7, 0, 1, &q), EINVAL);

	rc = query_ip_owner(s, &s->self, &d);
	expect_domid(s, "query ip lists --self owned by this domain", rc < 0 ? rc : 0,
		     rc == 1 ? d : XEN_EVTMGR_DOMID_NONE, s->own);
	rc = query_ip_owner(s, &s->peer, &d);
	expect_domid(s, "query ip lists --peer owned by the peer domain", rc < 0 ? rc : 0,
		     rc == 1 ? d : XEN_EVTMGR_DOMID_NONE, s->peer_dom);
}

/*
 * The end of an address's privileged cycle (it is ours now): given to the peer domain (replace) and deleted by its
 * owner, or deleted at once without a peer; then it is gone, and deleting it again is ENOENT.
 */
static void replace_and_delete(struct st *s, const xen_evtmgr_addr_t *a, const char *opt, const char *absent)
{
	char n[96];
	domid_t d;
	long rc;

	snprintf(n, sizeof(n), "ip_set %s to the peer domain (replace) -> ok", opt);
	if (s->peer_dom != XEN_EVTMGR_DOMID_NONE && s->peer_dom != s->own) {
		expect(s, n, ip_op(XEN_EVTMGR_OP_ip_set, a, s->peer_dom), 0);
		rc = lookup(a, &d);
		snprintf(n, sizeof(n), "lookup %s after replace -> the peer domain", opt);
		expect_domid(s, n, rc, d, s->peer_dom);
		snprintf(n, sizeof(n), "ip_del %s naming the previous owner -> ESRCH", opt);
		expect(s, n, ip_op(XEN_EVTMGR_OP_ip_del, a, s->own), ESRCH);
		snprintf(n, sizeof(n), "ip_del %s naming its owner -> ok", opt);
		expect(s, n, ip_op(XEN_EVTMGR_OP_ip_del, a, s->peer_dom), 0);
	} else {
		record(s, n, 0, "ok", "no peer domain (lookup --peer)");
		snprintf(n, sizeof(n), "ip_del %s (DOMID_NONE) -> ok", opt);
		expect(s, n, ip_op(XEN_EVTMGR_OP_ip_del, a, XEN_EVTMGR_DOMID_NONE), 0);
	}
	rc = lookup(a, &d);
	snprintf(n, sizeof(n), "lookup %s after ip_del -> DOMID_NONE", opt);
	expect_domid(s, n, rc, d, XEN_EVTMGR_DOMID_NONE);
	expect(s, absent, ip_op(XEN_EVTMGR_OP_ip_del, a, XEN_EVTMGR_DOMID_NONE), ENOENT);
}

/* set / lookup / replace / del on --spare, then the ip_set and ip_del errors; the spare is left unowned. */
static void privileged_ip_cases(struct st *s)
{
	xen_evtmgr_ip_entry_t e;
	domid_t d = XEN_EVTMGR_DOMID_NONE;
	long rc;

	rc = lookup(&s->spare, &d);
	expect_domid(s, "lookup --spare before the round trip -> DOMID_NONE", rc, d, XEN_EVTMGR_DOMID_NONE);
	if (rc < 0 || d != XEN_EVTMGR_DOMID_NONE) {
		record(s, "ip round trip on --spare", 0, "an unowned spare address", "spare is in use; skipped");
		return;
	}

	expect(s, "ip_set --spare to this domain -> ok", ip_op(XEN_EVTMGR_OP_ip_set, &s->spare, s->own), 0);
	rc = lookup(&s->spare, &d);
	expect_domid(s, "lookup --spare -> this domain", rc, d, s->own);
	rc = query_ip_owner(s, &s->spare, &d);
	expect_domid(s, "query ip lists --spare owned by this domain", rc < 0 ? rc : 0,
		     rc == 1 ? d : XEN_EVTMGR_DOMID_NONE, s->own);
	replace_and_delete(s, &s->spare, "--spare", "ip_del of an absent address -> ENOENT");

	expect(s, "ip_set to non-existent domid 30000 -> ESRCH", ip_op(XEN_EVTMGR_OP_ip_set, &s->spare, ESRCH_DOMID),
	       ESRCH);
	rc = lookup(&s->spare, &d);
	expect_domid(s, "lookup --spare after the ESRCH -> DOMID_NONE", rc, d, XEN_EVTMGR_DOMID_NONE);

	memset(&e, 0, sizeof(e));
	e.addr.family = XEN_EVTMGR_AF_INET, e.domid = s->own;
	expect(s, "ip_set 0.0.0.0 -> EINVAL", dem_op_obj(XEN_EVTMGR_OP_ip_set, &e, sizeof(e)), EINVAL);
	e = (xen_evtmgr_ip_entry_t){ .addr = s->spare, .domid = s->own }, e.addr.pad[0] = 1;
	expect(s, "ip_set addr.pad != 0 -> EINVAL", dem_op_obj(XEN_EVTMGR_OP_ip_set, &e, sizeof(e)), EINVAL);
	e = (xen_evtmgr_ip_entry_t){ .addr = s->spare, .domid = s->own }, e.addr.addr[12] = 1;
	expect(s, "ip_set IPv4 address tail != 0 -> EINVAL", dem_op_obj(XEN_EVTMGR_OP_ip_set, &e, sizeof(e)), EINVAL);
	e = (xen_evtmgr_ip_entry_t){ .addr = s->spare, .domid = s->own }, e.pad = 1;
	expect(s, "ip_set ip_entry.pad != 0 -> EINVAL", dem_op_obj(XEN_EVTMGR_OP_ip_set, &e, sizeof(e)), EINVAL);
	e = (xen_evtmgr_ip_entry_t){ .addr = s->spare, .domid = s->own }, e.pad2 = 1;
	expect(s, "ip_set ip_entry.pad2 != 0 -> EINVAL", dem_op_obj(XEN_EVTMGR_OP_ip_set, &e, sizeof(e)), EINVAL);
	e = (xen_evtmgr_ip_entry_t){ .addr = s->spare, .domid = s->own }, e.addr.family = 255;
	expect(s, "ip_set family 255 -> EINVAL", dem_op_obj(XEN_EVTMGR_OP_ip_set, &e, sizeof(e)), EINVAL);
	e = (xen_evtmgr_ip_entry_t){ .addr = s->spare, .domid = XEN_EVTMGR_DOMID_NONE }, e.pad = 1;
	expect(s, "ip_del ip_entry.pad != 0 -> EINVAL", dem_op_obj(XEN_EVTMGR_OP_ip_del, &e, sizeof(e)), EINVAL);

	/* Undo whatever a wrongly accepted call above left; the spare was unowned when we started. */
	rc = lookup(&s->spare, &d);
	if (rc >= 0 && d != XEN_EVTMGR_DOMID_NONE)
		ip_op(XEN_EVTMGR_OP_ip_del, &s->spare, XEN_EVTMGR_DOMID_NONE);
	expect_domid(s, "no state left behind: --spare unowned at the end", rc, d, XEN_EVTMGR_DOMID_NONE);
}

/*
 * IPv6 in the IP table, on --spare6: set to this domain (which so owns an IPv4 and an IPv6 address), the raise
 * checks from it, given to the peer domain, removed; then the refused forms. --spare6 is left unowned.
 */
static void privileged_ipv6_cases(struct st *s)
{
	xen_evtmgr_ip_entry_t e;
	xen_evtmgr_raise_t r;
	domid_t d = XEN_EVTMGR_DOMID_NONE;
	long rc;

	rc = lookup(&s->spare6, &d);
	expect_domid(s, "lookup --spare6 before the round trip -> DOMID_NONE", rc, d, XEN_EVTMGR_DOMID_NONE);
	if (rc < 0 || d != XEN_EVTMGR_DOMID_NONE) {
		record(s, "IPv6 round trip on --spare6", 0, "an unowned spare IPv6 address",
		       rc < 0 ? "its lookup failed; skipped" : "spare6 is in use; skipped");
		return;
	}

	expect(s, "ip_set --spare6 (IPv6) to this domain -> ok", ip_op(XEN_EVTMGR_OP_ip_set, &s->spare6, s->own), 0);
	rc = lookup(&s->spare6, &d);
	expect_domid(s, "lookup --spare6 -> this domain", rc, d, s->own);
	rc = lookup(&s->self, &d);
	expect_domid(s, "lookup --self -> this domain too (one domain, an IPv4 and an IPv6 address)", rc, d, s->own);
	rc = query_ip_owner(s, &s->spare6, &d);
	expect_domid(s, "query ip lists --spare6 owned by this domain", rc < 0 ? rc : 0,
		     rc == 1 ? d : XEN_EVTMGR_DOMID_NONE, s->own);
	rc = query_ip_in_order(s);
	if (rc < 0)
		expect(s, "query ip is in table order (IPv4, then IPv6, by address)", rc, 0);
	else
		record(s, "query ip is in table order (IPv4, then IPv6, by address)", rc == 1, "in order",
		       rc ? "in order" : "out of order");

	base_raise(s, &r), r.conn.src = s->spare6;
	raise_case(s, "raise --spare6 (IPv6, ours) -> --peer (IPv4): two families -> EINVAL", &r, EINVAL);
	base_raise(s, &r), r.conn.src = s->spare6, r.conn.dst = s->nobody6;
	raise_case(s, "raise --spare6 -> 2001:db8::fa (IPv6, owned by nobody) -> ENOENT", &r, ENOENT);
	base_raise(s, &r), r.conn.src = s->spare6, r.conn.dst = s->spare6;
	raise_case(s, "raise --spare6 -> --spare6 (the caller's own IPv6) -> ELOOP", &r, ELOOP);

	replace_and_delete(s, &s->spare6, "--spare6", "ip_del of an absent IPv6 address -> ENOENT");

	/* Refused forms; one wrongly accepted is removed at once, so that nothing stays. */
	e = (xen_evtmgr_ip_entry_t){ .addr = mapped(&s->spare), .domid = s->own };
	if (!expect(s, "ip_set ::ffff:--spare (IPv4-mapped IPv6) -> EINVAL",
		    dem_op_obj(XEN_EVTMGR_OP_ip_set, &e, sizeof(e)), EINVAL))
		ip_op(XEN_EVTMGR_OP_ip_del, &e.addr, XEN_EVTMGR_DOMID_NONE);
	rc = lookup(&s->spare, &d);
	expect_domid(s, "lookup --spare after the IPv4-mapped ip_set -> DOMID_NONE", rc, d, XEN_EVTMGR_DOMID_NONE);
	e = (xen_evtmgr_ip_entry_t){ .addr.family = XEN_EVTMGR_AF_INET6, .domid = s->own };
	if (!expect(s, "ip_set :: (IPv6, all zero) -> EINVAL", dem_op_obj(XEN_EVTMGR_OP_ip_set, &e, sizeof(e)), EINVAL))
		ip_op(XEN_EVTMGR_OP_ip_del, &e.addr, XEN_EVTMGR_DOMID_NONE);
	e = (xen_evtmgr_ip_entry_t){ .addr = s->spare6, .domid = s->own }, e.addr.pad[0] = 1;
	expect(s, "ip_set IPv6 addr.pad != 0 -> EINVAL", dem_op_obj(XEN_EVTMGR_OP_ip_set, &e, sizeof(e)), EINVAL);

	rc = lookup(&s->spare6, &d);
	if (rc >= 0 && d != XEN_EVTMGR_DOMID_NONE)
		ip_op(XEN_EVTMGR_OP_ip_del, &s->spare6, XEN_EVTMGR_DOMID_NONE);
	expect_domid(s, "no state left behind: --spare6 unowned at the end", rc, d, XEN_EVTMGR_DOMID_NONE);
}

static void state_cases(struct st *s)
{
	char g[64];
	xen_evtmgr_conn_t c;

	snprintf(g, sizeof(g), "%u", s->leaks);
	record(s, "no state left behind: every negative raise failed", s->leaks == 0, "0", g);
	if (s->privileged) {
		long rc;

		base_conn(s, &c);
		rc = query_has_record(s, &c);
		if (rc < 0)
			rc_text(g, sizeof(g), rc);
		else
			snprintf(g, sizeof(g), rc ? "a record" : "none");
		record(s, "no state left behind: no record for the selftest connection", rc == 0, "none", g);
	}
}

/* ---------------------------------------------------------------- command */

static void finish(struct st *s)
{
	jb_printf(&s->j, "],\"passed\":%u,\"failed\":%u,\"privileged\":%s,\"domid\":", s->passed, s->failed,
		  s->privileged ? "true" : "false");
	jb_domid(&s->j, s->own);
	jb_printf(&s->j, ",\"connection\":{\"src\":");
	jb_endpoint(&s->j, &s->self, SELFTEST_SRC_PORT);
	jb_printf(&s->j, ",\"dst\":");
	jb_endpoint(&s->j, &s->peer, SELFTEST_DST_PORT);
	jb_printf(&s->j, "}");
	if (s->leaks) {
		/* the peer owns what a wrongly accepted raise created; say how it can drop it */
		char src[80], dst[80];

		endpoint_text(src, sizeof(src), &s->peer, SELFTEST_DST_PORT);
		endpoint_text(dst, sizeof(dst), &s->self, SELFTEST_SRC_PORT);
		jb_printf(&s->j, ",\"state_left\":\"%u raise(s) were accepted: run 'dem-probe fetch' and "
				 "'dem-probe release --src %s --dst %s' in the peer domain\"",
			  s->leaks, src, dst);
	}
	if (s->error) {
		jb_printf(&s->j, ",\"error\":");
		jb_str(&s->j, s->error);
	}
	jb_printf(&s->j, "}");
	jb_print(&s->j);
	if (s->error)
		fprintf(stderr, "dem-probe: selftest: %s\n", s->error);
	if (s->failed)
		fprintf(stderr, "dem-probe: selftest: %u of %u checks failed\n", s->failed, s->passed + s->failed);
}

int cmd_selftest(int argc, char **argv)
{
	const char *self = NULL, *peer = NULL, *unowned = NULL, *spare = NULL, *spare6 = NULL, *domid = NULL;
	int privileged = 0;
	struct opt opts[] = {
		{ "--self", &self, NULL },   { "--peer", &peer, NULL },   { "--unowned", &unowned, NULL },
		{ "--spare", &spare, NULL }, { "--spare6", &spare6, NULL }, { "--domid", &domid, NULL },
		{ "--privileged", NULL, &privileged },
		{ 0 },
	};
	static struct st st;
	struct st *s = &st;
	domid_t want_domid = XEN_EVTMGR_DOMID_NONE, d;
	long rc;
	int r;

	parse_opts(argc, argv, opts, NULL, 0, 0);
	if (!self || !peer || !unowned)
		usage_error("--self IP, --peer IP and --unowned IP are required");
	if (parse_ipv4(self, &s->self) < 0)
		usage_error("bad --self '%s' (IPv4)", self);
	if (parse_ipv4(peer, &s->peer) < 0)
		usage_error("bad --peer '%s' (IPv4)", peer);
	if (parse_ipv4(unowned, &s->unowned) < 0)
		usage_error("bad --unowned '%s' (IPv4)", unowned);
	if (spare && parse_ipv4(spare, &s->spare) < 0)
		usage_error("bad --spare '%s' (IPv4)", spare);
	if (!spare)
		addr_ipv4(&s->spare, 192, 0, 2, 201);
	parse_ip("2001:db8::fa", &s->nobody6);
	if (spare6 && (parse_ip(spare6, &s->spare6) < 0 || s->spare6.family != XEN_EVTMGR_AF_INET6 ||
		       addr_equal(&s->spare6, &s->nobody6)))
		usage_error("bad --spare6 '%s' (an IPv6 address other than 2001:db8::fa)", spare6);
	if (!spare6)
		parse_ip("2001:db8::c9", &s->spare6);
	if (domid && (parse_domid(domid, &want_domid) < 0 || want_domid == XEN_EVTMGR_DOMID_NONE))
		usage_error("bad --domid '%s'", domid);
	addr_ipv4(&s->nobody, 192, 0, 2, 250);
	if (addr_equal(&s->self, &s->peer) || addr_equal(&s->self, &s->unowned) || addr_equal(&s->spare, &s->self) ||
	    addr_equal(&s->spare, &s->peer) || addr_equal(&s->spare, &s->nobody))
		usage_error("--self, --peer, --unowned and --spare must differ (192.0.2.250 is the probe's unowned "
			    "address)");
	s->privileged = privileged;
	s->peer_dom = XEN_EVTMGR_DOMID_NONE;
	s->own = XEN_EVTMGR_DOMID_NONE;

	r = dem_open();
	if (r < 0) {
		struct jb j = { 0 };
		char msg[256];

		dem_open_error(msg, sizeof(msg), r);
		jb_printf(&j, "{\"op\":\"selftest\",\"rc\":%d,\"errno\":", r);
		jb_str(&j, errno_name(-r));
		jb_printf(&j, ",\"error\":");
		jb_str(&j, msg);
		jb_printf(&j, "}");
		jb_print(&j);
		fprintf(stderr, "dem-probe: selftest: %s\n", msg);
		return 1;
	}
	s->noaccess = dem_noaccess_page();

	jb_printf(&s->j, "{\"checks\":[");
	rc = dem_op_obj(XEN_EVTMGR_OP_info, &s->info, sizeof(s->info));
	if (!expect(s, "info -> ok", rc, 0) || s->info.max_batch == 0) {
		/* nothing else can be sized or judged without info */
		if (rc == -EPERM && dem_privcmd_blocked())
			s->error = PRIVCMD_BLOCKED_HINT;
		finish(s);
		return 1;
	}
	{
		size_t entry = sizeof(xen_evtmgr_record_t);

		if (sizeof(xen_evtmgr_event_t) > entry)
			entry = sizeof(xen_evtmgr_event_t);
		s->buf = dem_alloc(sizeof(xen_evtmgr_query_t) + ((size_t)s->info.max_batch + 1) * entry);
	}
	info_cases(s);

	/* whose domain is this? --domid, else 0 for the privileged run, else the owner of --self */
	rc = lookup(&s->self, &d);
	if (domid)
		s->own = want_domid;
	else if (privileged)
		s->own = 0;
	else
		s->own = rc >= 0 ? d : XEN_EVTMGR_DOMID_NONE;
	expect_domid(s, "info domid is this domain", 0, s->info.domid, s->own);
	if (privileged && rc >= 0 && d == XEN_EVTMGR_DOMID_NONE && s->own != XEN_EVTMGR_DOMID_NONE) {
		/* dom0 may own no address; the raise cases need --self to be ours, so own it for the run */
		s->self_added = expect(s, "ip_set --self to this domain for the run -> ok",
				       ip_op(XEN_EVTMGR_OP_ip_set, &s->self, s->own), 0);
		rc = lookup(&s->self, &d);
	}
	expect_domid(s, "lookup --self -> this domain (lookup works for any domain)", rc, d, s->own);
	if (s->own == XEN_EVTMGR_DOMID_NONE)
		s->own = s->info.domid; /* keep going with the DEM's word */

	unknown_op_cases(s);
	lookup_cases(s);
	efault_cases(s);
	lookup_einval_cases(s);
	raise_cases(s);
	get_events_cases(s);
	release_cases(s);
	ipv6_cases(s);
	if (privileged) {
		privileged_query_cases(s);
		privileged_ip_cases(s);
		privileged_ipv6_cases(s);
	} else {
		unprivileged_cases(s);
	}
	state_cases(s);
	if (s->self_added) {
		/* after the state checks: removing the address also drops records that name it */
		rc = ip_op(XEN_EVTMGR_OP_ip_del, &s->self, s->own);
		expect(s, "ip_del --self after the run -> ok", rc, 0);
	}
	finish(s);
	return s->failed ? 1 : 0;
}
