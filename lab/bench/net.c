// SPDX-License-Identifier: GPL-2.0-only
/* ivcbench: socket helpers, error messages, wire encoding. */
#include "ivcbench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

char ivcb_err[512];
double io_timeout_s;

void set_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ivcb_err, sizeof(ivcb_err), fmt, ap);
	va_end(ap);
}

void set_err_sys(const char *fmt, ...)
{
	int e = errno;
	size_t n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ivcb_err, sizeof(ivcb_err), fmt, ap);
	va_end(ap);
	n = strlen(ivcb_err);
	if (e == EAGAIN || e == EWOULDBLOCK)
		snprintf(ivcb_err + n, sizeof(ivcb_err) - n,
			 ": timed out after %g s (%s)", io_timeout_s,
			 strerror(e));
	else
		snprintf(ivcb_err + n, sizeof(ivcb_err) - n, ": %s",
			 strerror(e));
	errno = e;
}

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * Numeric IPv4/IPv6 addresses, "localhost", or a name from /etc/hosts.
 * (getaddrinfo would need glibc's shared NSS modules in a static binary.)
 */
static int resolve(const char *host, unsigned port, struct sockaddr_storage *ss,
		   socklen_t *len)
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
				return resolve(addr, port, ss, len);
			}
		}
	}
	if (f)
		fclose(f);
	set_err("cannot resolve host '%s' (numeric address or /etc/hosts name expected)",
		host);
	return -1;
}

int net_set_timeouts(int fd, double seconds)
{
	struct timeval tv;

	tv.tv_sec = (time_t)seconds;
	tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		set_err_sys("setsockopt(SO_RCVTIMEO/SO_SNDTIMEO)");
		return -1;
	}
	return 0;
}

int net_set_nodelay(int fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
		set_err_sys("setsockopt(TCP_NODELAY)");
		return -1;
	}
	return 0;
}

/*
 * Connecting to a closed loopback port in the ephemeral range can end in a
 * TCP simultaneous open with ourselves; treat that as "refused".
 */
static int self_connected(int fd)
{
	struct sockaddr_storage a, b;
	socklen_t la = sizeof(a), lb = sizeof(b);

	if (getsockname(fd, (struct sockaddr *)&a, &la) < 0 ||
	    getpeername(fd, (struct sockaddr *)&b, &lb) < 0)
		return 0;
	return la == lb && memcmp(&a, &b, la) == 0;
}

/* One non-blocking connect attempt bounded by `wait` seconds. */
static int connect_once(const struct sockaddr_storage *ss, socklen_t len,
			double wait)
{
	int fd, err = 0, ms;
	socklen_t elen = sizeof(err);
	struct pollfd pfd;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)ss, len) == 0)
		goto ok;
	if (errno != EINPROGRESS)
		goto fail;
	pfd.fd = fd;
	pfd.events = POLLOUT;
	ms = wait > 0 ? (int)(wait * 1000) + 1 : 1;
	for (;;) {
		int r = poll(&pfd, 1, ms);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto fail;
		if (r == 0) {
			errno = ETIMEDOUT;
			goto fail;
		}
		break;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		goto fail;
	if (err) {
		errno = err;
		goto fail;
	}
ok:
	if (self_connected(fd)) {
		errno = ECONNREFUSED;
		goto fail;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
		goto fail;
	return fd;
fail:
	err = errno;
	close(fd);
	errno = err;
	return -1;
}

int net_connect(const char *host, unsigned port, double connect_timeout,
		double io_timeout, int nodelay)
{
	struct sockaddr_storage ss;
	socklen_t len;
	double start = now_s(), deadline = start + connect_timeout;
	int fd;

	io_timeout_s = io_timeout;
	if (resolve(host, port, &ss, &len) < 0)
		return -1;
	for (;;) {
		double left = deadline - now_s();

		fd = connect_once(&ss, len, left);
		if (fd >= 0)
			break;
		left = deadline - now_s();
		if (left <= 0) {
			set_err_sys("connect to %s:%u (gave up after %.1f s)",
				    host, port, now_s() - start);
			return -1;
		}
		/* retry every 100 ms while the server starts */
		usleep(left < 0.1 ? (useconds_t)(left * 1e6) + 1 : 100000);
	}
	if (net_set_timeouts(fd, io_timeout) < 0 ||
	    (nodelay && net_set_nodelay(fd) < 0)) {
		close(fd);
		return -1;
	}
	return fd;
}

int net_listen(const char *bind_addr, unsigned port, unsigned *actual_port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1;

	if (resolve(bind_addr, port, &ss, &len) < 0)
		return -1;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		set_err_sys("socket");
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		set_err_sys("bind %s:%u", bind_addr, port);
		close(fd);
		return -1;
	}
	if (listen(fd, 64) < 0) {
		set_err_sys("listen");
		close(fd);
		return -1;
	}
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		*actual_port = ntohs(ss.ss_family == AF_INET6 ?
					     ((struct sockaddr_in6 *)&ss)->sin6_port :
					     ((struct sockaddr_in *)&ss)->sin_port);
	else
		*actual_port = port;
	return fd;
}

