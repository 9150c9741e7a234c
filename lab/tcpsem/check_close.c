// SPDX-License-Identifier: GPL-2.0-only
/* tcpsem checks on the end of a connection: shutdown_wr_eof, close_unread. */
#include "tcpsem.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- shutdown_wr_eof ---- */

#define SHUT_BYTES (1u << 20)
#define SHUT_CHUNK (64u << 10)

int shutdown_wr_eof_client(int fd, struct ctx *c)
{
	static uint8_t buf[SHUT_CHUNK];
	char sv[LINE_MAX_LEN], want[64];
	uint64_t h = FNV_INIT, off;
	ssize_t r;

	for (off = 0; off < SHUT_BYTES; off += SHUT_CHUNK) {
		pat_fill(c->check->seed, off, buf, SHUT_CHUNK);
		h = fnv64(h, buf, SHUT_CHUNK);
		if (send_exact(fd, buf, SHUT_CHUNK, "data") < 0)
			return -1;
	}
	if (shutdown(fd, SHUT_WR) < 0)
		return fail_sys("shutdown(SHUT_WR)");
	r = send(fd, "x", 1, MSG_NOSIGNAL);
	if (!(r < 0 && errno == EPIPE))
		return r < 0 ? fail_sys("send after shutdown(SHUT_WR), expected EPIPE")
			     : fail("send after shutdown(SHUT_WR) returned %zd, expected -1 EPIPE", r);
	if (read_verdict(fd, sv, sizeof(sv)) < 0)
		return -1;
	snprintf(want, sizeof(want), "received %u bytes to EOF, fnv64 %016llx", SHUT_BYTES,
		 (unsigned long long)h);
	if (strncmp(sv, want, strlen(want)))
		return fail("expected the server to report '%s', it said '%s'", want, sv);
	if (expect_eof(fd, 5000, "after the reply") < 0)
		return -1;
	note("wrote %u bytes, shutdown(SHUT_WR), send -> -1 EPIPE; server: %s; reply then EOF",
	     SHUT_BYTES, sv);
	return 0;
}

int shutdown_wr_eof_server(int fd, struct ctx *c)
{
	static uint8_t buf[SHUT_CHUNK];
	uint64_t h = FNV_INIT, off = 0;
	int rc = 0;

	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return send_verdict(fd, fail_sys("recv at offset %llu", (unsigned long long)off));
		if (r == 0)
			break;
		if (rc == 0 && pat_verify(c->check->seed, off, buf, (size_t)r, "server") < 0)
			rc = -1;
		h = fnv64(h, buf, (size_t)r);
		off += (uint64_t)r;
	}
	if (rc == 0 && off != SHUT_BYTES)
		rc = fail("received %llu bytes to EOF, expected %u", (unsigned long long)off, SHUT_BYTES);
	if (rc == 0)
		note("received %llu bytes to EOF, fnv64 %016llx", (unsigned long long)off,
		     (unsigned long long)h);
	return send_verdict(fd, rc);
}

/* ---- close_unread ---- */

/*
 * Two connections: the control connection ("CHECK close_unread") gets a token
 * and, at the end, the verdict; the data connection ("CHECK close_unread.data",
 * then the token line) is the one the client closes with the server's 64 KiB
 * unread.  The server's child for the data connection reports what it saw to
 * the control connection's child in a datagram on the abstract Unix socket
 * "@tcpsem-close_unread-<token>".
 */
#define CU_BYTES (64u << 10)
#define CU_WINDOW_MS 2000

static socklen_t cu_addr(struct sockaddr_un *a, const char *token)
{
	int n;

	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "tcpsem-close_unread-%s", token);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

int close_unread_client(int fd, struct ctx *c)
{
	char line[LINE_MAX_LEN], sv[LINE_MAX_LEN];
	ssize_t q;
	int n, data;

	n = recv_line(fd, line, sizeof(line));
	if (n < 0 || strncmp(line, "TOKEN ", 6))
		return n == -1 ? fail_sys("reading the token") : fail("no token line from the server");
	data = connect_check(c->o, "close_unread.data");
	if (data < 0)
		return -1;
	n = snprintf(sv, sizeof(sv), "%s\n", line + 6);
	if (send_exact(data, sv, (size_t)n, "token") < 0) {
		close(data);
		return -1;
	}
	q = wait_queued(data, CU_BYTES, 2000);
	if (q < 0) {
		fail_sys("recv(MSG_PEEK|MSG_DONTWAIT)");
		close(data);
		return -1;
	}
	close(data);
	if (q == 0)
		return fail("none of the server's %u bytes arrived within 2 s", CU_BYTES);
	if (read_verdict(fd, sv, sizeof(sv)) < 0)
		return -1;
	if (expect_eof(fd, 5000, "after the verdict") < 0)
		return -1;
	note("closed with %zd bytes unread; server: %s", q, sv);
	return 0;
}

