// SPDX-License-Identifier: GPL-2.0-only
/* ivcbench server: one forked child per connection. */
#include "ivcbench.h"
#include "pattern.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void reap(int sig)
{
	int e = errno;

	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = e;
}

/* Runs one connection; returns its exit status (EX_*). */
static int handle_conn(int fd, const struct opts *o)
{
	uint8_t hb[HDR_LEN], ab[ACK_LEN], rb[REPORT_LEN];
	struct hdr h = { 0 };
	struct pattern pat = { 0 };
	struct report rep = { 0 };
	struct recv_result r = { 0, 0, NO_MISMATCH };
	uint64_t cs_sent = 0, count = 0;
	int status = EX_NET, st, verified = 1, have_recv = 0, have_sent = 0;
	char peer[80];
	ssize_t n;

	ivcb_err[0] = 0;
	peer_name(fd, peer, sizeof(peer));
	io_timeout_s = o->timeout;
	if (net_set_timeouts(fd, o->timeout) < 0)
		goto done;
	n = read_full(fd, hb, HDR_LEN);
	if (n < 0) {
		set_err_sys("receive request header");
		goto done;
	}
	if (n < HDR_LEN || hdr_decode(hb, &h) < 0) {
		set_err("bad request header (not an ivcbench client?)");
		goto done;
	}
	st = hdr_check(&h);
	ack_encode((uint16_t)st, ab);
	if (netutil_send_full(fd, ab, ACK_LEN) < 0) {
		set_err_sys("send ack");
		goto done;
	}
	if (st != ACK_OK) {
		set_err("rejected request (status %d)", st);
		goto done;
	}
	if (pattern_init(&pat, h.seed, pattern_window_for(h.msg_size)) < 0) {
		set_err("out of memory");
		goto done;
	}
	if (h.mode == MODE_RR) {
		if (net_set_nodelay(fd) < 0 ||
		    rr_serve(fd, &pat, h.msg_size, &count, &verified) < 0)
			goto done;
	} else if (h.direction == DIR_SEND) {
		/* We receive; the client sends and waits for our report. */
		if (stream_recv(fd, &pat, h.msg_size, &r) < 0)
			goto done;
		have_recv = 1;
		if (r.mismatch == NO_MISMATCH && r.bytes != h.total)
			r.mismatch = r.bytes < h.total ? r.bytes : h.total;
		verified = r.mismatch == NO_MISMATCH;
		rep.flags = verified ? REPORT_F_VERIFIED : 0;
		rep.bytes = r.bytes;
		rep.checksum = r.checksum;
		rep.mismatch = r.mismatch;
		report_encode(&rep, rb);
		if (netutil_send_full(fd, rb, REPORT_LEN) < 0) {
			set_err_sys("send report");
			goto done;
		}
	} else {
		/* We send; the client verifies and reports back. */
		if (stream_send(fd, &pat, h.total, h.msg_size,
				!!(h.flags & HDR_F_CORRUPT), h.corrupt_at,
				&cs_sent) < 0)
			goto done;
		have_sent = 1;
		if (shutdown(fd, SHUT_WR) < 0) {
			set_err_sys("shutdown");
			goto done;
		}
		n = read_full(fd, rb, REPORT_LEN);
		if (n < 0) {
			set_err_sys("receive the client's report");
			goto done;
		}
		if (n < REPORT_LEN || report_decode(rb, &rep) < 0) {
			set_err("connection closed before the client's report");
			goto done;
		}
		have_recv = 1;
		r.bytes = rep.bytes;
		r.checksum = rep.checksum;
		r.mismatch = rep.mismatch;
		verified = !!(rep.flags & REPORT_F_VERIFIED);
	}
	status = verified ? EX_OK : EX_VERIFY;
done:
	close(fd);
	pattern_free(&pat);
	if (o->verbose) {
		struct json j;

		json_begin(&j);
		json_str(&j, "tool", "ivcbench");
		json_str(&j, "mode", h.mode == MODE_RR ? "rr" :
				     h.mode == MODE_STREAM ? "stream" : "unknown");
		json_str(&j, "role", "server");
		json_str(&j, "peer", peer);
		if (h.mode == MODE_STREAM) {
			json_str(&j, "direction",
				 h.direction == DIR_SEND ? "send" : "recv");
			json_u64(&j, "bytes", h.total);
		}
		json_u64(&j, "msg_size", h.msg_size);
		if (h.mode == MODE_RR)
			json_u64(&j, "count", count);
		if (have_recv) {
			json_u64(&j, "bytes_received", r.bytes);
			json_hex(&j, "checksum_received", r.checksum);
			json_i64(&j, "mismatch_offset", r.mismatch == NO_MISMATCH ?
				 -1 : (int64_t)r.mismatch);
		}
		if (have_sent)
			json_hex(&j, "checksum_sent", cs_sent);
		json_bool(&j, "verified", status == EX_OK);
		json_u64(&j, "status", (uint64_t)status);
		if (status == EX_NET)
			json_str(&j, "error", ivcb_err);
		json_emit(&j);
	} else if (status == EX_NET) {
		fprintf(stderr, "ivcbench server: %s: %s\n", peer, ivcb_err);
	}
	return status;
}

int cmd_server(const struct opts *o)
{
	struct sigaction sa;
	unsigned port;
	int lfd;

	lfd = net_listen(o->bind, o->port, &port);
	if (lfd < 0)
		return json_error("server", ivcb_err);
	fprintf(stderr, "ivcbench: listening on %s:%u\n", o->bind, port);
	if (o->once) {
		for (;;) {
			int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

			if (fd >= 0) {
				close(lfd);
				return handle_conn(fd, o);
			}
			if (errno != EINTR && errno != ECONNABORTED) {
				set_err_sys("accept");
				return json_error("server", ivcb_err);
			}
		}
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = reap;
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGCHLD, &sa, NULL);
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		pid_t pid;

		if (fd < 0) {
			if (errno != EINTR && errno != ECONNABORTED) {
				perror("ivcbench server: accept");
				usleep(100000); /* e.g. EMFILE: don't spin */
			}
			continue;
		}
		pid = fork();
		if (pid == 0) {
			signal(SIGCHLD, SIG_DFL);
			close(lfd);
			_exit(handle_conn(fd, o));
		}
		if (pid < 0)
			perror("ivcbench server: fork");
		close(fd);
	}
}
