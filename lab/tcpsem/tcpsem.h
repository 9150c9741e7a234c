/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * tcpsem: TCP socket semantics checker, shared declarations.
 *
 * Wire protocol (see README.md): every connection starts with the client
 * sending one line "CHECK <name>\n"; the server reads it byte by byte (so
 * nothing after the line is consumed) and plays its role for that check.
 * Checks whose server side verifies something end with a verdict line from
 * the server, "OK <detail>\n" or "FAIL <detail>\n".
 */
#ifndef TCPSEM_H
#define TCPSEM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/netutil.h"

#define TCPSEM_VERSION "1.4.0"
#define TCPSEM_PROTOCOL 1
#define DEFAULT_PORT 7002

/* Exit codes (stable interface). */
enum { EX_OK = 0, EX_FAIL = 1, EX_USAGE = 2, EX_NET = 3 };

#define LINE_MAX_LEN 512  /* CHECK and verdict lines, newline excluded */
#define DETAIL_MAX 480    /* a check's detail string */
#define CONNECT_WAIT_S 5.0 /* connect retried (every 100 ms) this long at most (and half the timeout) */

/* Command-line options (one struct for every command). */
struct opts {
	const char *host, *bind, *only;
	const char *expect_ulp; /* client: ulp_slot requires this ULP ("none": plain TCP); NULL: either is fine */
	unsigned port;
	double timeout; /* per check (client) or per connection (server), seconds */
};

struct check;

/* What a check's side gets besides its connected socket. */
struct ctx {
	const struct check *check;
	const struct opts *o;
};

/*
 * One check.  client() runs in a forked process bounded by alarm(--timeout),
 * on a fresh connection that has already sent "CHECK <name>\n"; server() runs
 * in the server's per-connection child after that line.  Both return 0 (pass)
 * or -1, with the detail set by fail()/note().  A NULL client marks a
 * server-only role that another check's client connects to (not listed).
 */
struct check {
	const char *name;
	uint32_t seed; /* pattern seed of this check's data */
	int (*client)(int fd, struct ctx *c);
	int (*server)(int fd, struct ctx *c);
};

/* ---- checks.c ---- */
extern const struct check checks[];
extern const size_t n_checks;
const struct check *check_find(const char *name);

/* ---- check_*.c: the two sides of each check ---- */
#define DECLARE_CHECK(n)                              \
	int n##_client(int fd, struct ctx *c);        \
	int n##_server(int fd, struct ctx *c)
DECLARE_CHECK(bulk_both_ways);
DECLARE_CHECK(many_small_writes);
DECLARE_CHECK(partial_reads);
DECLARE_CHECK(nonblocking);
DECLARE_CHECK(msg_peek);
DECLARE_CHECK(msg_waitall);
DECLARE_CHECK(poll_in);
DECLARE_CHECK(epoll_lt_et);
DECLARE_CHECK(shutdown_wr_eof);
DECLARE_CHECK(close_unread);
DECLARE_CHECK(so_rcvtimeo);
DECLARE_CHECK(sendfile);
DECLARE_CHECK(readv_writev);
DECLARE_CHECK(rr_ping_pong);
DECLARE_CHECK(msg_oob);
DECLARE_CHECK(sendfile_first);
DECLARE_CHECK(splice_read);
DECLARE_CHECK(threads_two_senders);
DECLARE_CHECK(threads_recv_epoll);
DECLARE_CHECK(threads_close_in_recv);
DECLARE_CHECK(recv_zero);
DECLARE_CHECK(o_async_sigio);
DECLARE_CHECK(peek_waitall);
DECLARE_CHECK(msg_trunc);
DECLARE_CHECK(rcvlowat_poll);
DECLARE_CHECK(outq_info);
DECLARE_CHECK(msg_zerocopy);
DECLARE_CHECK(threads_switch_senders);
DECLARE_CHECK(user_timeout);
DECLARE_CHECK(so_linger);
DECLARE_CHECK(close_unread_switched);
DECLARE_CHECK(disconnect_reconnect);
DECLARE_CHECK(recv_waitall_first);
DECLARE_CHECK(held_sender);
DECLARE_CHECK(ulp_slot);
DECLARE_CHECK(linger_poll_reader);
int close_unread_data_server(int fd, struct ctx *c);
int threads_close_in_recv_data_server(int fd, struct ctx *c);
int so_linger_data_server(int fd, struct ctx *c);
int close_unread_switched_data_server(int fd, struct ctx *c);
int disconnect_reconnect_second_server(int fd, struct ctx *c);

