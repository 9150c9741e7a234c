// SPDX-License-Identifier: GPL-2.0-only
/* ivcbench data pattern and checksum (see pattern.h). */
#include "pattern.h"

#include <stdlib.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

int pattern_init(struct pattern *p, uint64_t seed, size_t window)
{
	size_t len = (size_t)PATTERN_PERIOD + window, i;
	uint64_t s = seed;

	p->buf = malloc(len);
	if (!p->buf)
		return -1;
	p->window = window;
	p->seed = seed;
	for (i = 0; i + 8 <= PATTERN_PERIOD; i += 8) {
		uint64_t v = splitmix64(&s);

		memcpy(p->buf + i, &v, 8);
	}
	if (i < PATTERN_PERIOD) {
		uint64_t v = splitmix64(&s);

		memcpy(p->buf + i, &v, PATTERN_PERIOD - i);
	}
	/* Repeat the period over the extension (window may exceed it). */
	for (i = PATTERN_PERIOD; i < len;) {
		size_t n = len - i < PATTERN_PERIOD ? len - i : PATTERN_PERIOD;

		memcpy(p->buf + i, p->buf, n);
		i += n;
	}
	return 0;
}

void pattern_free(struct pattern *p)
{
	free(p->buf);
	p->buf = NULL;
}

uint64_t pattern_check(const struct pattern *p, uint64_t off,
		       const uint8_t *data, size_t len)
{
	while (len) {
		size_t n = len < p->window ? len : p->window;
		const uint8_t *e = pattern_at(p, off);

		if (memcmp(e, data, n) != 0) {
			size_t i = 0;

			while (e[i] == data[i])
				i++;
			return off + i;
		}
		off += n;
		data += n;
		len -= n;
	}
	return UINT64_MAX;
}

#define K1 0x9e3779b97f4a7c15ull
#define K2 0xc2b2ae3d27d4eb4full

static inline uint64_t load_le64(const uint8_t *b)
{
	uint64_t v;

	memcpy(&v, b, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

static inline uint64_t mix(uint64_t h, uint64_t w)
{
	h ^= w * K1;
	h = (h << 31) | (h >> 33);
	return h * K2;
}

void csum_init(struct csum *c)
{
	c->h = 0x6a09e667f3bcc908ull;
	c->len = 0;
	c->ntail = 0;
}

void csum_update(struct csum *c, const void *data, size_t n)
{
	const uint8_t *b = data;
	uint64_t h = c->h;

	c->len += n;
	if (c->ntail) {
		while (n && c->ntail < 8) {
			c->tail[c->ntail++] = *b++;
			n--;
		}
		if (c->ntail < 8) {
			c->h = h;
			return;
		}
		h = mix(h, load_le64(c->tail));
		c->ntail = 0;
	}
	for (; n >= 8; n -= 8, b += 8)
		h = mix(h, load_le64(b));
	memcpy(c->tail, b, n);
	c->ntail = (unsigned)n;
	c->h = h;
}

uint64_t csum_final(const struct csum *c)
{
	uint64_t h = c->h;

	if (c->ntail) {
		uint8_t t[8] = { 0 };

		memcpy(t, c->tail, c->ntail);
		h = mix(h, load_le64(t));
	}
	h = mix(h, c->len);
	/* murmur3 finalizer */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}
