// SPDX-License-Identifier: GPL-2.0-only
/*
 * tcpsem checks of the corners of the socket API, each after a warm-up of 256 KiB so that on a tunnelled connection
 * the part under test travels in the tunnel:
 *   peek_waitall   recv(MSG_PEEK | MSG_WAITALL) waits until all the bytes asked for are queued, returns them all
 *                  without taking them; the next recv(MSG_WAITALL) returns the same bytes.
 *   msg_trunc      recv(NULL, n, MSG_TRUNC) discards n bytes and returns n (no EFAULT); MSG_PEEK | MSG_TRUNC counts
 *                  without taking; the bytes after them are the right ones.
 *   rcvlowat_poll  with SO_RCVLOWAT 1000, poll() does not report POLLIN for 500 queued bytes, and does once 1100 are.
 *   outq_info      SIOCOUTQ counts bytes the peer has not taken while it does not read; once it has read everything,
 *                  SIOCOUTQ is 0 and TCP_INFO counts every byte as acknowledged (tcpi_bytes_acked) on the sender
 *                  and as received (tcpi_bytes_received) on the receiver.
 *   msg_zerocopy   with SO_ZEROCOPY, every send(MSG_ZEROCOPY) gets its completion on the error queue (copied or
 *                  not), the ids cover every call, and the data arrives exact.
 *   recv_waitall_first  (no warm-up) a reader already blocked in recv(64 KiB, MSG_WAITALL) when the peer starts
 *                  sending in 1 KiB pieces gets all of them: the peer's switch to a tunnel must not strand it. The lab
 *                  also runs it with the reader blocked before the module is loaded (preexisting-conn-domU-domU-tunnel).
 */
#include "tcpsem.h"

#include <errno.h>
#include <linux/errqueue.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <linux/tcp.h> /* the full struct tcp_info (glibc's lacks tcpi_bytes_acked) */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif
#ifndef SO_EE_ORIGIN_ZEROCOPY
#define SO_EE_ORIGIN_ZEROCOPY 5
#endif
#ifndef SO_EE_CODE_ZEROCOPY_COPIED
#define SO_EE_CODE_ZEROCOPY_COPIED 1
#endif

#define WARMUP (256u << 10)

/* The client's end of the server->client checks: its 'y' said, the rest read, then EOF both ways. */
static int finish(int fd)
{
	if (shutdown(fd, SHUT_WR) < 0)
		return fail_sys("shutdown(SHUT_WR)");
	return expect_eof(fd, 5000, "at the end");
}

/*
 * Server side of the server->client checks: WARMUP bytes, then on the client's 'y' the parts, each `gap_ms` after
 * the previous one (a part after the first also waits for one more byte from the client when `step` is set).
 */
static int serve_parts(int fd, uint32_t seed, const size_t *parts, int nparts, int gap_ms, int step)
{
	uint64_t off = 0;
	uint8_t b;
	int i;

	if (send_pattern(fd, seed, &off, WARMUP, "the first 256 KiB") < 0 || recv_exact(fd, &b, 1, "ready") < 0)
		return -1;
	for (i = 0; i < nparts; i++) {
		if (i && step && recv_exact(fd, &b, 1, "next") < 0)
			return -1;
		if (gap_ms)
			msleep(gap_ms);
		if (send_pattern(fd, seed, &off, parts[i], "a part") < 0)
			return -1;
	}
	return expect_eof(fd, 10000, "at the end");
}

/* ---- peek_waitall ---- */

#define PW_PART 1000u
#define PW_PARTS 10

