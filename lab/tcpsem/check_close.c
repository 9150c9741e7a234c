// SPDX-License-Identifier: GPL-2.0-only
/* tcpsem checks on the end of a connection: shutdown_wr_eof, close_unread. */
#include "tcpsem.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
 * Two connections (token.c): the control connection ("CHECK close_unread")
 * gets a token and, at the end, the verdict; the data connection ("CHECK
 * close_unread.data", then the token line) is the one the client closes with
 * the server's 64 KiB unread.
 */
#define CU_BYTES (64u << 10)
#define CU_WINDOW_MS 2000

int close_unread_client(int fd, struct ctx *c)
{
	char sv[LINE_MAX_LEN];
	ssize_t q;
	int data = token_connect(fd, c->o, "close_unread");

	if (data < 0)
		return -1;
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
	(void)c;
	return token_verdict_server(fd, "close_unread", 20000);
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
	char token[32];

	if (token_read(fd, token, sizeof(token)) < 0)
		return -1;
	return token_report("close_unread", token, cu_observe(fd, c->check->seed));
}