int close_unread_server(int fd, struct ctx *c)
{
	struct sockaddr_un a;
	char token[24], line[48], msg[LINE_MAX_LEN];
	ssize_t r;
	int u, n, rc;

	(void)c;
	snprintf(token, sizeof(token), "%ld", (long)getpid());
	u = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (u < 0 || bind(u, (struct sockaddr *)&a, cu_addr(&a, token)) < 0) {
		fail_sys("abstract Unix socket for the data connection's report");
		if (u >= 0)
			close(u);
		return send_verdict(fd, -1);
	}
	n = snprintf(line, sizeof(line), "TOKEN %s\n", token);
	if (send_exact(fd, line, (size_t)n, "token") < 0) {
		close(u);
		return -1;
	}
	if (wait_for(u, POLLIN, 20000) <= 0) {
		close(u);
		return send_verdict(fd, fail("no report from the data connection within 20 s"));
	}
	r = recv(u, msg, sizeof(msg) - 1, 0);
	close(u);
	if (r < 0)
		return send_verdict(fd, fail_sys("recv the data connection's report"));
	msg[r] = 0;
	rc = strncmp(msg, "OK ", 3) ? -1 : 0;
	note("%s", msg + (rc ? 5 : 3));
	return send_verdict(fd, rc); /* then close: the client expects EOF */
}

/*
 * Writes 64 KiB the client will not read, then watches (recv, then send, every
 * 20 ms) for ECONNRESET or EPIPE within CU_WINDOW_MS of the first sign of the
 * client's close (an event on the socket); 0 if seen, with what was seen noted.
 */
static int cu_observe(int fd, uint32_t seed)
{
	static uint8_t buf[CU_BYTES];
	char seen[200] = "";
	double t_write, t_event;
	size_t len = 0;
	int ev, sent_ok = 0;

	pat_fill(seed, 0, buf, sizeof(buf));
	if (netutil_send_full(fd, buf, sizeof(buf)) < 0) {
		if (errno == ECONNRESET || errno == EPIPE) {
			note("the 64 KiB send itself -> %s", errname(errno));
			return 0;
		}
		return fail_sys("send of the 64 KiB");
	}
	t_write = now_s();
	ev = wait_for(fd, POLLIN | POLLRDHUP, 10000);
	if (ev < 0)
		return fail_sys("poll");
	if (ev == 0)
		return fail("no event on the socket within 10 s of writing the 64 KiB (client closed?)");
	t_event = now_s();
	for (;;) {
		uint8_t b;
		ssize_t r = recv(fd, &b, 1, MSG_DONTWAIT);
		int e = errno;

		if (r < 0 && (e == ECONNRESET || e == EPIPE)) {
			note("%srecv -> %s %ld ms after the client's close was visible (%ld ms after the write)",
			     seen, errname(e), ms_since(t_event), ms_since(t_write));
			return 0;
		}
		if (r == 0 && !strstr(seen, "EOF"))
			len += (size_t)snprintf(seen + len, sizeof(seen) - len,
						"recv -> 0 (EOF) first; ");
		else if (r > 0)
			return fail("recv returned data (0x%02x); the client sends nothing", b);
		else if (r < 0 && e != EAGAIN && e != EINTR) {
			errno = e;
			return fail_sys("%srecv", seen);
		}
		r = send(fd, "z", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		e = errno;
		if (r < 0 && (e == ECONNRESET || e == EPIPE)) {
			note("%ssend -> %s %ld ms after the client's close was visible (%ld ms after the write; %d sends succeeded before)",
			     seen, errname(e), ms_since(t_event), ms_since(t_write), sent_ok);
			return 0;
		}
		if (r == 1)
			sent_ok++;
		else if (r < 0 && e != EAGAIN && e != EINTR) {
			errno = e;
			return fail_sys("%ssend", seen);
		}
		if (ms_since(t_event) > CU_WINDOW_MS)
			return fail("%sno ECONNRESET/EPIPE within %d ms (%d one-byte sends succeeded)",
				    seen, CU_WINDOW_MS, sent_ok);
		msleep(20);
	}
}

int close_unread_data_server(int fd, struct ctx *c)
{
	struct sockaddr_un a;
	char token[32], msg[LINE_MAX_LEN + 8];
	int n = recv_line(fd, token, sizeof(token)), rc, u;

	if (n <= 0 || strspn(token, "0123456789") != (size_t)n)
		return fail("bad token line");
	rc = cu_observe(fd, c->check->seed);
	n = snprintf(msg, sizeof(msg), "%s %s", rc ? "FAIL" : "OK", detail);
	u = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (u < 0 || sendto(u, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1, 0,
			    (struct sockaddr *)&a, cu_addr(&a, token)) < 0) {
		int e = errno;
		size_t k = strlen(detail);

		snprintf(detail + k, sizeof(detail) - k, "; reporting to the control connection: %s",
			 errname(e));
		rc = -1;
	}
	if (u >= 0)
		close(u);
	return rc;
}
