/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dem-probe: exercises the fast-IVC Domain Event Manager (DEM) hypercall family from inside a Xen guest.
 *
 * The DEM's ABI is the patched Xen tree's public/evtmgr.h; the Makefile points the quoted include path at that
 * directory (XEN_PUBLIC), so "evtmgr.h" below is the real header, never a copy.
 *
 * args.c    argument parsing and JSON formatting (no hypercalls, no devices)
 * xencall.c /dev/xen/privcmd hypercalls, /dev/xen/evtchn VIRQ binding, touched hypercall buffers
 * main.c    the subcommands
 * selftest.c the single-domain conformance run
 */
#ifndef DEM_PROBE_H
#define DEM_PROBE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifndef __XEN_TOOLS__
#define __XEN_TOOLS__ 1 /* as Xen's own tools do: the public headers' latest interface version */
#endif

#if !__has_include("evtmgr.h")
#error "DEM public header evtmgr.h not found: build with make -C lab/dem-probe XEN_PUBLIC=<patched xen>/xen/include/public (default ../../build/xen/src/xen/include/public, created by ./build.sh xen once the DEM patch is in xen-patches/series)"
#endif
#include "evtmgr.h" /* includes the same tree's xen.h */

/* Hypercall number and VIRQ: public/xen.h of the patched tree defines them; the values are the ABI's. */
#ifdef __HYPERVISOR_evtmgr_op
#define DEM_HYPERCALL __HYPERVISOR_evtmgr_op
#else
#define DEM_HYPERCALL 43
#endif
#ifdef VIRQ_EVTMGR
#define DEM_VIRQ VIRQ_EVTMGR
#else
#define DEM_VIRQ 14
#endif

/* The probe's 4-tuple for the selftest's raise/release cases: ports no real socket uses. */
#define SELFTEST_SRC_PORT 1
#define SELFTEST_DST_PORT 2

/* ---- args.c: parsing (0 = ok, -1 = bad value) ---- */
int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out); /* decimal or 0x hex */
int parse_ipv4(const char *s, xen_evtmgr_addr_t *a);                     /* strict dotted quad */
int parse_ip(const char *s, xen_evtmgr_addr_t *a);                       /* IPv4, or IPv6 (inet_pton) */
int parse_endpoint(const char *s, xen_evtmgr_addr_t *a, uint16_t *port); /* IPv4:PORT or [IPv6]:PORT */
int parse_events(const char *s, uint32_t *mask);                         /* names, "all", or a number */
int parse_tunnel(const char *s, xen_evtmgr_tunnel_t *t);                 /* CHANNELS,SIZE,GREF[,GREF...] */
int parse_domid(const char *s, domid_t *d);                              /* 0..65535 or "none" */
int parse_seconds(const char *s, double *sec);                           /* (0, 86400] */
void addr_ipv4(xen_evtmgr_addr_t *a, uint8_t b0, uint8_t b1, uint8_t b2, uint8_t b3);
int addr_equal(const xen_evtmgr_addr_t *a, const xen_evtmgr_addr_t *b);
int conn_equal(const xen_evtmgr_conn_t *a, const xen_evtmgr_conn_t *b);

/* Option parsing for one subcommand: every option takes a value unless flag != NULL. */
struct opt {
	const char *name; /* "--src" */
	const char **val; /* set to the value */
	int *flag;        /* set to 1 instead, for options without a value */
};
/* Fills opts and up to max_pos positionals; exits 2 on unknown/repeated options or a wrong positional count. */
int parse_opts(int argc, char **argv, struct opt *opts, const char **pos, int min_pos, int max_pos);

extern const char *prog_cmd; /* current subcommand, for messages */
_Noreturn void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void print_usage(void);

/* Names of errnos (Xen's equal Linux's for every value the DEM returns; see xencall.c). */
const char *errno_name(int e);

/* ---- args.c: JSON output, built in memory and printed as one line ---- */
struct jb {
	char *s;
	size_t len, cap;
};
void jb_printf(struct jb *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void jb_str(struct jb *j, const char *s); /* a quoted, escaped JSON string */
void jb_addr(struct jb *j, const xen_evtmgr_addr_t *a);
void jb_endpoint(struct jb *j, const xen_evtmgr_addr_t *a, uint16_t port);
void endpoint_text(char *buf, size_t n, const xen_evtmgr_addr_t *a, uint16_t port); /* "a.b.c.d:p", "[v6]:p" */
void jb_domid(struct jb *j, domid_t d); /* a number, or null for XEN_EVTMGR_DOMID_NONE */
void jb_events(struct jb *j, uint32_t mask);
void jb_tunnel(struct jb *j, const xen_evtmgr_tunnel_t *t);
void jb_event(struct jb *j, const xen_evtmgr_event_t *e);
void jb_ip_entry(struct jb *j, const xen_evtmgr_ip_entry_t *e);
void jb_record(struct jb *j, const xen_evtmgr_record_t *r);
void jb_counters(struct jb *j, const xen_evtmgr_counters_t *c);
void jb_info(struct jb *j, const xen_evtmgr_info_t *i);
void jb_print(struct jb *j); /* prints the buffer and a newline on stdout, frees it */

/* ---- xencall.c ---- */
/* Opens the privcmd device (DEM_PROBE_PRIVCMD overrides /dev/xen/privcmd). 0, or -errno. */
int dem_open(void);
const char *dem_privcmd_path(void);
void dem_open_error(char *buf, size_t n, int r); /* the message for dem_open's failure r */
/* 1 if this looks like a domU whose privcmd blocks all hypercalls (xen-privcmd without unrestricted=1). */
int dem_privcmd_blocked(void);
#define PRIVCMD_BLOCKED_HINT                                                                                         \
	"Linux's privcmd blocks hypercalls in this domU: load it with 'modprobe xen-privcmd unrestricted=1'"
/* One DEM hypercall with arg passed as is: the return value (>= 0) or -errno. */
long dem_op(unsigned int cmd, void *arg);
/* Copies len bytes of obj into touched, locked memory, calls, copies the result back. */
long dem_op_obj(unsigned int cmd, void *obj, size_t len);
/* Anonymous memory, every page written and (if permitted) locked: safe to hand to Xen. Exits on failure. */
void *dem_alloc(size_t len);
/* A page the caller cannot access (PROT_NONE). */
void *dem_noaccess_page(void);

const char *dem_evtchn_path(void);
int evt_open(void);                                   /* fd, or -errno */
int evt_bind_virq(int fd, unsigned int virq);         /* local port, or -errno */
int evt_read(int fd, uint32_t *ports, int max);       /* ports read (>= 0), or -errno */
int evt_unmask(int fd, uint32_t port);                /* 0, or -errno */

/* ---- selftest.c ---- */
int cmd_selftest(int argc, char **argv);

#endif
