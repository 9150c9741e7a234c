// SPDX-License-Identifier: GPL-2.0-only
/* ivcbench: socket helpers, error messages, wire encoding. */
#include "ivcbench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
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

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void sleep_ms(uint32_t ms)
{
	struct timespec until;
	int e;

	if (!ms)
		return;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += (time_t)(ms / 1000);
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	/* An absolute deadline: a restart after EINTR sleeps only what is left. */
	do
		e = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL);
	while (e == EINTR);
}

/* netutil_resolve, with ivcbench's error message. */
int net_resolve(const char *host, unsigned port, struct sockaddr_storage *ss,
		socklen_t *len)
{
	char name[sizeof(ivcb_err)];

	if (netutil_resolve(host, port, ss, len, name, sizeof(name)) == 0)
		return 0;
	set_err("cannot resolve host '%s' (numeric address or /etc/hosts name expected)",
		name);
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

int net_connect(const char *host, unsigned port, double connect_timeout,
		double io_timeout, int nodelay)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (net_resolve(host, port, &ss, &len) < 0)
		return -1;
	return net_connect_addr(&ss, len, host, port, connect_timeout,
				io_timeout, nodelay);
}

int net_connect_addr(const struct sockaddr_storage *ss, socklen_t len,
		     const char *host, unsigned port, double connect_timeout,
		     double io_timeout, int nodelay)
{
	double start = netutil_now_s();
	int fd, e = 0;

	io_timeout_s = io_timeout;
	/* retry every 100 ms while the server starts */
	fd = netutil_connect_retry(ss, len, start + connect_timeout, 100,
				   NETUTIL_CONNECT_BLOCKING | NETUTIL_SELF_CONNECT_BY_PEERNAME,
				   &e);
	if (fd < 0) {
		errno = e;
		set_err_sys("connect to %s:%u (gave up after %.1f s)", host, port,
			    netutil_now_s() - start);
		return -1;
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
	struct sockaddr_storage ss, bound;
	socklen_t len;
	const char *failed;
	char a[INET6_ADDRSTRLEN];
	int fd;

	if (net_resolve(bind_addr, port, &ss, &len) < 0)
		return -1;
	fd = netutil_listen(&ss, len, &bound, &failed);
	if (fd < 0) {
		if (!strcmp(failed, "bind"))
			set_err_sys("bind %s:%u", bind_addr, port);
		else
			set_err_sys("%s", failed);
		return -1;
	}
	netutil_addr_str(&bound, a, sizeof(a), actual_port);
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

void peer_name(int fd, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char a[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
		netutil_addr_str(&ss, a, sizeof(a), &port);
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
	put32(out + 40, h->read_delay_ms);
	/* 44..47 reserved, zero */
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
	h->read_delay_ms = get32(in + 40);
	return 0;
}

int hdr_check(const struct hdr *h)
{
	if (h->version != IVCB_PROTOCOL)
		return ACK_BAD_VERSION;
	if ((h->mode != MODE_STREAM && h->mode != MODE_RR &&
	     h->mode != MODE_BLOCK && h->mode != MODE_PIPELINE) ||
	    (h->direction != DIR_SEND && h->direction != DIR_RECV) ||
	    h->msg_size < 1 || h->msg_size > MSG_SIZE_MAX ||
	    (h->flags & ~(HDR_F_CORRUPT | HDR_F_READ_DELAY)))
		return ACK_BAD_REQUEST;
	/* A read delay: stream only, bounded, and only with its flag. */
	if ((h->flags & HDR_F_READ_DELAY) ?
	    h->mode != MODE_STREAM || h->read_delay_ms > READ_DELAY_MAX_MS :
	    h->read_delay_ms != 0)
		return ACK_BAD_REQUEST;
	/* A block goes client -> server, at least one byte, no server-side corruption. */
	if (h->mode == MODE_BLOCK &&
	    (h->direction != DIR_SEND || h->flags || h->total == 0))
		return ACK_BAD_REQUEST;
	/* A pipeline: at least one request, answered by the server, no corruption. */
	if (h->mode == MODE_PIPELINE &&
	    (h->direction != DIR_SEND || h->flags || h->total == 0))
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
