/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dem-probe: argument parsing and JSON formatting. Nothing here touches a device or makes a hypercall, so every
 * parse and format path can be exercised on a host without Xen (see --dry-run and test/dem-probe.test.ts).
 */
#include "dem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *prog_cmd = NULL;

static const char usage_text[] =
	"usage: dem-probe COMMAND [ARGS]    Domain Event Manager probe (Xen hypercall 43); one JSON line on stdout\n"
	"  info                                  what the DEM supports (any domain)\n"
	"  set IP DOMID                          ip_set: DOMID owns IP (privileged)\n"
	"  del IP [DOMID]                        ip_del; DOMID must be the owner or 'none' (default) (privileged)\n"
	"  lookup IP                             ip_lookup: owner of IP, null if not co-resident\n"
	"  raise --src IP:PORT --dst IP:PORT --events LIST [--tunnel CHANNELS,SIZE,GREF[,GREF...]] [--repeat N]\n"
	"  fetch [--nr N]                        get_events: one call, N entries of room (default max_batch)\n"
	"  release --src IP:PORT --dst IP:PORT   drop the caller's record for that connection\n"
	"  query [ip|records]                    privileged snapshot, all entries and the counters\n"
	"  watch --seconds S [--fetch]           bind VIRQ 14, count notifications ({\"ready\":true} on stderr first)\n"
	"  selftest --self IP --peer IP --unowned IP [--privileged] [--spare IP] [--spare6 IPv6] [--domid N]\n"
	"IP: a.b.c.d, or IPv6 in any inet_pton form (printed compressed); IP:PORT: a.b.c.d:PORT or [IPv6]:PORT.\n"
	"set, del, lookup, raise and release take --dry-run: print the request as encoded, make no hypercall.\n"
	"LIST: comma-separated create,send_close,reject,recv_close,send_data,recv_get_data, or all, or a number.\n"
	"Exit: 0 done, 1 the hypercall (or device) failed: JSON has rc and errno, 2 usage.\n"
	"Devices: DEM_PROBE_PRIVCMD (default /dev/xen/privcmd), DEM_PROBE_EVTCHN (default /dev/xen/evtchn).\n";

void print_usage(void)
{
	fputs(usage_text, stdout);
}

void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("dem-probe: ", stderr);
	if (prog_cmd)
		fprintf(stderr, "%s: ", prog_cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (dem-probe --help for usage)\n", stderr);
	exit(2);
}

/* ---------------------------------------------------------------- parsing */

int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;
	int base = 10;
	const char *p = s;

	if (!s || !*s)
		return -1;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
		if (!*p)
			return -1;
	}
	for (; *p; p++) {
		int d;

		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			d = *p - 'A' + 10;
		else
			return -1;
		v = v * base + d;
		if (v > UINT32_MAX)
			return -1;
	}
	if (v < min || v > max)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

void addr_ipv4(xen_evtmgr_addr_t *a, uint8_t b0, uint8_t b1, uint8_t b2, uint8_t b3)
{
	memset(a, 0, sizeof(*a));
	a->family = XEN_EVTMGR_AF_INET;
	a->addr[0] = b0;
	a->addr[1] = b1;
	a->addr[2] = b2;
	a->addr[3] = b3;
}

/* Four decimal octets 0..255 separated by dots; no leading zeros, signs, spaces or shorthand forms. */
static int parse_ipv4_n(const char *s, size_t n, xen_evtmgr_addr_t *a)
{
	uint8_t b[4];
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		unsigned v = 0;
		size_t digits = 0;

		if (part > 0) {
			if (i >= n || s[i] != '.')
				return -1;
			i++;
		}
		while (i < n && s[i] >= '0' && s[i] <= '9') {
			if (digits == 1 && v == 0)
				return -1; /* leading zero */
			v = v * 10 + (unsigned)(s[i] - '0');
			if (++digits > 3 || v > 255)
				return -1;
			i++;
		}
		if (digits == 0)
			return -1;
		b[part] = (uint8_t)v;
	}
	if (i != n)
		return -1;
	addr_ipv4(a, b[0], b[1], b[2], b[3]);
	return 0;
}