int peek_waitall_client(int fd, struct ctx *c)
{
	static uint8_t a[PW_PART * PW_PARTS], b[PW_PART * PW_PARTS];
	uint64_t off = 0;
	double t0;
	long ms;
	ssize_t r;

	if (recv_pattern(fd, c->check->seed, &off, WARMUP, "the first 256 KiB") < 0)
		return -1;
	if (send_exact(fd, "y", 1, "ready") < 0)
		return -1;
	t0 = now_s();
	r = recv(fd, a, sizeof(a), MSG_PEEK | MSG_WAITALL);
	ms = ms_since(t0);
	if (r < 0)
		return fail_sys("recv(%zu, MSG_PEEK | MSG_WAITALL)", sizeof(a));
	if ((size_t)r != sizeof(a))
		return fail("recv(%zu, MSG_PEEK | MSG_WAITALL) returned %zd after %ld ms, expected all %zu", sizeof(a), r,
			    ms, sizeof(a));
	if (pat_verify(c->check->seed, off, a, sizeof(a), "the peeked bytes") < 0)
		return -1;
	r = recv(fd, b, sizeof(b), MSG_WAITALL);
	if (r != (ssize_t)sizeof(b))
		return r < 0 ? fail_sys("recv(MSG_WAITALL) after the peek")
			     : fail("recv(MSG_WAITALL) after the peek returned %zd, expected %zu", r, sizeof(b));
	if (memcmp(a, b, sizeof(a)))
		return fail("the bytes read differ from the bytes peeked");
	if (finish(fd) < 0)
		return -1;
	note("recv(%zu, MSG_PEEK | MSG_WAITALL) returned all %zu after %ld ms (%d writes of %u bytes 20 ms apart); the read after it returned the same bytes",
	     sizeof(a), sizeof(a), ms, PW_PARTS, PW_PART);
	return 0;
}

int peek_waitall_server(int fd, struct ctx *c)
{
	size_t parts[PW_PARTS];
	int i;

	for (i = 0; i < PW_PARTS; i++)
		parts[i] = PW_PART;
	return serve_parts(fd, c->check->seed, parts, PW_PARTS, 20, 0);
}

/* ---- msg_trunc ---- */

#define MT_BYTES 10000u
#define MT_DROP 4000u

int msg_trunc_client(int fd, struct ctx *c)
{
	uint64_t off = 0;
	ssize_t q, r;

	if (recv_pattern(fd, c->check->seed, &off, WARMUP, "the first 256 KiB") < 0)
		return -1;
	if (send_exact(fd, "y", 1, "ready") < 0)
		return -1;
	q = wait_queued(fd, MT_BYTES, 5000);
	if (q != (ssize_t)MT_BYTES)
		return fail("%zd of %u bytes queued after 5 s", q, MT_BYTES);
	r = recv(fd, NULL, MT_DROP, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
	if (r != (ssize_t)MT_DROP)
		return r < 0 ? fail_sys("recv(NULL, %u, MSG_PEEK | MSG_TRUNC)", MT_DROP)
			     : fail("recv(NULL, %u, MSG_PEEK | MSG_TRUNC) returned %zd", MT_DROP, r);
	r = recv(fd, NULL, MT_DROP, MSG_TRUNC);
	if (r != (ssize_t)MT_DROP)
		return r < 0 ? fail_sys("recv(NULL, %u, MSG_TRUNC)", MT_DROP)
			     : fail("recv(NULL, %u, MSG_TRUNC) returned %zd", MT_DROP, r);
	off += MT_DROP;
	if (recv_pattern(fd, c->check->seed, &off, MT_BYTES - MT_DROP, "the bytes after the discarded ones") < 0)
		return -1;
	if (finish(fd) < 0)
		return -1;
	note("MSG_PEEK | MSG_TRUNC counted %u bytes, MSG_TRUNC without a buffer discarded them, the %u after are exact",
	     MT_DROP, MT_BYTES - MT_DROP);
	return 0;
}

int msg_trunc_server(int fd, struct ctx *c)
{
	size_t parts[1] = { MT_BYTES };

	return serve_parts(fd, c->check->seed, parts, 1, 0, 0);
}

/* ---- rcvlowat_poll ---- */

#define RL_LOWAT 1000
#define RL_FIRST 500u
#define RL_SECOND 600u

int rcvlowat_poll_client(int fd, struct ctx *c)
{
	uint8_t buf[4096];
	int lowat = RL_LOWAT, p1, p2;
	uint64_t off = 0;
	double t0;
	long ms;
	ssize_t q, r;

	if (recv_pattern(fd, c->check->seed, &off, WARMUP, "the first 256 KiB") < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)) < 0)
		return fail_sys("setsockopt(SO_RCVLOWAT, %d)", lowat);
	if (send_exact(fd, "y", 1, "ready") < 0)
		return -1;
	q = wait_queued(fd, RL_FIRST, 5000);
	if (q != (ssize_t)RL_FIRST)
		return fail("%zd of the first %u bytes queued after 5 s", q, RL_FIRST);
	p1 = wait_for(fd, POLLIN, 500);
	if (p1 < 0)
		return fail_sys("poll(POLLIN) with %u bytes queued", RL_FIRST);
	if (p1 & POLLIN)
		return fail("poll() reported POLLIN with %u bytes queued and SO_RCVLOWAT %d", RL_FIRST, lowat);
	if (send_exact(fd, "n", 1, "next") < 0)
		return -1;
	t0 = now_s();
	p2 = wait_for(fd, POLLIN, 5000);
	ms = ms_since(t0);
	if (p2 <= 0 || !(p2 & POLLIN))
		return p2 < 0 ? fail_sys("poll(POLLIN) for the second part")
			      : fail("no POLLIN within 5 s once %u bytes were sent (SO_RCVLOWAT %d)", RL_FIRST + RL_SECOND,
				     lowat);
	r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (r != (ssize_t)(RL_FIRST + RL_SECOND))
		return r < 0 ? fail_sys("recv after POLLIN")
			     : fail("recv after POLLIN returned %zd, expected %u", r, RL_FIRST + RL_SECOND);
	if (pat_verify(c->check->seed, off, buf, (size_t)r, "the two parts") < 0)
		return -1;
	if (finish(fd) < 0)
		return -1;
	note("SO_RCVLOWAT %d: no POLLIN in 500 ms for %u queued bytes, POLLIN %ld ms after %u more, recv took all %u",
	     lowat, RL_FIRST, ms, RL_SECOND, RL_FIRST + RL_SECOND);
	return 0;
}

