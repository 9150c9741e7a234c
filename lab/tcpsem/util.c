// SPDX-License-Identifier: GPL-2.0-only
/* tcpsem: check details, time, and the socket I/O helpers both sides use. */
#include "tcpsem.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

char detail[DETAIL_MAX];

int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	return -1;
}

int fail_sys(const char *fmt, ...)
{
	int e = errno;
	size_t n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	n = strlen(detail);
	snprintf(detail + n, sizeof(detail) - n, ": %s (%s)", errname(e), strerror(e));
	errno = e;
	return -1;
}

void note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
}

const char *errname(int e)
{
	static char other[24];

	switch (e) {
	case 0: return "0";
	case EAGAIN: return "EAGAIN";
	case EINTR: return "EINTR";
	case EINVAL: return "EINVAL";
	case EPIPE: return "EPIPE";
	case ECONNRESET: return "ECONNRESET";
	case ECONNREFUSED: return "ECONNREFUSED";
	case ECONNABORTED: return "ECONNABORTED";
	case ETIMEDOUT: return "ETIMEDOUT";
	case ENOTCONN: return "ENOTCONN";
	case EBADF: return "EBADF";
	case EFAULT: return "EFAULT";
	case ENOMEM: return "ENOMEM";
	case ENOBUFS: return "ENOBUFS";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ENOTSOCK: return "ENOTSOCK";
	case EHOSTUNREACH: return "EHOSTUNREACH";
	case ENETUNREACH: return "ENETUNREACH";
	case ENOENT: return "ENOENT";
	case ENOSPC: return "ENOSPC";
	case EACCES: return "EACCES";
	case EPERM: return "EPERM";
	case EINPROGRESS: return "EINPROGRESS";
	case EALREADY: return "EALREADY";
	case ENOSYS: return "ENOSYS";
	case EIO: return "EIO";
	}
	snprintf(other, sizeof(other), "errno %d", e);
	return other;
}

double now_s(void)
{
	return netutil_now_s();
}

long ms_since(double t0)
{
	return (long)((now_s() - t0) * 1000.0 + 0.5);
}

void msleep(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) < 0)
		return fail_sys("fcntl(O_NONBLOCK)");
	return 0;
}

int set_nodelay(int fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		return fail_sys("setsockopt(TCP_NODELAY)");
	return 0;
}

int wait_for(int fd, short events, int ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	double deadline = now_s() + ms / 1000.0;

	for (;;) {
		int left = (int)((deadline - now_s()) * 1000.0 + 0.999);
		int r = poll(&p, 1, left > 0 ? left : 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r;
		return p.revents;
	}
}

ssize_t wait_queued(int fd, size_t want, int ms)
{
	static uint8_t scratch[64 << 10];
	double deadline = now_s() + ms / 1000.0;
	ssize_t r;

	if (want > sizeof(scratch))
		want = sizeof(scratch);
	for (;;) {
		r = recv(fd, scratch, want, MSG_PEEK | MSG_DONTWAIT);
		if (r < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		if (r == 0 || (r > 0 && (size_t)r >= want))
			return r; /* EOF, or enough */
		if (r < 0)
			r = 0;
		if (now_s() >= deadline)
			return r;
		msleep(2);
	}
}

ssize_t recv_full(int fd, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = recv(fd, (uint8_t *)buf + got, n - got, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

int recv_exact(int fd, void *buf, size_t n, const char *what)
{
	ssize_t r = recv_full(fd, buf, n);

	if (r < 0)
		return fail_sys("%s: recv", what);
	if ((size_t)r < n)
		return fail("%s: EOF after %zd of %zu bytes", what, r, n);
	return 0;
}

int send_exact(int fd, const void *buf, size_t n, const char *what)
{
	if (netutil_send_full(fd, buf, n) < 0)
		return fail_sys("%s: send", what);
	return 0;
}

int expect_eof(int fd, int ms, const char *what)
{
	uint8_t b[64];
	ssize_t r;
	int ev = wait_for(fd, POLLIN, ms);

	if (ev < 0)
		return fail_sys("%s: poll", what);
	if (ev == 0)
		return fail("%s: no EOF within %d ms", what, ms);
	do
		r = recv(fd, b, sizeof(b), MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return fail_sys("%s: recv at the expected EOF", what);
	if (r > 0)
		return fail("%s: %zd unexpected bytes where EOF was expected", what, r);
	return 0;
}

static size_t line_partial; /* bytes of the last recv_line() that failed with -2 (EOF or too long) */

int recv_line(int fd, char *buf, size_t size)
{
	size_t n = 0;

	line_partial = 0;

	for (;;) {
		char ch;
		ssize_t r = recv(fd, &ch, 1, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0 || n + 1 >= size) {
			line_partial = n;
			return -2;
		}
		if (ch == '\n')
			break;
		buf[n++] = ch;
	}
	buf[n] = 0;
	return (int)n;
}

int send_verdict(int fd, int rc)
{
	char line[LINE_MAX_LEN + 8];
	int n;

	for (char *p = detail; *p; p++)
		if (*p == '\n')
			*p = ' ';
	n = snprintf(line, sizeof(line), "%s %s\n", rc ? "FAIL" : "OK", detail);
	if (netutil_send_full(fd, line, (size_t)n) < 0) {
		int e = errno;
		size_t k = strlen(detail);

		snprintf(detail + k, sizeof(detail) - k, "; sending the verdict: %s", errname(e));
		return -1;
	}
	return rc;
}

int read_verdict(int fd, char *out, size_t size)
{
	char line[LINE_MAX_LEN + 8];
	int n = recv_line(fd, line, sizeof(line));

	if (n == -1)
		return fail_sys("reading the server's verdict");
	if (n == -2)
		return fail("no verdict line from the server (EOF or over-long line after %zu bytes)", line_partial);
	if (!strncmp(line, "OK", 2) && (line[2] == 0 || line[2] == ' ')) {
		snprintf(out, size, "%s", line[2] ? line + 3 : "");
		return 0;
	}
	if (!strncmp(line, "FAIL ", 5))
		return fail("server: %s", line + 5);
	return fail("bad verdict line from the server: '%.100s'", line);
}

int connect_check(const struct opts *o, const char *name)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char unresolved[256], line[LINE_MAX_LEN + 8];
	/* Leave the check time to report a refused connection before its timer ends. */
	double wait = o->timeout / 2 < CONNECT_WAIT_S ? o->timeout / 2 : CONNECT_WAIT_S;
	int fd, e = 0, n;

	if (netutil_resolve(o->host, o->port, &ss, &len, unresolved, sizeof(unresolved)) < 0)
		return fail("cannot resolve host '%s' (numeric address or /etc/hosts name expected)",
			    unresolved);
	fd = netutil_connect_retry(&ss, len, now_s() + wait, 100,
				   NETUTIL_CONNECT_BLOCKING | NETUTIL_SELF_CONNECT_BY_PEERNAME, &e);
	if (fd < 0) {
		errno = e;
		return fail_sys("connect to %s:%u", o->host, o->port);
	}
	n = snprintf(line, sizeof(line), "CHECK %s\n", name);
	if (netutil_send_full(fd, line, (size_t)n) < 0) {
		fail_sys("send the CHECK line");
		close(fd);
		return -1;
	}
	return fd;
}
