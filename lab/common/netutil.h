/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * netutil: the TCP socket helpers shared by the lab's static guest programs
 * (lab/bench's ivcbench and lab/agent's lab-agent).  Nothing here prints:
 * failures return -1 with errno set, and each program words its own messages.
 */
#ifndef LAB_NETUTIL_H
#define LAB_NETUTIL_H

#include <stddef.h>
#include <sys/socket.h>

/* CLOCK_MONOTONIC in seconds, for deadlines. */
double netutil_now_s(void);

/*
 * Numeric IPv4/IPv6 address, "localhost", or a name from /etc/hosts
 * (getaddrinfo would need glibc's shared NSS modules in a static binary).
 * Fills *ss (zeroed first) and *len; returns 0, or -1 if the name is unknown.
 * On failure, if unresolved is not NULL, the name that could not be resolved
 * is copied there: host itself, or the address an /etc/hosts line gave for it.
 */
int netutil_resolve(const char *host, unsigned port, struct sockaddr_storage *ss,
		    socklen_t *len, char *unresolved, size_t unresolved_size);

/* Flags for netutil_connect_once and netutil_connect_retry. */
enum {
	/* Return the socket in blocking mode (otherwise it stays O_NONBLOCK). */
	NETUTIL_CONNECT_BLOCKING = 1 << 0,
	/*
	 * How a TCP self-connect (possible when connecting to a closed loopback
	 * port in the ephemeral range) is recognised and turned into
	 * ECONNREFUSED: by default the socket's own address is compared with
	 * the target address; with this flag, with getpeername().
	 */
	NETUTIL_SELF_CONNECT_BY_PEERNAME = 1 << 1,
};

/* One non-blocking connect attempt bounded by `wait` seconds; the socket, or -1 with errno. */
int netutil_connect_once(const struct sockaddr_storage *ss, socklen_t len, double wait,
			 int flags);

/*
 * netutil_connect_once until it succeeds or `deadline` (netutil_now_s()
 * time) passes, retrying every retry_ms milliseconds; on failure returns -1
 * with the last attempt's errno in *last_errno.
 */
int netutil_connect_retry(const struct sockaddr_storage *ss, socklen_t len, double deadline,
			  unsigned retry_ms, int flags, int *last_errno);

/*
 * A listening TCP socket (SO_REUSEADDR, backlog 64) on *ss.  *bound gets the
 * address it is bound to (getsockname(); *ss if that fails).  Returns the
 * socket, or -1 with errno and *failed_call set to "socket", "bind" or "listen".
 */
int netutil_listen(const struct sockaddr_storage *ss, socklen_t len,
		   struct sockaddr_storage *bound, const char **failed_call);

/*
 * The numeric address of *ss into addr (unchanged if inet_ntop fails; room
 * for INET6_ADDRSTRLEN is enough) and its port.
 */
void netutil_addr_str(const struct sockaddr_storage *ss, char *addr, size_t addr_size,
		      unsigned *port);

/* Write all n bytes, retrying after EINTR: 0, or -1 with errno. */
int netutil_write_full(int fd, const void *buf, size_t n); /* write(2) */
int netutil_send_full(int fd, const void *buf, size_t n);  /* send(2), MSG_NOSIGNAL */

#endif
