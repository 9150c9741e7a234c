// SPDX-License-Identifier: GPL-2.0-only
/*
 * ivcbench server: one forked child per connection (--serial: none, one
 * connection after the other; --once: one connection, then exit).
 *
 * The child is forked before its connection arrives: one "ready" child waits
 * in accept(); when it has a connection it tells the parent (its pid on the
 * pipe) and the parent forks the next ready child while this one serves.  So
 * no fork lies between a client's connect() and the server's first read,
 * which matters for `block`, where every block is a new connection and the
 * clock includes its setup (a fork costs ~0.1 ms here, more in a PV guest).
 * A ready child dies with the parent (PR_SET_PDEATHSIG); a child serving a
 * connection finishes it, as before.
 */
#include "ivcbench.h"
#include "pattern.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * Messages to the parent, one int32 each (atomic pipe writes): pid = that
 * child took a connection, -pid = the ready child exited before it did.
 */
static int notify_fd = -1;
static volatile sig_atomic_t ready_pid;

static void reap(int sig)
{
	int e = errno;
	pid_t pid;

	(void)sig;
	while ((pid = waitpid(-1, NULL, WNOHANG)) > 0) {
		int32_t msg = -(int32_t)pid;

		if (pid == ready_pid && notify_fd >= 0 &&
		    write(notify_fd, &msg, sizeof(msg)) < 0) {
			/* nothing to do: the pipe is never full in practice */
		}
	}
	errno = e;
}

static const char *mode_name(int mode)
{
	return mode == MODE_RR ? "rr" : mode == MODE_STREAM ? "stream" :
	       mode == MODE_BLOCK ? "block" : mode == MODE_PIPELINE ? "pipeline" :
	       "unknown";
}

/*
 * Runs one connection; returns its exit status (EX_*).  cache: the pattern
 * the server computed at startup (--seed), used when the request's seed and
 * window match, so that a connection does not pay for computing it.
 */