int parse_ipv4(const char *s, xen_evtmgr_addr_t *a)
{
	return s ? parse_ipv4_n(s, strlen(s), a) : -1;
}

/*
 * An IPv6 address as inet_pton(AF_INET6) reads it (hex groups, "::", a dotted quad at the end; no zone, no
 * brackets). Sent as given: the all-zero address and IPv4-mapped ones (::ffff:a.b.c.d) too, for the DEM to refuse.
 */
static int parse_ipv6_n(const char *s, size_t n, xen_evtmgr_addr_t *a)
{
	char buf[INET6_ADDRSTRLEN];

	if (n == 0 || n >= sizeof(buf) || memchr(s, '\0', n))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET6, buf, a->addr) != 1)
		return -1;
	a->family = XEN_EVTMGR_AF_INET6;
	return 0;
}

/* IPv6 if it has a colon, else a strict dotted quad. */
static int parse_ip_n(const char *s, size_t n, xen_evtmgr_addr_t *a)
{
	return memchr(s, ':', n) ? parse_ipv6_n(s, n, a) : parse_ipv4_n(s, n, a);
}

int parse_ip(const char *s, xen_evtmgr_addr_t *a)
{
	return s ? parse_ip_n(s, strlen(s), a) : -1;
}

/* a.b.c.d:PORT or [IPv6]:PORT (an IPv6 address without brackets is refused: "::1:80" could be either). */
int parse_endpoint(const char *s, xen_evtmgr_addr_t *a, uint16_t *port)
{
	const char *colon;
	uint32_t p;

	if (!s || !(colon = strrchr(s, ':')))
		return -1;
	if (s[0] == '[') {
		if (colon - s < 2 || colon[-1] != ']' || parse_ipv6_n(s + 1, (size_t)(colon - s - 2), a) < 0)
			return -1;
	} else if (parse_ipv4_n(s, (size_t)(colon - s), a) < 0) {
		return -1;
	}
	/* decimal only for ports */
	if (colon[1] == '0' && colon[2] != '\0')
		return -1;
	for (const char *q = colon + 1; *q; q++)
		if (*q < '0' || *q > '9')
			return -1;
	if (parse_u32(colon + 1, 0, 65535, &p) < 0)
		return -1;
	*port = (uint16_t)p;
	return 0;
}

static const struct {
	const char *name;
	uint32_t bit;
} event_names[] = {
	{ "create", XEN_EVTMGR_EVENT_CREATE_TUNNEL },
	{ "send_close", XEN_EVTMGR_EVENT_SEND_CLOSE_TUNNEL },
	{ "reject", XEN_EVTMGR_EVENT_REJECT_TUNNEL },
	{ "recv_close", XEN_EVTMGR_EVENT_RECV_CLOSE_TUNNEL },
	{ "send_data", XEN_EVTMGR_EVENT_SEND_DATA },
	{ "recv_get_data", XEN_EVTMGR_EVENT_RECV_GET_DATA },
};
#define NR_EVENT_NAMES (sizeof(event_names) / sizeof(event_names[0]))

/* The bit order of Table 1 is the ABI's: record.raised[] is indexed by it. */
_Static_assert(XEN_EVTMGR_EVENT_ALL == 0x3f, "six event bits");

/*
 * Comma-separated event names, "all", or one number (decimal or 0x hex) taken as the raw mask, so out-of-range
 * masks can be sent on purpose. Empty items, unknown names and trailing commas are usage errors.
 */
int parse_events(const char *s, uint32_t *mask)
{
	uint32_t m = 0;
	const char *p = s;

	if (!s || !*s)
		return -1;
	if (*s >= '0' && *s <= '9')
		return parse_u32(s, 0, UINT32_MAX, mask);
	for (;;) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		size_t i;

		if (n == 3 && !strncmp(p, "all", 3)) {
			m |= XEN_EVTMGR_EVENT_ALL;
		} else {
			for (i = 0; i < NR_EVENT_NAMES; i++)
				if (strlen(event_names[i].name) == n && !strncmp(p, event_names[i].name, n))
					break;
			if (i == NR_EVENT_NAMES)
				return -1;
			m |= event_names[i].bit;
		}
		if (!end)
			break;
		p = end + 1;
	}
	*mask = m;
	return 0;
}

