// SPDX-License-Identifier: GPL-2.0-only
/*
 * tcpsem: whether the socket can still take a TCP upper-layer protocol after it has carried data.
 *   ulp_slot   after a round trip (so a module that decides sockets on their first send and receive has decided),
 *              getsockopt(TCP_ULP) names the socket's ULP. Plain TCP has none: then a sockmap takes the socket and
 *              lets it go, and kTLS attaches (TCP_ULP "tls", no keys: the bytes stay plain), and a second round
 *              trip is byte-exact with "tls" in the slot. A tunnelled socket (fastivc) must refuse both cleanly:
 *              sockmap EOPNOTSUPP, kTLS EEXIST, and its second round trip is byte-exact too.
 *              --expect-ulp NAME ("none" for plain TCP) makes the check strict: the slot must hold NAME, and a
 *              missing tls module or bpf permission fails instead of being noted.
 */
#include "tcpsem.h"

#include <errno.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef TCP_ULP
#define TCP_ULP 31
#endif

#define BACK_SEED(c) ((c)->check->seed + 1000)
#define ROUND1 4096u
#define ROUND2 (64u << 10)

static int bpf_sys(int cmd, union bpf_attr *a)
{
	return (int)syscall(__NR_bpf, cmd, a, sizeof(*a));
}

/* The socket's ULP name ("" for none): 0, or -1 with the detail set. */
static int ulp_name(int fd, char *name, size_t size)
{
	socklen_t len = (socklen_t)(size - 1);

	memset(name, 0, size);
	if (getsockopt(fd, IPPROTO_TCP, TCP_ULP, name, &len) < 0)
		return fail_sys("getsockopt(TCP_ULP)");
	name[len < size ? len : size - 1] = '\0';
	return 0;
}

/*
 * Puts the socket into a one-slot sockmap and takes it out again: 0 and *err = 0 on success; 0 and *err = errno if
 * the kernel refused (the caller judges which errno is right); -1 (detail set) if the map itself cannot be made.
 */
static int sockmap_round(int fd, int *err)
{
	union bpf_attr a;
	uint32_t key = 0, val = (uint32_t)fd;
	int map;

	memset(&a, 0, sizeof(a));
	a.map_type = BPF_MAP_TYPE_SOCKMAP;
	a.key_size = sizeof(key);
	a.value_size = sizeof(val);
	a.max_entries = 1;
	map = bpf_sys(BPF_MAP_CREATE, &a);
	if (map < 0) {
		*err = errno;
		return fail_sys("bpf(BPF_MAP_CREATE, SOCKMAP)");
	}
	memset(&a, 0, sizeof(a));
	a.map_fd = (uint32_t)map;
	a.key = (uint64_t)(uintptr_t)&key;
	a.value = (uint64_t)(uintptr_t)&val;
	a.flags = BPF_ANY;
	*err = bpf_sys(BPF_MAP_UPDATE_ELEM, &a) < 0 ? errno : 0;
	if (!*err) {
		memset(&a, 0, sizeof(a));
		a.map_fd = (uint32_t)map;
		a.key = (uint64_t)(uintptr_t)&key;
		if (bpf_sys(BPF_MAP_DELETE_ELEM, &a) < 0) {
			close(map);
			return fail_sys("bpf(BPF_MAP_DELETE_ELEM) of the socket just added");
		}
	}
	close(map);
	return 0;
}

static int round_trip(int fd, struct ctx *c, uint64_t *off, uint64_t *boff, size_t n, const char *what)
{
	if (send_pattern(fd, c->check->seed, off, n, what) < 0)
		return -1;
	return recv_pattern(fd, BACK_SEED(c), boff, n, what);
}