static int handle_conn(int fd, const struct opts *o, const struct pattern *cache)
{
	uint8_t hb[HDR_LEN], ab[ACK_LEN], rb[REPORT_LEN];
	struct hdr h = { 0 };
	struct pattern own = { 0 };
	const struct pattern *pat = &own;
	size_t window;
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
	/* A block's ack goes out with its report (block_serve). */
	if (st != ACK_OK || h.mode != MODE_BLOCK) {
		ack_encode((uint16_t)st, ab);
		if (netutil_send_full(fd, ab, ACK_LEN) < 0) {
			set_err_sys("send ack");
			goto done;
		}
	}
	if (st != ACK_OK) {
		set_err("rejected request (status %d)", st);
		goto done;
	}
	window = pattern_window_for(h.mode == MODE_BLOCK ? BLOCK_RECV_BUF :
				    h.msg_size);
	if (cache->buf && cache->seed == h.seed && cache->window >= window) {
		pat = cache;
	} else if (pattern_init(&own, h.seed, window) < 0) {
		set_err("out of memory");
		goto done;
	}
	/*
	 * Stream with a read delay, recv mode: the client reads only that much
	 * later, so our blocked sends and our wait for its report may last that
	 * much longer.  (In send mode we are the receiver and sleep before our
	 * first read, with no call waiting on the socket: nothing to lengthen.)
	 */
	if (h.mode == MODE_STREAM && h.direction == DIR_RECV && h.read_delay_ms) {
		io_timeout_s = o->timeout + h.read_delay_ms / 1000.0;
		if (net_set_timeouts(fd, io_timeout_s) < 0)
			goto done;
	}
	if (h.mode == MODE_BLOCK) {
		if (block_serve(fd, pat, &h, &r, &verified) < 0)
			goto done;
		have_recv = 1;
	} else if (h.mode == MODE_PIPELINE) {
		if (net_set_nodelay(fd) < 0 ||
		    pipeline_serve(fd, pat, &h, &r, &count, &verified) < 0)
			goto done;
		have_recv = 1;
	} else if (h.mode == MODE_RR) {
		if (net_set_nodelay(fd) < 0 ||
		    rr_serve(fd, pat, h.msg_size, &count, &verified) < 0)
			goto done;
	} else if (h.direction == DIR_SEND) {
		/* We receive; the client sends and waits for our report. */
		sleep_ms(h.read_delay_ms); /* nothing waits on the socket meanwhile */
		if (stream_recv(fd, pat, h.msg_size, &r) < 0)
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
		if (stream_send(fd, pat, h.total, h.msg_size,
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
	pattern_free(&own);
	if (o->verbose) {
		struct json j;

		json_begin(&j);
		json_str(&j, "tool", "ivcbench");
		json_str(&j, "mode", mode_name(h.mode));
		json_str(&j, "role", "server");
		json_str(&j, "peer", peer);
		if (h.mode == MODE_STREAM) {
			json_str(&j, "direction",
				 h.direction == DIR_SEND ? "send" : "recv");
			json_u64(&j, "bytes", h.total);
			if (h.read_delay_ms)
				json_u64(&j, "read_delay_ms", h.read_delay_ms);
		} else if (h.mode == MODE_BLOCK) {
			json_u64(&j, "bytes", h.total);
		}
		json_u64(&j, "msg_size", h.msg_size);
		if (h.mode == MODE_RR || h.mode == MODE_PIPELINE)
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

/* The ready child: accepts one connection and serves it; returns its status. */
static int ready_child(int lfd, const int pfd[2], pid_t parent,
		       const struct opts *o, const struct pattern *cache)
{
	int32_t msg = (int32_t)getpid();
	int fd;

	signal(SIGCHLD, SIG_DFL);
	close(pfd[0]);
	/* (Should prctl fail, an idle child would outlive the parent, as a busy one does.) */
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		return EX_NET; /* the parent died before the prctl */
	for (;;) {
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			break;
		if (errno != EINTR && errno != ECONNABORTED) {
			perror("ivcbench server: accept");
			usleep(100000); /* e.g. EMFILE: don't spin */
		}
	}
	/* From now on a connection of our own: finish it even if the parent dies. */
	(void)prctl(PR_SET_PDEATHSIG, 0);
	close(lfd);
	if (write(pfd[1], &msg, sizeof(msg)) != (ssize_t)sizeof(msg))
		perror("ivcbench server: notify the parent");
	close(pfd[1]);
	return handle_conn(fd, o, cache);
}

int cmd_server(const struct opts *o)
{
	struct pattern cache = { 0 };
	struct sigaction sa;
	sigset_t chld, old;
	pid_t parent = getpid();
	unsigned port;
	int lfd, pfd[2];

	lfd = net_listen(o->bind, o->port, &port);
	if (lfd < 0)
		return json_error("server", ivcb_err);
	/*
	 * Children inherit it (shared until written, and it never is).  Without
	 * the memory, each connection computes its own, as for other seeds.
	 */
	if (pattern_init(&cache, o->seed, pattern_window_for(BLOCK_RECV_BUF)) < 0)
		cache.buf = NULL;
	fprintf(stderr, "ivcbench: listening on %s:%u\n", o->bind, port);
	/*
	 * --serial: one connection after the other in this process, no fork (as
	 * netperf's server runs TCP_CRR). For `block` one after the other, where
	 * a fork and an exit per connection (page tables built and torn down
	 * through the hypervisor in a PV guest) would cost more than the
	 * connection itself and hide the transport's part.
	 */
	if (o->once || o->serial) {
		for (;;) {
			int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

			if (fd >= 0 && o->serial) {
				(void)handle_conn(fd, o, &cache);
				continue;
			}
			if (fd >= 0) {
				close(lfd);
				return handle_conn(fd, o, &cache);
			}
			if (errno != EINTR && errno != ECONNABORTED) {
				set_err_sys("accept");
				return json_error("server", ivcb_err);
			}
		}
	}
	if (pipe2(pfd, O_CLOEXEC) < 0 ||
	    fcntl(pfd[1], F_SETFL, O_NONBLOCK) < 0) {
		set_err_sys("pipe");
		return json_error("server", ivcb_err);
	}
	notify_fd = pfd[1];
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = reap;
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGCHLD, &sa, NULL);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	for (;;) {
		int32_t msg;
		ssize_t n;
		pid_t pid;

		if (!ready_pid) {
			/* SIGCHLD held until ready_pid is set, or reap could miss its exit */
			sigprocmask(SIG_BLOCK, &chld, &old);
			pid = fork();
			if (pid == 0) {
				sigprocmask(SIG_SETMASK, &old, NULL);
				_exit(ready_child(lfd, pfd, parent, o, &cache));
			}
			if (pid > 0)
				ready_pid = pid;
			sigprocmask(SIG_SETMASK, &old, NULL);
			if (pid < 0) {
				perror("ivcbench server: fork");
				usleep(100000); /* connections wait in the backlog */
				continue;
			}
		}
		n = read(pfd[0], &msg, sizeof(msg));
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(msg)) {
			perror("ivcbench server: read pipe");
			usleep(100000);
			continue;
		}
		/* Took a connection, or exited: either way, fork the next one. */
		if (msg == ready_pid || msg == -ready_pid)
			ready_pid = 0;
	}
}