int rcvlowat_poll_server(int fd, struct ctx *c)
{
	size_t parts[2] = { RL_FIRST, RL_SECOND };

	return serve_parts(fd, c->check->seed, parts, 2, 0, 1);
}

/* ---- outq_info ---- */

#define OQ_PAUSE_MS 1500
#define OQ_FILL_MAX (16u << 20)

static int tcp_info_of(int fd, struct tcp_info *ti)
{
	socklen_t len = sizeof(*ti);

	memset(ti, 0, sizeof(*ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, ti, &len) < 0)
		return fail_sys("getsockopt(TCP_INFO)");
	if (len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti->tcpi_bytes_received))
		return fail("TCP_INFO returned %u bytes, too few for tcpi_bytes_received", (unsigned)len);
	return 0;
}

int outq_info_client(int fd, struct ctx *c)
{
	static uint8_t buf[65536];
	char sv[LINE_MAX_LEN];
	uint64_t off = 0, total;
	struct tcp_info ti;
	int outq_full = -1, outq_end = -1, i;

	if (send_pattern(fd, c->check->seed, &off, WARMUP, "the first 256 KiB") < 0)
		return -1;
	/* the server reads the warm-up and then pauses: fill until the socket takes no more */
	if (set_nonblock(fd, 1) < 0)
		return fail_sys("O_NONBLOCK");
	while (off < WARMUP + OQ_FILL_MAX) {
		ssize_t r;

		pat_fill(c->check->seed, off, buf, sizeof(buf));
		r = send(fd, buf, sizeof(buf), MSG_NOSIGNAL);
		if (r > 0) {
			off += (uint64_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_for(fd, POLLOUT, 300) == 0)
				break; /* unwritable for 300 ms: the peer is not reading */
			continue;
		}
		return fail_sys("send at offset %llu", (unsigned long long)off);
	}
	if (ioctl(fd, SIOCOUTQ, &outq_full) < 0)
		return fail_sys("ioctl(SIOCOUTQ)");
	if (outq_full <= 0)
		return fail("SIOCOUTQ is %d with %llu bytes sent and the peer not reading", outq_full,
			    (unsigned long long)(off - WARMUP));
	if (set_nonblock(fd, 0) < 0)
		return fail_sys("blocking again");
	total = off;
	if (shutdown(fd, SHUT_WR) < 0)
		return fail_sys("shutdown(SHUT_WR)");
	if (read_verdict(fd, sv, sizeof(sv)) < 0)
		return -1;
	/* everything was read: nothing is outstanding, and TCP_INFO counts it all as acknowledged */
	for (i = 0; i < 40; i++) {
		if (ioctl(fd, SIOCOUTQ, &outq_end) < 0)
			return fail_sys("ioctl(SIOCOUTQ) at the end");
		if (outq_end == 0)
			break;
		msleep(50);
	}
	if (outq_end != 0)
		return fail("SIOCOUTQ is still %d 2 s after the server read all %llu bytes", outq_end,
			    (unsigned long long)total);
	if (tcp_info_of(fd, &ti) < 0)
		return -1;
	if (ti.tcpi_bytes_acked < total)
		return fail("tcpi_bytes_acked %llu < %llu bytes the server read", (unsigned long long)ti.tcpi_bytes_acked,
			    (unsigned long long)total);
	if (expect_eof(fd, 5000, "after the verdict") < 0)
		return -1;
	note("SIOCOUTQ %d with the peer not reading, 0 once it had read all %llu bytes; tcpi_bytes_acked %llu; server: %s",
	     outq_full, (unsigned long long)total, (unsigned long long)ti.tcpi_bytes_acked, sv);
	return 0;
}