ssize_t read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, (uint8_t *)buf + got, n - got);

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

int write_full(int fd, const void *buf, size_t n)
{
	const uint8_t *b = buf;

	while (n) {
		ssize_t r = send(fd, b, n, MSG_NOSIGNAL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

void peer_name(int fd, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char a[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
			port = ntohs(s6->sin6_port);
		} else {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
			port = ntohs(s4->sin_port);
		}
	}
	snprintf(out, len, "%s:%u", a, port);
}

/* ---- wire encoding ---- */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return ((uint32_t)get16(p) << 16) | get16(p + 2);
}

static uint64_t get64(const uint8_t *p)
{
	return ((uint64_t)get32(p) << 32) | get32(p + 4);
}

void hdr_encode(const struct hdr *h, uint8_t out[HDR_LEN])
{
	memset(out, 0, HDR_LEN);
	memcpy(out, "IVCB", 4);
	put16(out + 4, h->version);
	out[6] = h->mode;
	out[7] = h->direction;
	put32(out + 8, h->msg_size);
	put32(out + 12, h->flags);
	put64(out + 16, h->total);
	put64(out + 24, h->seed);
	put64(out + 32, h->corrupt_at);
}

int hdr_decode(const uint8_t in[HDR_LEN], struct hdr *h)
{
	if (memcmp(in, "IVCB", 4) != 0)
		return -1;
	h->version = get16(in + 4);
	h->mode = in[6];
	h->direction = in[7];
	h->msg_size = get32(in + 8);
	h->flags = get32(in + 12);
	h->total = get64(in + 16);
	h->seed = get64(in + 24);
	h->corrupt_at = get64(in + 32);
	return 0;
}

int hdr_check(const struct hdr *h)
{
	if (h->version != IVCB_PROTOCOL)
		return ACK_BAD_VERSION;
	if ((h->mode != MODE_STREAM && h->mode != MODE_RR) ||
	    (h->direction != DIR_SEND && h->direction != DIR_RECV) ||
	    h->msg_size < 1 || h->msg_size > MSG_SIZE_MAX ||
	    (h->flags & ~HDR_F_CORRUPT))
		return ACK_BAD_REQUEST;
	return ACK_OK;
}

void ack_encode(uint16_t status, uint8_t out[ACK_LEN])
{
	memset(out, 0, ACK_LEN);
	memcpy(out, "IVCA", 4);
	put16(out + 4, IVCB_PROTOCOL);
	put16(out + 6, status);
}

int ack_decode(const uint8_t in[ACK_LEN])
{
	if (memcmp(in, "IVCA", 4) != 0)
		return -1;
	return get16(in + 6);
}

void report_encode(const struct report *r, uint8_t out[REPORT_LEN])
{
	memcpy(out, "IVCR", 4);
	put32(out + 4, r->flags);
	put64(out + 8, r->bytes);
	put64(out + 16, r->checksum);
	put64(out + 24, r->mismatch);
}

int report_decode(const uint8_t in[REPORT_LEN], struct report *r)
{
	if (memcmp(in, "IVCR", 4) != 0)
		return -1;
	r->flags = get32(in + 4);
	r->bytes = get64(in + 8);
	r->checksum = get64(in + 16);
	r->mismatch = get64(in + 24);
	return 0;
}