/*
 * CHANNELS,SIZE,GREF[,GREF...]: numbers as given (the DEM checks the ranges, so bad geometry can be sent on
 * purpose); nr_grefs is the number of GREFs, at most XEN_EVTMGR_MAX_GREFS (the structure has no room for more).
 */
int parse_tunnel(const char *s, xen_evtmgr_tunnel_t *t)
{
	char buf[256];
	char *save = NULL, *tok;
	uint32_t v[2 + XEN_EVTMGR_MAX_GREFS];
	unsigned n = 0;
	size_t len;

	if (!s || (len = strlen(s)) == 0 || len >= sizeof(buf))
		return -1;
	if (s[0] == ',' || s[len - 1] == ',' || strstr(s, ",,"))
		return -1;
	memcpy(buf, s, len + 1);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (n == sizeof(v) / sizeof(v[0]) || parse_u32(tok, 0, UINT32_MAX, &v[n]) < 0)
			return -1;
		n++;
	}
	if (n < 3)
		return -1;
	memset(t, 0, sizeof(*t));
	t->nr_channels = v[0];
	t->channel_size = v[1];
	t->nr_grefs = n - 2;
	for (unsigned i = 2; i < n; i++)
		t->gref[i - 2] = v[i];
	return 0;
}

int parse_domid(const char *s, domid_t *d)
{
	uint32_t v;

	if (s && !strcmp(s, "none")) {
		*d = XEN_EVTMGR_DOMID_NONE;
		return 0;
	}
	if (parse_u32(s, 0, 65535, &v) < 0)
		return -1;
	*d = (domid_t)v;
	return 0;
}

int parse_seconds(const char *s, double *sec)
{
	char *end;
	double v;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !(v > 0) || v > 86400)
		return -1;
	*sec = v;
	return 0;
}

int addr_equal(const xen_evtmgr_addr_t *a, const xen_evtmgr_addr_t *b)
{
	return !memcmp(a, b, sizeof(*a));
}

int conn_equal(const xen_evtmgr_conn_t *a, const xen_evtmgr_conn_t *b)
{
	return addr_equal(&a->src, &b->src) && addr_equal(&a->dst, &b->dst) && a->src_port == b->src_port &&
	       a->dst_port == b->dst_port;
}

/*
 * parse_opts: options may come in any order, before or between positionals; "--opt=value" is not used.
 */
int parse_opts(int argc, char **argv, struct opt *opts, const char **pos, int min_pos, int max_pos)
{
	int npos = 0;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		struct opt *o;

		if (a[0] != '-' || a[1] != '-') {
			if (a[0] == '-' && a[1] != '\0')
				usage_error("unknown option '%s'", a);
			if (npos == max_pos)
				usage_error("unexpected argument '%s'", a);
			pos[npos++] = a;
			continue;
		}
		for (o = opts; o && o->name; o++)
			if (!strcmp(o->name, a))
				break;
		if (!o || !o->name)
			usage_error("unknown option '%s'", a);
		if (o->flag) {
			if (*o->flag)
				usage_error("%s given twice", a);
			*o->flag = 1;
			continue;
		}
		if (*o->val)
			usage_error("%s given twice", a);
		if (i + 1 >= argc)
			usage_error("%s needs a value", a);
		*o->val = argv[++i];
	}
	if (npos < min_pos)
		usage_error("missing argument%s", min_pos - npos > 1 ? "s" : "");
	return npos;
}

const char *errno_name(int e)
{
	static char buf[16];
	const char *n = strerrorname_np(e);

	if (n)
		return n;
	snprintf(buf, sizeof(buf), "E%d", e);
	return buf;
}

/* ---------------------------------------------------------------- JSON */