int outq_info_server(int fd, struct ctx *c)
{
	uint64_t off = 0;
	struct tcp_info ti;
	int rc;

	if (recv_pattern(fd, c->check->seed, &off, WARMUP, "the first 256 KiB") < 0)
		return send_verdict(fd, -1);
	msleep(OQ_PAUSE_MS);
	rc = recv_pattern_to_eof(fd, c->check->seed, &off, "server");
	if (rc == 0 && tcp_info_of(fd, &ti) < 0)
		rc = -1;
	if (rc == 0 && ti.tcpi_bytes_received < off)
		rc = fail("tcpi_bytes_received %llu < %llu bytes read", (unsigned long long)ti.tcpi_bytes_received,
			  (unsigned long long)off);
	if (rc == 0)
		note("read %llu bytes to EOF, exact; tcpi_bytes_received %llu", (unsigned long long)off,
		     (unsigned long long)ti.tcpi_bytes_received);
	return send_verdict(fd, rc);
}

/* ---- msg_zerocopy ---- */

#define ZC_CALLS 16
#define ZC_SIZE (64u << 10)

/* Reads every completion queued now: marks ids [lo, hi] done; returns how many notifications, -1 on error. */
static int zc_drain(int fd, uint8_t *done, int *copied)
{
	int n = 0;

	for (;;) {
		char control[128];
		struct msghdr m = { .msg_control = control, .msg_controllen = sizeof(control) };
		struct cmsghdr *cm;
		ssize_t r = recvmsg(fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT);

		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return n;
		if (r < 0)
			return fail_sys("recvmsg(MSG_ERRQUEUE)");
		for (cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
			struct sock_extended_err ee;
			uint32_t id;

			if (!((cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) ||
			      (cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR)))
				continue;
			memcpy(&ee, CMSG_DATA(cm), sizeof(ee));
			if (ee.ee_origin != SO_EE_ORIGIN_ZEROCOPY || ee.ee_errno != 0)
				return fail("an error-queue message with origin %u errno %u, expected a zerocopy completion",
					    ee.ee_origin, ee.ee_errno);
			if (ee.ee_data < ee.ee_info || ee.ee_data >= ZC_CALLS)
				return fail("a completion for ids %u..%u, only 0..%d were sent", ee.ee_info, ee.ee_data,
					    ZC_CALLS - 1);
			for (id = ee.ee_info; id <= ee.ee_data; id++)
				done[id]++;
			if (ee.ee_code & SO_EE_CODE_ZEROCOPY_COPIED)
				(*copied)++;
			n++;
		}
	}
}

