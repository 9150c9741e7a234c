// SPDX-License-Identifier: GPL-2.0-only
/*
 * tcpsem data pattern: both ends compute the byte at any stream offset from
 * the check's seed (pat_byte in tcpsem.h), so data is verified byte by byte
 * with no state shared beyond the seed.  Bits 13..20 of i * 2654435761 have a
 * period of 2 MiB in i, and a stream shifted by d bytes (d not a multiple of
 * 2 MiB) differs from the pattern almost everywhere; every check also counts
 * its bytes exactly.
 */
#include "tcpsem.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

void pat_fill(uint32_t seed, uint64_t off, void *buf, size_t n)
{
	uint8_t *b = buf;
	size_t i;

	for (i = 0; i < n; i++)
		b[i] = pat_byte(seed, off + i);
}

int pat_verify(uint32_t seed, uint64_t off, const void *buf, size_t n, const char *what)
{
	const uint8_t *b = buf;
	size_t i;

	for (i = 0; i < n; i++) {
		uint8_t want = pat_byte(seed, off + i);

		if (b[i] != want)
			return fail("%s: byte at stream offset %llu is 0x%02x, expected 0x%02x",
				    what, (unsigned long long)(off + i), b[i], want);
	}
	return 0;
}

uint64_t fnv64(uint64_t h, const void *buf, size_t n)
{
	const uint8_t *b = buf;

	while (n--) {
		h ^= *b++;
		h *= 0x100000001b3ull;
	}
	return h;
}

int recv_pattern(int fd, uint32_t seed, uint64_t *off, size_t n, const char *what)
{
	static uint8_t buf[65536];

	while (n) {
		size_t k = n < sizeof(buf) ? n : sizeof(buf);

		if (recv_exact(fd, buf, k, what) < 0 || pat_verify(seed, *off, buf, k, what) < 0)
			return -1;
		*off += k;
		n -= k;
	}
	return 0;
}

int send_pattern(int fd, uint32_t seed, uint64_t *off, size_t n, const char *what)
{
	static uint8_t buf[65536];

	while (n) {
		size_t k = n < sizeof(buf) ? n : sizeof(buf);

		pat_fill(seed, *off, buf, k);
		if (send_exact(fd, buf, k, what) < 0)
			return -1;
		*off += k;
		n -= k;
	}
	return 0;
}

int recv_pattern_to_eof(int fd, uint32_t seed, uint64_t *off, const char *what)
{
	static uint8_t buf[65536];

	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fail_sys("%s: recv at offset %llu", what, (unsigned long long)*off);
		if (r == 0)
			return 0;
		if (pat_verify(seed, *off, buf, (size_t)r, what) < 0)
			return -1;
		*off += (uint64_t)r;
	}
}
