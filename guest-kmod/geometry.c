// SPDX-License-Identifier: GPL-2.0-only
/*
 * geometry.c: how big a new tunnel is. A tunnel is one direction's buffer, so it is sized like the buffering TCP
 * gives that direction: the sender's send buffer plus the receiver's receive buffer. As SMC does (its buffers follow
 * the socket's sk_sndbuf/sk_rcvbuf, 16 KiB to 1 MiB), the socket's own sizes decide:
 *   - a socket whose application set SO_SNDBUF or SO_RCVBUF (TCP no longer autotunes it) gets sk_sndbuf + sk_rcvbuf,
 *     as the application asked, between GEOM_MIN_BYTES and IVC's maximum (4 MiB);
 *   - a socket TCP autotunes gets auto_bytes (a parameter): TCP would grow its buffers to tcp_wmem[2] + tcp_rmem[2]
 *     (4 + 6 MiB) for a connection that needs it, so a fixed small tunnel could block an exchange that completes
 *     over TCP; auto_bytes (1 MiB) holds what TCP holds in the lab (512 pipelined 4 KiB requests, 2 MiB over both
 *     directions) and is past the point where bulk throughput stops growing (64-256 KiB; the `geom` sweep, README).
 * The bytes are cut into GEOM_CHANNELS channels (fewer when a channel would be smaller than a page): channels fill
 * by bytes, so their count only sets how often the reader hands space back, at least a tenth of the tunnel at a time.
 * The parameters channels and channel_size, when both are set, override all of this (the experiments' fixed
 * geometries, e.g. the thesis' 4 x 4 KiB).
 */
#include <linux/kernel.h>
#include <linux/moduleparam.h>
#include <linux/log2.h>
#include <net/sock.h>
#include "fastivc.h"

/* Smallest demand-sized tunnel: SMC's smallest buffer. */
#define GEOM_MIN_BYTES (16u << 10)
/* Channels of a demand-sized tunnel: the most a control page holds. */
#define GEOM_CHANNELS IVC_MAX_CHANNELS

unsigned int fastivc_auto_bytes = 1u << 20;

static int set_auto_bytes(const char *val, const struct kernel_param *kp)
{
	unsigned int v;
	int rc = kstrtouint(val, 0, &v);

	if (rc)
		return rc;
	if (v < GEOM_MIN_BYTES || v > IVC_MAX_CHANNELS * IVC_MAX_CHANNEL_SIZE)
		return -EINVAL;
	WRITE_ONCE(fastivc_auto_bytes, v);
	return 0;
}

static const struct kernel_param_ops auto_bytes_ops = { .set = set_auto_bytes, .get = param_get_uint };
module_param_cb(auto_bytes, &auto_bytes_ops, &fastivc_auto_bytes, 0644);
MODULE_PARM_DESC(auto_bytes, "bytes per demand-sized tunnel of a socket whose buffers TCP autotunes, 16 KiB..4 MiB (default 1 MiB)");

/* nr_channels x channel_size for about `bytes` (rounded up to a power of two, within IVC's limits). */
void fastivc_geometry_for(u32 bytes, u32 *nr_channels, u32 *channel_size)
{
	u32 n = GEOM_CHANNELS, cs;

	bytes = clamp_t(u32, bytes, GEOM_MIN_BYTES, IVC_MAX_CHANNELS * IVC_MAX_CHANNEL_SIZE);
	bytes = roundup_pow_of_two(bytes);
	while (n > 1 && bytes / n < IVC_MIN_CHANNEL_SIZE)
		n /= 2;
	cs = min_t(u32, bytes / n, IVC_MAX_CHANNEL_SIZE);
	*nr_channels = n;
	*channel_size = cs;
}

/*
 * The next smaller geometry, when a tunnel does not fit the page budget (tunnel.c): half the channel size, then half
 * the channels, down to GEOM_MIN_BYTES. False when there is none.
 */
bool fastivc_geometry_smaller(u32 *nr_channels, u32 *channel_size)
{
	u32 n = *nr_channels, cs = *channel_size;

	if (cs >= 2 * IVC_MIN_CHANNEL_SIZE)
		cs = rounddown(cs / 2, IVC_PAGE_SIZE);
	else if (n > 1)
		n /= 2;
	else
		return false;
	if (n * cs < GEOM_MIN_BYTES)
		return false;
	*nr_channels = n;
	*channel_size = cs;
	return true;
}

/* The geometry of a new sending tunnel of sk. Lock held. */
void fastivc_geometry(const struct sock *sk, u32 *nr_channels, u32 *channel_size)
{
	u32 n = READ_ONCE(fastivc_channels), cs = READ_ONCE(fastivc_channel_size);

	if (n && cs) {
		*nr_channels = n;
		*channel_size = cs;
		return;
	}
	if (sk->sk_userlocks & (SOCK_SNDBUF_LOCK | SOCK_RCVBUF_LOCK))
		fastivc_geometry_for((u32)READ_ONCE(sk->sk_sndbuf) + (u32)READ_ONCE(sk->sk_rcvbuf), nr_channels,
				     channel_size);
	else
		fastivc_geometry_for(READ_ONCE(fastivc_auto_bytes), nr_channels, channel_size);
}
