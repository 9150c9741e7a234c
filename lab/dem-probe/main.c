/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dem-probe: subcommands. Each prints one JSON line on stdout and exits 0 (done), 1 (the hypercall or a device
 * failed: the JSON carries rc and errno) or 2 (usage, one line on stderr, nothing on stdout).
 */
#include "dem.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *op_name(unsigned int cmd)
{
	switch (cmd) {
	case XEN_EVTMGR_OP_info: return "info";
	case XEN_EVTMGR_OP_ip_set: return "ip_set";
	case XEN_EVTMGR_OP_ip_del: return "ip_del";
	case XEN_EVTMGR_OP_ip_lookup: return "ip_lookup";
	case XEN_EVTMGR_OP_raise: return "raise";
	case XEN_EVTMGR_OP_get_events: return "get_events";
	case XEN_EVTMGR_OP_release: return "release";
	case XEN_EVTMGR_OP_query: return "query";
	default: return "unknown";
	}
}

/* What a failed hypercall most likely means, for the message. */
static const char *hint(long rc)
{
	switch (-rc) {
	case ENOSYS: return "hypercall not implemented: this Xen has no DEM (patch not applied?)";
	case EOPNOTSUPP: return "DEM disabled (evtmgr=0 on Xen's command line) or unknown op";
	case EPERM:
		if (dem_privcmd_blocked())
			return PRIVCMD_BLOCKED_HINT;
		return "not permitted: privileged op (needs the control domain) or refused by XSM";
	case EACCES: return "the source address is not owned by this domain";
	case ENOENT: return "no such entry, or the address is not owned by a domain of this host";
	case ELOOP: return "the destination address is this domain's own";
	case ESRCH: return "no such live domain, or owned by another domain";
	case EBUSY: return "the destination has too many undelivered records (it does not fetch)";
	case ENOSPC: return "a DEM limit is reached";
	case EFAULT: return "Xen could not access the argument";
	case EINVAL: return "invalid argument";
	case E2BIG: return "nr exceeds max_batch";
	case ENOTTY: return "not a privcmd device";
	default: return strerror((int)-rc);
	}
}