int ulp_slot_client(int fd, struct ctx *c)
{
	const char *expect = c->o->expect_ulp;
	int strict = expect != NULL;
	uint64_t off = 0, boff = 0;
	char name[32], after[32], skipped[160] = "";
	int map_err = 0, tls_err = 0, map_ok;

	if (round_trip(fd, c, &off, &boff, ROUND1, "the first round trip") < 0 || ulp_name(fd, name, sizeof(name)) < 0)
		return -1;
	if (expect && strcmp(expect, !strcmp(name, "") ? "none" : name))
		return fail("TCP_ULP holds '%s' after a round trip, expected '%s'", *name ? name : "none", expect);
	map_ok = sockmap_round(fd, &map_err) == 0;
	if (setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) < 0)
		tls_err = errno;
	if (!*name) {
		/* plain TCP: both must take the socket */
		if (!map_ok) {
			if (strict || (map_err != EPERM && map_err != EINVAL && map_err != ENOSYS))
				return -1; /* the detail says why the map could not be made */
			snprintf(skipped, sizeof(skipped), "; no sockmap here (%s)", errname(map_err));
		} else if (map_err) {
			errno = map_err;
			return fail_sys("the sockmap refused a plain TCP socket");
		}
		if (tls_err && (tls_err != ENOENT || strict)) {
			errno = tls_err;
			return fail_sys("setsockopt(TCP_ULP, \"tls\") on a plain TCP socket");
		}
	} else if (!strcmp(name, "fastivc")) {
		/* a tunnelled socket: both must refuse, and the connection must go on unharmed */
		if (!map_ok && strict)
			return -1;
		if (map_ok && map_err != EOPNOTSUPP) {
			if (!map_err)
				return fail("the sockmap took a tunnelled socket (its data would bypass the tunnel)");
			errno = map_err;
			return fail_sys("the sockmap refused a tunnelled socket, but not with EOPNOTSUPP");
		}
		if (tls_err == ENOENT && !strict) {
			/* no tls module here: TCP_ULP "tls" is looked up before the slot is checked */
		} else if (tls_err != EEXIST) {
			if (!tls_err)
				return fail("kTLS attached to a tunnelled socket");
			errno = tls_err;
			return fail_sys("setsockopt(TCP_ULP, \"tls\") on a tunnelled socket, expected EEXIST");
		}
	} else {
		return fail("TCP_ULP holds '%s' after a round trip on a fresh connection", name);
	}
	if (round_trip(fd, c, &off, &boff, ROUND2, "the second round trip") < 0 || ulp_name(fd, after, sizeof(after)) < 0)
		return -1;
	if (!*name && !tls_err && strcmp(after, "tls"))
		return fail("TCP_ULP holds '%s' after kTLS attached, expected 'tls'", after);
	if (*name && strcmp(after, name))
		return fail("TCP_ULP changed from '%s' to '%s'", name, after);
	if (shutdown(fd, SHUT_WR) < 0)
		return fail_sys("shutdown(SHUT_WR)");
	if (expect_eof(fd, 5000, "at the end") < 0)
		return -1;
	if (!*name)
		note("no ULP after a round trip; %s, %s; %u + %u bytes exact both ways",
		     map_ok ? "a sockmap took the socket and let it go" : skipped + 2,
		     tls_err ? "no tls module here" : "kTLS attached", ROUND1, ROUND2);
	else
		note("ULP '%s': %s, %s; %u + %u bytes exact both ways", name,
		     map_ok ? "sockmap EOPNOTSUPP" : "no sockmap here", tls_err == EEXIST ? "kTLS EEXIST" : "no tls module here",
		     ROUND1, ROUND2);
	return 0;
}

int ulp_slot_server(int fd, struct ctx *c)
{
	uint64_t off = 0, boff = 0;

	if (recv_pattern(fd, c->check->seed, &off, ROUND1, "server: the first round") < 0 ||
	    send_pattern(fd, BACK_SEED(c), &boff, ROUND1, "server: the first round") < 0 ||
	    recv_pattern(fd, c->check->seed, &off, ROUND2, "server: the second round") < 0 ||
	    send_pattern(fd, BACK_SEED(c), &boff, ROUND2, "server: the second round") < 0)
		return -1;
	return expect_eof(fd, 10000, "server: at the end");
}