/* ---- pattern.c ---- */
/* Byte at stream offset i: ((i + seed * 1000003) * 2654435761 mod 2^64) >> 13 & 0xff. */
static inline uint8_t pat_byte(uint32_t seed, uint64_t i)
{
	return (uint8_t)(((i + (uint64_t)seed * 1000003u) * 2654435761u) >> 13);
}
void pat_fill(uint32_t seed, uint64_t off, void *buf, size_t n);
/* 0 if buf holds the pattern at [off, off+n), else -1 with the detail set. */
int pat_verify(uint32_t seed, uint64_t off, const void *buf, size_t n, const char *what);
/* n bytes of the pattern at *off, received and verified / sent (64 KiB at a time); *off moves on. 0, or -1 (detail). */
int recv_pattern(int fd, uint32_t seed, uint64_t *off, size_t n, const char *what);
int send_pattern(int fd, uint32_t seed, uint64_t *off, size_t n, const char *what);
/* Receives to EOF, verifying every byte at *off onwards: 0 at EOF (*off: where it ended), or -1 (detail). */
int recv_pattern_to_eof(int fd, uint32_t seed, uint64_t *off, const char *what);
#define FNV_INIT 0xcbf29ce484222325ull
uint64_t fnv64(uint64_t h, const void *buf, size_t n);

/* ---- util.c: details, time, I/O helpers ---- */
extern char detail[DETAIL_MAX];
/* Set the detail; return -1 (fail*) or nothing (note). */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Like fail, appends ": <ERRNO name> (<strerror>)". */
int fail_sys(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *errname(int e);

double now_s(void);
long ms_since(double t0);
void msleep(int ms);

int set_nonblock(int fd, int on);
int set_nodelay(int fd);
/* poll() for events with a timeout (ms); revents, 0 on timeout, -1 on error. */
int wait_for(int fd, short events, int ms);
/*
 * Waits (up to ms) until at least want bytes are queued for reading, measured
 * with recv(MSG_PEEK | MSG_DONTWAIT) (want <= 64 KiB); returns the count seen
 * last (may be < want on timeout), or -1 on error.
 */
ssize_t wait_queued(int fd, size_t want, int ms);
/* recv until n bytes or EOF: bytes read, or -1. */
ssize_t recv_full(int fd, void *buf, size_t n);
/* Exactly n bytes, else -1 with the detail naming `what`. */
int recv_exact(int fd, void *buf, size_t n, const char *what);
int send_exact(int fd, const void *buf, size_t n, const char *what);
/* Within ms the peer's EOF: recv returns 0 (with no data before it). */
int expect_eof(int fd, int ms, const char *what);
/* One line read byte by byte, newline stripped: its length, -1 error, -2 EOF or too long. */
int recv_line(int fd, char *buf, size_t size);
/* Sends "OK <detail>\n" if rc == 0, else "FAIL <detail>\n"; returns rc (or -1 if the send fails). */
int send_verdict(int fd, int rc);
/* Reads the server's verdict: 0 if OK (its text in out), else -1 with the detail set. */
int read_verdict(int fd, char *out, size_t size);
/* Connects to the server and sends "CHECK <name>\n": the socket, or -1 (detail set). */
int connect_check(const struct opts *o, const char *name);

/* ---- token.c: checks with a control and a data connection ---- */
/* Client: reads "TOKEN <t>" on ctl, connects "CHECK <check>.data" and sends "<t>\n": the data socket, or -1. */
int token_connect(int ctl, const struct opts *o, const char *check);
/* Control connection's server: sends the token, waits up to ms for the data side's report, sends it as the verdict. */
int token_verdict_server(int fd, const char *check, int ms);
/* Data connection's server: reads the token line (digits): 0, or -1 with the detail set. */
int token_read(int fd, char *token, size_t size);
/* Data connection's server: sends "OK|FAIL <detail>" (rc) to the control side; returns rc, or -1 if it cannot. */
int token_report(const char *check, const char *token, int rc);

/* ---- client.c, server.c ---- */
int cmd_client(const struct opts *o);
int cmd_server(const struct opts *o);

#endif