/* Prints the failure JSON and a one-line message, exits 1. */
static _Noreturn void fail(const char *op, long rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static _Noreturn void fail(const char *op, long rc, const char *fmt, ...)
{
	struct jb j = { 0 };
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	jb_printf(&j, "{\"op\":");
	jb_str(&j, op);
	jb_printf(&j, ",\"rc\":%ld,\"errno\":", rc);
	jb_str(&j, errno_name((int)-rc));
	jb_printf(&j, ",\"error\":");
	jb_str(&j, msg);
	jb_printf(&j, "}");
	jb_print(&j);
	fprintf(stderr, "dem-probe: %s: %s\n", op, msg);
	exit(1);
}

static _Noreturn void fail_op(unsigned int cmd, long rc)
{
	fail(op_name(cmd), rc, "%s failed: %s (%s)", op_name(cmd), errno_name((int)-rc), hint(rc));
}

static void need_privcmd(const char *op)
{
	char msg[256];
	int r = dem_open();

	if (r == 0)
		return;
	dem_open_error(msg, sizeof(msg), r);
	fail(op, r, "%s", msg);
}

static void get_info(const char *op, xen_evtmgr_info_t *info)
{
	long rc;

	need_privcmd(op);
	memset(info, 0, sizeof(*info));
	rc = dem_op_obj(XEN_EVTMGR_OP_info, info, sizeof(*info));
	if (rc < 0)
		fail(op, rc, "info failed: %s (%s)", errno_name((int)-rc), hint(rc));
	if (info->max_batch == 0)
		fail(op, -EPROTO, "info reports max_batch 0");
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------- info, set, del, lookup */

static int cmd_info(int argc, char **argv)
{
	xen_evtmgr_info_t info;
	struct jb j = { 0 };

	parse_opts(argc, argv, NULL, NULL, 0, 0);
	get_info("info", &info);
	jb_printf(&j, "{\"op\":\"info\",");
	jb_info(&j, &info);
	jb_printf(&j, ",\"hypercall\":%d}", DEM_HYPERCALL);
	jb_print(&j);
	return 0;
}

static int ip_cmd(int argc, char **argv, unsigned int cmd)
{
	const char *pos[2] = { 0 };
	int dry = 0;
	struct opt opts[] = { { "--dry-run", NULL, &dry }, { 0 } };
	int need = cmd == XEN_EVTMGR_OP_ip_set ? 2 : 1;
	int max = cmd == XEN_EVTMGR_OP_ip_lookup ? 1 : 2;
	xen_evtmgr_ip_entry_t e;
	struct jb j = { 0 };
	long rc;

	parse_opts(argc, argv, opts, pos, need, max);
	memset(&e, 0, sizeof(e));
	if (parse_ip(pos[0], &e.addr) < 0)
		usage_error("bad IP address '%s' (a.b.c.d or IPv6)", pos[0]);
	e.domid = XEN_EVTMGR_DOMID_NONE;
	if (pos[1] && parse_domid(pos[1], &e.domid) < 0)
		usage_error("bad domain id '%s' (0..65535 or none)", pos[1]);
	if (cmd == XEN_EVTMGR_OP_ip_lookup)
		e.domid = 0;

	if (!dry) {
		need_privcmd(op_name(cmd));
		rc = dem_op_obj(cmd, &e, sizeof(e));
		if (rc < 0)
			fail_op(cmd, rc);
	}
	jb_printf(&j, "{\"op\":\"%s\",", op_name(cmd));
	if (dry)
		jb_printf(&j, "\"dry_run\":true,");
	jb_printf(&j, "\"ip\":");
	jb_addr(&j, &e.addr);
	if (!(dry && cmd == XEN_EVTMGR_OP_ip_lookup)) {
		jb_printf(&j, ",\"domid\":");
		jb_domid(&j, e.domid);
	}
	jb_printf(&j, "}");
	jb_print(&j);
	return 0;
}

/* ---------------------------------------------------------------- raise, release */

static void conn_args(const char *src, const char *dst, xen_evtmgr_conn_t *c)
{
	memset(c, 0, sizeof(*c));
	if (!src)
		usage_error("--src IP:PORT is required");
	if (!dst)
		usage_error("--dst IP:PORT is required");
	if (parse_endpoint(src, &c->src, &c->src_port) < 0)
		usage_error("bad --src '%s' (a.b.c.d:PORT or [IPv6]:PORT, port 0..65535)", src);
	if (parse_endpoint(dst, &c->dst, &c->dst_port) < 0)
		usage_error("bad --dst '%s' (a.b.c.d:PORT or [IPv6]:PORT, port 0..65535)", dst);
}

static void jb_conn(struct jb *j, const xen_evtmgr_conn_t *c)
{
	jb_printf(j, "\"src\":");
	jb_endpoint(j, &c->src, c->src_port);
	jb_printf(j, ",\"dst\":");
	jb_endpoint(j, &c->dst, c->dst_port);
}

static int cmd_raise(int argc, char **argv)
{
	const char *src = NULL, *dst = NULL, *events = NULL, *tunnel = NULL, *repeat = NULL;
	int dry = 0;
	struct opt opts[] = {
		{ "--src", &src, NULL },       { "--dst", &dst, NULL },       { "--events", &events, NULL },
		{ "--tunnel", &tunnel, NULL }, { "--repeat", &repeat, NULL }, { "--dry-run", NULL, &dry },
		{ 0 },
	};
	xen_evtmgr_raise_t *r;
	uint32_t n = 1, ok = 0;
	struct {
		int err;
		uint32_t count;
	} errs[16];
	unsigned nerrs = 0;
	long first_rc = 0;
	double t0, secs = 0;
	struct jb j = { 0 };

	parse_opts(argc, argv, opts, NULL, 0, 0);
	r = dem_alloc(sizeof(*r));
	conn_args(src, dst, &r->conn);
	if (!events)
		usage_error("--events LIST is required");
	if (parse_events(events, &r->events) < 0)
		usage_error("bad --events '%s' (create,send_close,reject,recv_close,send_data,recv_get_data, all, or a "
			    "number)",
			    events);
	if (tunnel && parse_tunnel(tunnel, &r->tunnel) < 0)
		usage_error("bad --tunnel '%s' (CHANNELS,SIZE,GREF[,GREF...], at most %u grefs)", tunnel,
			    XEN_EVTMGR_MAX_GREFS);
	if (repeat && parse_u32(repeat, 1, 1000000000, &n) < 0)
		usage_error("bad --repeat '%s' (1..1000000000)", repeat);

	if (!dry) {
		need_privcmd("raise");
		t0 = now();
		for (uint32_t i = 0; i < n; i++) {
			long rc = dem_op(XEN_EVTMGR_OP_raise, r);
			unsigned k;

			if (rc >= 0) {
				ok++;
				continue;
			}
			if (!first_rc)
				first_rc = rc;
			for (k = 0; k < nerrs && errs[k].err != (int)-rc; k++)
				;
			if (k == nerrs && nerrs < sizeof(errs) / sizeof(errs[0]))
				errs[nerrs++] = (typeof(errs[0])){ (int)-rc, 0 };
			if (k < nerrs)
				errs[k].count++;
		}
		secs = now() - t0;
	}

	jb_printf(&j, "{\"op\":\"raise\",");
	if (dry)
		jb_printf(&j, "\"dry_run\":true,");
	jb_conn(&j, &r->conn);
	jb_printf(&j, ",\"events\":");
	jb_events(&j, r->events);
	jb_printf(&j, ",\"mask\":%u", r->events);
	if (tunnel) {
		jb_printf(&j, ",\"tunnel\":");
		jb_tunnel(&j, &r->tunnel);
	}
	jb_printf(&j, ",\"repeat\":%u", n);
	if (!dry) {
		jb_printf(&j, ",\"succeeded\":%u,\"failed\":%u,\"errors\":{", ok, n - ok);
		for (unsigned k = 0; k < nerrs; k++) {
			jb_printf(&j, "%s", k ? "," : "");
			jb_str(&j, errno_name(errs[k].err));
			jb_printf(&j, ":%u", errs[k].count);
		}
		jb_printf(&j, "},\"seconds\":%.6f", secs);
		if (secs > 0)
			jb_printf(&j, ",\"raises_per_s\":%.1f", ok / secs);
		if (first_rc) {
			jb_printf(&j, ",\"rc\":%ld,\"errno\":", first_rc);
			jb_str(&j, errno_name((int)-first_rc));
			jb_printf(&j, ",\"error\":");
			jb_str(&j, hint(first_rc));
		}
	}
	jb_printf(&j, "}");
	jb_print(&j);
	if (first_rc) {
		fprintf(stderr, "dem-probe: raise: %u of %u failed, first with %s (%s)\n", n - ok, n,
			errno_name((int)-first_rc), hint(first_rc));
		return 1;
	}
	return 0;
}

static int cmd_release(int argc, char **argv)
{
	const char *src = NULL, *dst = NULL;
	int dry = 0;
	struct opt opts[] = { { "--src", &src, NULL }, { "--dst", &dst, NULL }, { "--dry-run", NULL, &dry }, { 0 } };
	xen_evtmgr_conn_t c;
	struct jb j = { 0 };

	parse_opts(argc, argv, opts, NULL, 0, 0);
	conn_args(src, dst, &c);
	if (!dry) {
		long rc;

		need_privcmd("release");
		rc = dem_op_obj(XEN_EVTMGR_OP_release, &c, sizeof(c));
		if (rc < 0)
			fail_op(XEN_EVTMGR_OP_release, rc);
	}
	jb_printf(&j, "{\"op\":\"release\",");
	if (dry)
		jb_printf(&j, "\"dry_run\":true,");
	jb_conn(&j, &c);
	jb_printf(&j, "}");
	jb_print(&j);
	return 0;
}

/* ---------------------------------------------------------------- fetch, watch */

#define FETCH_MAX_ROOM 65536U

/* One get_events call into g (room for `room` entries). Returns rc; a reply claiming more than room is -EPROTO. */
static long fetch_once(xen_evtmgr_get_events_t *g, uint32_t room)
{
	long rc;

	g->nr = room;
	g->more = 0;
	rc = dem_op(XEN_EVTMGR_OP_get_events, g);
	if (rc >= 0 && g->nr > room)
		return -EPROTO;
	return rc;
}

static xen_evtmgr_get_events_t *fetch_buffer(uint32_t room)
{
	return dem_alloc(sizeof(xen_evtmgr_get_events_t) + (size_t)(room ? room : 1) * sizeof(xen_evtmgr_event_t));
}

static int cmd_fetch(int argc, char **argv)
{
	const char *nr = NULL;
	struct opt opts[] = { { "--nr", &nr, NULL }, { 0 } };
	xen_evtmgr_get_events_t *g;
	uint32_t room;
	struct jb j = { 0 };
	long rc;

	parse_opts(argc, argv, opts, NULL, 0, 0);
	if (nr && parse_u32(nr, 0, FETCH_MAX_ROOM, &room) < 0)
		usage_error("bad --nr '%s' (0..%u; the DEM accepts 1..max_batch)", nr, FETCH_MAX_ROOM);
	if (!nr) {
		xen_evtmgr_info_t info;

		get_info("get_events", &info);
		room = info.max_batch;
	} else {
		need_privcmd("get_events");
	}
	g = fetch_buffer(room);
	rc = fetch_once(g, room);
	if (rc == -EPROTO)
		fail("get_events", rc, "the DEM returned nr %u for room %u", g->nr, room);
	if (rc < 0)
		fail_op(XEN_EVTMGR_OP_get_events, rc);
	jb_printf(&j, "{\"op\":\"get_events\",\"nr\":%u,\"more\":%u,\"events\":[", g->nr, g->more);
	for (uint32_t i = 0; i < g->nr; i++) {
		jb_printf(&j, "%s", i ? "," : "");
		jb_event(&j, &g->ev[i]);
	}
	jb_printf(&j, "]}");
	jb_print(&j);
	return 0;
}

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* Events merged per connection: the OR of every bit seen, the last tunnel information, how many entries. */
struct merged {
	xen_evtmgr_event_t ev;
	uint32_t entries;
};

static void merge(struct merged **m, size_t *n, size_t *cap, const xen_evtmgr_event_t *e)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (conn_equal(&(*m)[i].ev.conn, &e->conn))
			break;
	if (i == *n) {
		if (*n == *cap) {
			*cap = *cap ? *cap * 2 : 16;
			*m = realloc(*m, *cap * sizeof(**m));
			if (!*m) {
				fputs("dem-probe: out of memory\n", stderr);
				exit(1);
			}
		}
		memset(&(*m)[i], 0, sizeof(**m));
		(*m)[i].ev.conn = e->conn;
		(*n)++;
	}
	(*m)[i].ev.events |= e->events;
	(*m)[i].ev.peer = e->peer;
	if (e->events & XEN_EVTMGR_EVENT_CREATE_TUNNEL)
		(*m)[i].ev.tunnel = e->tunnel;
	(*m)[i].entries++;
}

static int cmd_watch(int argc, char **argv)
{
	const char *seconds = NULL;
	int do_fetch = 0;
	struct opt opts[] = { { "--seconds", &seconds, NULL }, { "--fetch", NULL, &do_fetch }, { 0 } };
	xen_evtmgr_get_events_t *g = NULL;
	xen_evtmgr_info_t info = { 0 };
	unsigned int virq = DEM_VIRQ;
	uint64_t virqs = 0, fetch_calls = 0, entries = 0;
	struct merged *m = NULL;
	size_t nm = 0, capm = 0;
	struct sigaction sa;
	double secs, t0, deadline;
	long fetch_err = 0;
	int fd, port;
	struct jb j = { 0 };

	parse_opts(argc, argv, opts, NULL, 0, 0);
	if (!seconds)
		usage_error("--seconds S is required");
	if (parse_seconds(seconds, &secs) < 0)
		usage_error("bad --seconds '%s' (a number in (0, 86400])", seconds);

	if (do_fetch) {
		get_info("watch", &info);
		virq = info.virq;
		g = fetch_buffer(info.max_batch);
	}
	fd = evt_open();
	if (fd < 0)
		fail("watch", fd, "cannot open %s: %s%s", dem_evtchn_path(), strerror(-fd),
		     fd == -ENOENT ? " (not a Xen guest, or xen-evtchn not loaded: modprobe xen-evtchn)" : "");
	port = evt_bind_virq(fd, virq);
	if (port < 0)
		fail("watch", port, "cannot bind VIRQ %u: %s%s", virq, strerror(-port),
		     port == -EEXIST ? " (already bound in this domain: is fastivc.ko loaded?)" : "");

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop; /* no SA_RESTART: poll returns EINTR */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	fprintf(stderr, "{\"ready\":true,\"virq\":%u,\"port\":%d}\n", virq, port);
	fflush(stderr);

	t0 = now();
	deadline = t0 + secs;
	while (!stop_requested && !fetch_err) {
		double left = deadline - now();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint32_t ports[64];
		int n, r;

		if (left <= 0)
			break;
		r = poll(&p, 1, (int)(left * 1000) + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail("watch", -errno, "poll: %s", strerror(errno));
		if (r == 0)
			continue;
		n = evt_read(fd, ports, 64);
		if (n == -EINTR || n == -EAGAIN)
			continue;
		if (n < 0)
			fail("watch", n, "read %s: %s", dem_evtchn_path(), strerror(-n));
		for (int i = 0; i < n; i++) {
			if ((int)ports[i] != port)
				continue;
			virqs++;
			/* Fetch until more == 0; a raise after that signals again (latched while masked). */
			while (do_fetch && now() < deadline + 1) {
				long rc = fetch_once(g, info.max_batch);

				fetch_calls++;
				if (rc < 0) {
					fetch_err = rc;
					break;
				}
				for (uint32_t k = 0; k < g->nr; k++)
					merge(&m, &nm, &capm, &g->ev[k]);
				entries += g->nr;
				if (!g->more)
					break;
			}
			r = evt_unmask(fd, (uint32_t)port);
			if (r < 0)
				fail("watch", r, "unmask port %d: %s", port, strerror(-r));
		}
	}
	close(fd);

	jb_printf(&j, "{\"op\":\"watch\",\"virq\":%u,\"port\":%d,\"seconds\":%.3f,\"virqs\":%llu,\"fetch_calls\":%llu,"
		  "\"entries\":%llu,\"events\":[",
		  virq, port, now() - t0, (unsigned long long)virqs, (unsigned long long)fetch_calls,
		  (unsigned long long)entries);
	for (size_t i = 0; i < nm; i++) {
		jb_printf(&j, "%s", i ? "," : "");
		jb_event(&j, &m[i].ev);
		/* splice the per-connection entry count into the object just written */
		j.len--;
		jb_printf(&j, ",\"entries\":%u}", m[i].entries);
	}
	jb_printf(&j, "]");
	if (fetch_err) {
		jb_printf(&j, ",\"rc\":%ld,\"errno\":", fetch_err);
		jb_str(&j, errno_name((int)-fetch_err));
		jb_printf(&j, ",\"error\":");
		jb_str(&j, fetch_err == -EPROTO ? "get_events returned more entries than room" : hint(fetch_err));
	}
	jb_printf(&j, "}");
	jb_print(&j);
	free(m);
	if (fetch_err) {
		fprintf(stderr, "dem-probe: watch: get_events failed: %s (%s)\n", errno_name((int)-fetch_err),
			hint(fetch_err));
		return 1;
	}
	return 0;
}

/* ---------------------------------------------------------------- query */

/* Reads every entry of one kind (start += nr until total) into the JSON array; leaves the last counters in *c. */
static void query_all(struct jb *j, xen_evtmgr_query_t *q, uint32_t what, uint32_t batch,
		      xen_evtmgr_counters_t *c)
{
	uint32_t start = 0, total = 0, got = 0;
	const char *sep = "";
	const char *name = what == XEN_EVTMGR_QUERY_ip ? "ip" : "records";

	jb_printf(j, "\"%s\":[", name);
	for (;;) {
		long rc;

		memset(q, 0, sizeof(*q));
		q->what = what;
		q->start = start;
		q->nr = batch;
		rc = dem_op(XEN_EVTMGR_OP_query, q);
		if (rc < 0)
			fail_op(XEN_EVTMGR_OP_query, rc);
		if (q->nr > batch)
			fail("query", -EPROTO, "the DEM returned nr %u for room %u", q->nr, batch);
		for (uint32_t i = 0; i < q->nr; i++) {
			jb_printf(j, "%s", sep);
			sep = ",";
			if (what == XEN_EVTMGR_QUERY_ip)
				jb_ip_entry(j, (xen_evtmgr_ip_entry_t *)(q + 1) + i);
			else
				jb_record(j, (xen_evtmgr_record_t *)(q + 1) + i);
		}
		*c = q->counters;
		total = q->total;
		got += q->nr;
		start += q->nr;
		/* done, or the table shrank under us (entries may shift between calls) */
		if (start >= total || q->nr == 0)
			break;
	}
	jb_printf(j, "],\"%s_total\":%u", name, total);
	(void)got;
}

static int cmd_query(int argc, char **argv)
{
	const char *pos[1] = { 0 };
	struct opt opts[] = { { 0 } };
	xen_evtmgr_info_t info;
	xen_evtmgr_counters_t c;
	xen_evtmgr_query_t *q;
	size_t entry = sizeof(xen_evtmgr_record_t) > sizeof(xen_evtmgr_ip_entry_t) ? sizeof(xen_evtmgr_record_t)
										    : sizeof(xen_evtmgr_ip_entry_t);
	int ip = 1, records = 1;
	struct jb j = { 0 };

	parse_opts(argc, argv, opts, pos, 0, 1);
	if (pos[0] && !strcmp(pos[0], "ip"))
		records = 0;
	else if (pos[0] && !strcmp(pos[0], "records"))
		ip = 0;
	else if (pos[0])
		usage_error("bad kind '%s' (ip or records)", pos[0]);
	get_info("query", &info);
	q = dem_alloc(sizeof(*q) + (size_t)info.max_batch * entry);
	jb_printf(&j, "{\"op\":\"query\"");
	if (ip) {
		jb_printf(&j, ",");
		query_all(&j, q, XEN_EVTMGR_QUERY_ip, info.max_batch, &c);
	}
	if (records) {
		jb_printf(&j, ",");
		query_all(&j, q, XEN_EVTMGR_QUERY_records, info.max_batch, &c);
	}
	jb_printf(&j, ",\"counters\":");
	jb_counters(&j, &c);
	jb_printf(&j, "}");
	jb_print(&j);
	return 0;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "info", cmd_info },       { "raise", cmd_raise }, { "fetch", cmd_fetch },
		{ "release", cmd_release }, { "query", cmd_query }, { "watch", cmd_watch },
		{ "selftest", cmd_selftest },
	};

	if (argc < 2)
		usage_error("missing command");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		print_usage();
		return 0;
	}
	prog_cmd = argv[1];
	if (!strcmp(argv[1], "set"))
		return ip_cmd(argc - 2, argv + 2, XEN_EVTMGR_OP_ip_set);
	if (!strcmp(argv[1], "del"))
		return ip_cmd(argc - 2, argv + 2, XEN_EVTMGR_OP_ip_del);
	if (!strcmp(argv[1], "lookup"))
		return ip_cmd(argc - 2, argv + 2, XEN_EVTMGR_OP_ip_lookup);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 2, argv + 2);
	prog_cmd = NULL;
	usage_error("unknown command '%s'", argv[1]);
}
