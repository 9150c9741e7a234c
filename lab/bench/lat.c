// SPDX-License-Identifier: GPL-2.0-only
/* ivcbench: per-operation times and their percentiles (rr, block). */
#include "ivcbench.h"

#include <stdio.h>
#include <stdlib.h>

int lat_reserve(struct lat *l, uint64_t cap)
{
	uint32_t *p;

	if (cap <= l->cap)
		return 0;
	p = realloc(l->ns, cap * sizeof(*p));
	if (!p)
		return -1;
	l->ns = p;
	l->cap = cap;
	return 0;
}

int lat_add(struct lat *l, uint64_t ns)
{
	if (l->n == l->cap) {
		uint64_t cap = l->cap ? l->cap * 2 : 65536;

		if (cap > RR_COUNT_MAX)
			cap = RR_COUNT_MAX;
		if (cap <= l->n || lat_reserve(l, cap) < 0)
			return -1;
	}
	l->ns[l->n++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
	l->sum += ns;
	if (l->n == 1 || ns < l->min)
		l->min = ns;
	if (ns > l->max)
		l->max = ns;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

void lat_sort(struct lat *l)
{
	if (l->n)
		qsort(l->ns, l->n, sizeof(*l->ns), cmp_u32);
}

double lat_pct_us(const struct lat *l, double q)
{
	uint64_t rank;

	if (!l->n)
		return 0;
	rank = (uint64_t)(q * (double)l->n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > l->n)
		rank = l->n;
	return l->ns[rank - 1] / 1e3;
}

double lat_mean_us(const struct lat *l)
{
	return l->n ? (double)l->sum / (double)l->n / 1e3 : 0;
}

void lat_json(struct json *j, const struct lat *l, const char *prefix)
{
	char key[64];

	snprintf(key, sizeof(key), "%s_min", prefix);
	json_num(j, key, l->n ? l->min / 1e3 : 0, 3);
	snprintf(key, sizeof(key), "%s_p50", prefix);
	json_num(j, key, lat_pct_us(l, 0.50), 3);
	snprintf(key, sizeof(key), "%s_p90", prefix);
	json_num(j, key, lat_pct_us(l, 0.90), 3);
	snprintf(key, sizeof(key), "%s_p99", prefix);
	json_num(j, key, lat_pct_us(l, 0.99), 3);
	snprintf(key, sizeof(key), "%s_max", prefix);
	json_num(j, key, l->max / 1e3, 3);
	snprintf(key, sizeof(key), "%s_mean", prefix);
	json_num(j, key, lat_mean_us(l), 3);
}

void lat_free(struct lat *l)
{
	free(l->ns);
	l->ns = NULL;
	l->n = l->cap = 0;
}