void jb_printf(struct jb *j, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = j->cap - j->len;

		va_start(ap, fmt);
		n = vsnprintf(j->s ? j->s + j->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			abort();
		if ((size_t)n < room) {
			j->len += (size_t)n;
			return;
		}
		j->cap = (j->cap + (size_t)n + 1) * 2;
		j->s = realloc(j->s, j->cap);
		if (!j->s) {
			fputs("dem-probe: out of memory\n", stderr);
			exit(1);
		}
	}
}

void jb_str(struct jb *j, const char *s)
{
	jb_printf(j, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			jb_printf(j, "\\%c", c);
		else if (c < 0x20)
			jb_printf(j, "\\u%04x", c);
		else
			jb_printf(j, "%c", c);
	}
	jb_printf(j, "\"");
}

/* 4 (IPv4, dotted quad), 6 (IPv6, inet_ntop's compressed form) or 0: not an address in a form we print as text. */
static int addr_kind(const xen_evtmgr_addr_t *a)
{
	if (a->pad[0] || a->pad[1] || a->pad[2])
		return 0;
	if (a->family == XEN_EVTMGR_AF_INET6)
		return 6;
	if (a->family != XEN_EVTMGR_AF_INET)
		return 0;
	for (int i = 4; i < 16; i++)
		if (a->addr[i])
			return 0;
	return 4;
}

/* IPv4 as a dotted quad, IPv6 compressed; anything else (an address we do not expect) as family/hex. */
static void addr_text(char *buf, size_t n, const xen_evtmgr_addr_t *a)
{
	switch (addr_kind(a)) {
	case 4:
		snprintf(buf, n, "%u.%u.%u.%u", a->addr[0], a->addr[1], a->addr[2], a->addr[3]);
		return;
	case 6:
		if (inet_ntop(AF_INET6, a->addr, buf, (socklen_t)n))
			return;
		break;
	}
	size_t o = (size_t)snprintf(buf, n, "family%u/", a->family);
	for (int i = 0; i < 16 && o + 3 < n; i++)
		o += (size_t)snprintf(buf + o, n - o, "%02x", a->addr[i]);
}

void endpoint_text(char *buf, size_t n, const xen_evtmgr_addr_t *a, uint16_t port)
{
	char addr[64];

	addr_text(addr, sizeof(addr), a);
	snprintf(buf, n, addr_kind(a) == 6 ? "[%s]:%u" : "%s:%u", addr, port);
}

void jb_addr(struct jb *j, const xen_evtmgr_addr_t *a)
{
	char buf[64];

	addr_text(buf, sizeof(buf), a);
	jb_str(j, buf);
}

void jb_endpoint(struct jb *j, const xen_evtmgr_addr_t *a, uint16_t port)
{
	char buf[80];

	endpoint_text(buf, sizeof(buf), a, port);
	jb_str(j, buf);
}

void jb_domid(struct jb *j, domid_t d)
{
	if (d == XEN_EVTMGR_DOMID_NONE)
		jb_printf(j, "null");
	else
		jb_printf(j, "%u", d);
}

void jb_events(struct jb *j, uint32_t mask)
{
	const char *sep = "";

	jb_printf(j, "[");
	for (size_t i = 0; i < NR_EVENT_NAMES; i++)
		if (mask & event_names[i].bit) {
			jb_printf(j, "%s\"%s\"", sep, event_names[i].name);
			sep = ",";
		}
	if (mask & ~XEN_EVTMGR_EVENT_ALL)
		jb_printf(j, "%s\"0x%x\"", sep, mask & ~XEN_EVTMGR_EVENT_ALL);
	jb_printf(j, "]");
}

void jb_tunnel(struct jb *j, const xen_evtmgr_tunnel_t *t)
{
	uint32_t n = t->nr_grefs < XEN_EVTMGR_MAX_GREFS ? t->nr_grefs : XEN_EVTMGR_MAX_GREFS;

	jb_printf(j, "{\"channels\":%u,\"size\":%u,\"nr_grefs\":%u,\"grefs\":[", t->nr_channels, t->channel_size,
		  t->nr_grefs);
	for (uint32_t i = 0; i < n; i++)
		jb_printf(j, "%s%u", i ? "," : "", t->gref[i]);
	jb_printf(j, "],\"flags\":%u}", t->flags);
}