int msg_zerocopy_client(int fd, struct ctx *c)
{
	static uint8_t buf[ZC_SIZE];
	uint8_t done[ZC_CALLS] = { 0 };
	uint64_t off = 0;
	int one = 1, copied = 0, notes = 0, i, missing;
	double t0;
	char sv[LINE_MAX_LEN];

	if (send_pattern(fd, c->check->seed, &off, WARMUP, "the first 256 KiB") < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)) < 0)
		return fail_sys("setsockopt(SO_ZEROCOPY)");
	for (i = 0; i < ZC_CALLS; i++) {
		ssize_t r;

		pat_fill(c->check->seed, off, buf, sizeof(buf));
		do
			r = send(fd, buf, sizeof(buf), MSG_ZEROCOPY | MSG_NOSIGNAL);
		while (r < 0 && errno == EINTR);
		if (r != (ssize_t)sizeof(buf))
			return r < 0 ? fail_sys("send(MSG_ZEROCOPY) %d", i)
				     : fail("send(MSG_ZEROCOPY) %d returned %zd, expected %zu", i, r, sizeof(buf));
		off += sizeof(buf);
		/* the buffer is rewritten only after its completion (the next pat_fill), as a real user must */
		t0 = now_s();
		while (!done[i]) {
			long left = 5000 - ms_since(t0);
			int k, p = wait_for(fd, POLLERR, left > 0 ? (int)left : 0);

			if (p < 0)
				return fail_sys("poll for the completion of call %d", i);
			k = zc_drain(fd, done, &copied);
			if (k < 0)
				return -1;
			notes += k;
			if (!done[i] && ms_since(t0) >= 5000)
				return fail("no completion for send(MSG_ZEROCOPY) call %d within 5 s (%d notifications so far)", i,
					    notes);
		}
	}
	for (i = 0, missing = 0; i < ZC_CALLS; i++)
		if (done[i] != 1)
			missing++;
	if (missing)
		return fail("%d of %d calls were not completed exactly once", missing, ZC_CALLS);
	if (shutdown(fd, SHUT_WR) < 0)
		return fail_sys("shutdown(SHUT_WR)");
	if (read_verdict(fd, sv, sizeof(sv)) < 0 || expect_eof(fd, 5000, "after the verdict") < 0)
		return -1;
	note("%d send(MSG_ZEROCOPY) calls of %u bytes, each completed once (%d notifications, %d marked copied); server: %s",
	     ZC_CALLS, ZC_SIZE, notes, copied, sv);
	return 0;
}

int msg_zerocopy_server(int fd, struct ctx *c)
{
	uint64_t off = 0, want = WARMUP + (uint64_t)ZC_CALLS * ZC_SIZE;
	int rc = recv_pattern_to_eof(fd, c->check->seed, &off, "server");
	if (rc == 0 && off != want)
		rc = fail("received %llu bytes to EOF, expected %llu", (unsigned long long)off, (unsigned long long)want);
	if (rc == 0)
		note("received %llu bytes to EOF, exact", (unsigned long long)off);
	return send_verdict(fd, rc);
}

/* ---- recv_waitall_first ---- */

#define WF_BYTES (64u << 10)
#define WF_PIECE 1024u
#define WF_DELAY_MS 2500
#define WF_AFTER (256u << 10)

int recv_waitall_first_client(int fd, struct ctx *c)
{
	static uint8_t buf[WF_BYTES];
	uint64_t off = 0;
	double t0 = now_s();
	long ms;
	ssize_t r;

	r = recv(fd, buf, sizeof(buf), MSG_WAITALL);
	ms = ms_since(t0);
	if (r != (ssize_t)sizeof(buf))
		return r < 0 ? fail_sys("recv(%u, MSG_WAITALL) blocked first", WF_BYTES)
			     : fail("recv(%u, MSG_WAITALL) blocked first returned %zd after %ld ms", WF_BYTES, r, ms);
	if (pat_verify(c->check->seed, off, buf, sizeof(buf), "the first 64 KiB") < 0)
		return -1;
	off += sizeof(buf);
	if (send_exact(fd, "y", 1, "ready") < 0 || recv_pattern(fd, c->check->seed, &off, WF_AFTER, "the 256 KiB after") < 0)
		return -1;
	if (finish(fd) < 0)
		return -1;
	note("recv(%u, MSG_WAITALL), blocked before the peer wrote, returned all %u bytes (%u-byte writes) after %ld ms; %u more after it, exact",
	     WF_BYTES, WF_BYTES, WF_PIECE, ms, WF_AFTER);
	return 0;
}

int recv_waitall_first_server(int fd, struct ctx *c)
{
	uint64_t off = 0;
	uint8_t b;
	unsigned i;

	msleep(WF_DELAY_MS);
	for (i = 0; i < WF_BYTES / WF_PIECE; i++) {
		if (i)
			msleep(20);
		if (send_pattern(fd, c->check->seed, &off, WF_PIECE, "a piece") < 0)
			return -1;
	}
	if (recv_exact(fd, &b, 1, "ready") < 0 || send_pattern(fd, c->check->seed, &off, WF_AFTER, "the rest") < 0)
		return -1;
	return expect_eof(fd, 10000, "at the end");
}
