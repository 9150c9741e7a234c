/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ivcbench data pattern and checksum.
 *
 * The stream byte at offset o is buf[o % PATTERN_PERIOD], where buf is filled
 * once from a splitmix64 sequence seeded with the user's seed.  The period is
 * a prime, so a chunk that is shifted, duplicated or dropped by any amount
 * that is not a multiple of ~1 MiB (in particular any power of two) no longer
 * lines up with the pattern.  The buffer is extended by `window` bytes so that
 * any window-sized run of the stream is one contiguous slice: senders write
 * straight from it and receivers memcmp against it.
 */
#ifndef IVCB_PATTERN_H
#define IVCB_PATTERN_H

#include <stddef.h>
#include <stdint.h>

#define PATTERN_PERIOD 1048573u /* largest prime below 1 MiB */

struct pattern {
	uint8_t *buf; /* PATTERN_PERIOD + window bytes */
	size_t window;
	uint64_t seed;
};

int pattern_init(struct pattern *p, uint64_t seed, size_t window);
void pattern_free(struct pattern *p);

/* Pointer to the stream at offset off, valid for p->window bytes. */
static inline const uint8_t *pattern_at(const struct pattern *p, uint64_t off)
{
	return p->buf + (size_t)(off % PATTERN_PERIOD);
}

/* First offset in [off, off+len) where data differs, or UINT64_MAX. */
uint64_t pattern_check(const struct pattern *p, uint64_t off,
		       const uint8_t *data, size_t len);

/*
 * 64-bit streaming checksum: independent of how the stream is split into
 * updates, sensitive to order and length.  One multiply chain per 8 bytes.
 */
struct csum {
	uint64_t h, len;
	uint8_t tail[8];
	unsigned ntail;
};

void csum_init(struct csum *c);
void csum_update(struct csum *c, const void *data, size_t n);
uint64_t csum_final(const struct csum *c);

#endif