void jb_event(struct jb *j, const xen_evtmgr_event_t *e)
{
	jb_printf(j, "{\"src\":");
	jb_endpoint(j, &e->conn.src, e->conn.src_port);
	jb_printf(j, ",\"dst\":");
	jb_endpoint(j, &e->conn.dst, e->conn.dst_port);
	jb_printf(j, ",\"events\":");
	jb_events(j, e->events);
	jb_printf(j, ",\"peer\":");
	jb_domid(j, e->peer);
	if (e->events & XEN_EVTMGR_EVENT_CREATE_TUNNEL) {
		jb_printf(j, ",\"tunnel\":");
		jb_tunnel(j, &e->tunnel);
	}
	jb_printf(j, "}");
}

void jb_ip_entry(struct jb *j, const xen_evtmgr_ip_entry_t *e)
{
	jb_printf(j, "{\"ip\":");
	jb_addr(j, &e->addr);
	jb_printf(j, ",\"domid\":");
	jb_domid(j, e->domid);
	jb_printf(j, "}");
}

void jb_record(struct jb *j, const xen_evtmgr_record_t *r)
{
	jb_printf(j, "{\"src\":");
	jb_endpoint(j, &r->conn.src, r->conn.src_port);
	jb_printf(j, ",\"dst\":");
	jb_endpoint(j, &r->conn.dst, r->conn.dst_port);
	jb_printf(j, ",\"owner\":");
	jb_domid(j, r->owner);
	jb_printf(j, ",\"raiser\":");
	jb_domid(j, r->raiser);
	jb_printf(j, ",\"pending\":");
	jb_events(j, r->pending);
	jb_printf(j, ",\"raised\":{");
	for (size_t i = 0; i < NR_EVENT_NAMES; i++)
		jb_printf(j, "%s\"%s\":%llu", i ? "," : "", event_names[i].name, (unsigned long long)r->raised[i]);
	jb_printf(j, "},\"fetched\":%llu,\"nr_channels\":%u,\"channel_size\":%u}", (unsigned long long)r->fetched,
		  r->nr_channels, r->channel_size);
}

void jb_counters(struct jb *j, const xen_evtmgr_counters_t *c)
{
	jb_printf(j,
		  "{\"raises\":%llu,\"raises_denied\":%llu,\"virqs\":%llu,\"fetches\":%llu,\"events_delivered\":%llu,"
		  "\"records_created\":%llu,\"records_freed\":%llu,\"lookups\":%llu,\"ip_entries\":%u,\"records\":%u,"
		  "\"pending\":%u}",
		  (unsigned long long)c->raises, (unsigned long long)c->raises_denied, (unsigned long long)c->virqs,
		  (unsigned long long)c->fetches, (unsigned long long)c->events_delivered,
		  (unsigned long long)c->records_created, (unsigned long long)c->records_freed,
		  (unsigned long long)c->lookups, c->ip_entries, c->records, c->pending);
}

void jb_info(struct jb *j, const xen_evtmgr_info_t *i)
{
	jb_printf(j,
		  "\"abi_version\":%u,\"virq\":%u,\"max_ip_per_domain\":%u,\"max_records_per_domain\":%u,"
		  "\"max_pending_per_domain\":%u,\"max_batch\":%u,\"domid\":",
		  i->abi_version, i->virq, i->max_ip_per_domain, i->max_records_per_domain, i->max_pending_per_domain,
		  i->max_batch);
	jb_domid(j, i->domid);
}

void jb_print(struct jb *j)
{
	if (j->s)
		fwrite(j->s, 1, j->len, stdout);
	fputc('\n', stdout);
	fflush(stdout);
	free(j->s);
	j->s = NULL;
	j->len = j->cap = 0;
}
