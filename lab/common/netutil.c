// SPDX-License-Identifier: GPL-2.0-only
/* netutil: TCP socket helpers shared by ivcbench and lab-agent (see netutil.h). */
#include "netutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double netutil_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int netutil_resolve(const char *host, unsigned port, struct sockaddr_storage *ss,
		    socklen_t *len, char *unresolved, size_t unresolved_size)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	char line[512], addr[256];
	FILE *f;

	memset(ss, 0, sizeof(*ss));
	if (strcmp(host, "localhost") == 0)
		host = "127.0.0.1";
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		*len = sizeof(*in4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*in6);
		return 0;
	}
	f = fopen("/etc/hosts", "r");
	while (f && fgets(line, sizeof(line), f)) {
		char *save = NULL, *tok, *hash = strchr(line, '#');

		if (hash)
			*hash = 0;
		tok = strtok_r(line, " \t\r\n", &save);
		if (!tok || strlen(tok) >= sizeof(addr))
			continue;
		strcpy(addr, tok);
		while ((tok = strtok_r(NULL, " \t\r\n", &save))) {
			if (strcmp(tok, host) == 0 && strcmp(addr, host) != 0) {
				fclose(f);
				return netutil_resolve(addr, port, ss, len, unresolved,
						       unresolved_size);
			}
		}
	}
	if (f)
		fclose(f);
	if (unresolved && unresolved_size)
		snprintf(unresolved, unresolved_size, "%s", host);
	return -1;
}

static int self_connected(int fd, const struct sockaddr_storage *ss, socklen_t len, int flags)
{
	struct sockaddr_storage a, b;
	socklen_t la = sizeof(a), lb = sizeof(b);

	if (getsockname(fd, (struct sockaddr *)&a, &la) < 0)
		return 0;
	if (!(flags & NETUTIL_SELF_CONNECT_BY_PEERNAME))
		return la == len && memcmp(&a, ss, len) == 0;
	if (getpeername(fd, (struct sockaddr *)&b, &lb) < 0)
		return 0;
	return la == lb && memcmp(&a, &b, la) == 0;
}

int netutil_connect_once(const struct sockaddr_storage *ss, socklen_t len, double wait,
			 int flags)
{
	int fd, err = 0, r;
	socklen_t elen = sizeof(err);
	struct pollfd p;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)ss, len) < 0) {
		if (errno != EINPROGRESS)
			goto fail;
		p.fd = fd;
		p.events = POLLOUT;
		do
			r = poll(&p, 1, wait > 0 ? (int)(wait * 1000) + 1 : 1);
		while (r < 0 && errno == EINTR);
		if (r <= 0) {
			if (r == 0)
				errno = ETIMEDOUT;
			goto fail;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
			goto fail;
		if (err) {
			errno = err;
			goto fail;
		}
	}
	if (self_connected(fd, ss, len, flags)) {
		errno = ECONNREFUSED;
		goto fail;
	}
	if ((flags & NETUTIL_CONNECT_BLOCKING) &&
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
		goto fail;
	return fd;
fail:
	err = errno;
	close(fd);
	errno = err;
	return -1;
}

/* Sleeps `us` microseconds, resuming after a signal. */
static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int netutil_connect_retry(const struct sockaddr_storage *ss, socklen_t len, double deadline,
			  unsigned retry_ms, int flags, int *last_errno)
{
	for (;;) {
		int fd = netutil_connect_once(ss, len, deadline - netutil_now_s(), flags);
		double left;

		if (fd >= 0)
			return fd;
		*last_errno = errno;
		left = deadline - netutil_now_s();
		if (left <= 0)
			return -1;
		sleep_us(left < retry_ms / 1000.0 ? (long)(left * 1e6) + 1 : (long)retry_ms * 1000);
	}
}

int netutil_listen(const struct sockaddr_storage *ss, socklen_t len,
		   struct sockaddr_storage *bound, const char **failed_call)
{
	socklen_t blen = sizeof(*bound);
	int fd, one = 1, e;

	*bound = *ss;
	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*failed_call = "socket";
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)ss, len) < 0) {
		*failed_call = "bind";
		goto fail;
	}
	if (listen(fd, 64) < 0) {
		*failed_call = "listen";
		goto fail;
	}
	getsockname(fd, (struct sockaddr *)bound, &blen);
	return fd;
fail:
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

void netutil_addr_str(const struct sockaddr_storage *ss, char *addr, size_t addr_size,
		      unsigned *port)
{
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, addr, (socklen_t)addr_size);
		*port = ntohs(s6->sin6_port);
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &s4->sin_addr, addr, (socklen_t)addr_size);
		*port = ntohs(s4->sin_port);
	}
}

static int write_loop(int fd, const void *buf, size_t n, int use_send)
{
	const char *b = buf;

	while (n) {
		ssize_t r = use_send ? send(fd, b, n, MSG_NOSIGNAL) : write(fd, b, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

int netutil_write_full(int fd, const void *buf, size_t n)
{
	return write_loop(fd, buf, n, 0);
}

int netutil_send_full(int fd, const void *buf, size_t n)
{
	return write_loop(fd, buf, n, 1);
}
