// SPDX-License-Identifier: GPL-2.0-only
/*
 * stats.c: what the module did, for people and for the tools (format: guest-kmod/README.md, "Statistics").
 *   /proc/fastivc/stats     `key value` lines: counters since load, fallback counters per reason
 *   /proc/fastivc/sockets   one `sock key=value ...` line per socket context (tunnel-mode sockets; native ones have none)
 *   xenstore data/fastivc/  the same texts, mirrored once a second for dom0's ivctop (stats, and sock/<id> for
 *                           every socket context)
 */
#include <linux/kernel.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <xen/xenbus.h>
#include "fastivc.h"

struct fastivc_counters fastivc_stats;
static struct proc_dir_entry *proc_dir;
static bool mirror_ok = true;

const char *const fastivc_reason_names[FIVC_R_COUNT] = {
	[FIVC_R_NONE] = "-",
	[FIVC_R_NOT_CORESIDENT] = "not_coresident",
	[FIVC_R_SAME_DOMAIN] = "same_domain",
	[FIVC_R_LOOPBACK] = "loopback",
	[FIVC_R_NOT_IPV4] = "not_ipv4",
	[FIVC_R_EXCLUDED_PORT] = "excluded_port",
	[FIVC_R_NOT_ESTABLISHED] = "not_established",
	[FIVC_R_OTHER_ULP] = "other_ulp",
	[FIVC_R_KERNEL_SOCKET] = "kernel_socket",
	[FIVC_R_DISABLED] = "disabled",
	[FIVC_R_DEM_ERROR] = "dem_error",
	[FIVC_R_NO_MEMORY] = "no_memory",
	[FIVC_R_GRANT_FAILED] = "grant_failed",
	[FIVC_R_RAISE_FAILED] = "raise_failed",
	[FIVC_R_PEER_REJECTED] = "peer_rejected",
	[FIVC_R_MAP_FAILED] = "map_failed",
	[FIVC_R_PEER_TIMEOUT] = "peer_timeout",
	[FIVC_R_OOB] = "oob",
	[FIVC_R_VIOLATION] = "violation",
	[FIVC_R_PEER_GONE] = "peer_gone",
	[FIVC_R_BUDGET] = "tunnel_budget",
	[FIVC_R_USER_TIMEOUT] = "user_timeout",
	[FIVC_R_LOCAL_ADDRESS] = "local_address",
	[FIVC_R_SUSPEND] = "suspend",
	[FIVC_R_PEER_QUOTA] = "peer_quota",
};

const char *const fastivc_reject_names[FIVC_REJ_COUNT] = {
	[FIVC_REJ_NO_SOCKET] = "no_socket",
	[FIVC_REJ_NO_CONTEXT] = "no_context",
	[FIVC_REJ_OTHER_PEER] = "other_peer",
	[FIVC_REJ_CLOSED] = "closed",
	[FIVC_REJ_HELD] = "held",
	[FIVC_REJ_BROKEN] = "broken",
	[FIVC_REJ_RX_BUSY] = "rx_busy",
	[FIVC_REJ_SUSPENDING] = "suspending",
	[FIVC_REJ_TOO_OFTEN] = "too_often",
	[FIVC_REJ_MAP_FAILED] = "map_failed",
};

static const char *const mode_names[] = { "tunnel", "broken", "closed" };
static const char *const dir_names[] = { "tcp", "creating", "open", "reverted", "closed", "broken", "resend" };

void fastivc_count_fallback(enum fastivc_reason r)
{
	if (r > FIVC_R_NONE && r < FIVC_R_COUNT)
		atomic64_inc(&fastivc_stats.fallback[r]);
}

static int format_stats(char *buf, size_t size)
{
	struct fastivc_sock *ctx;
	int n = 0, i, nsocks = 0;

	spin_lock_bh(&fastivc_socks_lock);
	list_for_each_entry(ctx, &fastivc_socks, node)
		nsocks++;
	spin_unlock_bh(&fastivc_socks_lock);

#define KV(k, fmt, v) (n += scnprintf(buf + n, size - n, "%s " fmt "\n", k, v))
#define CTR(name) KV(#name, "%lld", (long long)atomic64_read(&fastivc_stats.name))
	KV("format", "%d", 1);
	KV("version", "%s", FASTIVC_VERSION);
	KV("domid", "%u", fastivc_domid);
	KV("channels", "%u", READ_ONCE(fastivc_channels));
	KV("channel_size", "%u", READ_ONCE(fastivc_channel_size));
	KV("sockets", "%d", nsocks);
	CTR(tunnels_open);
	CTR(tunnels_created);
	CTR(tunnels_mapped);
	CTR(bytes_tx);
	CTR(bytes_rx);
	CTR(events_raised);
	CTR(events_received);
	CTR(virqs);
	CTR(fetches);
	CTR(violations);
	CTR(pages_deferred);
	CTR(lost_wakeups);
	CTR(switch_pushes);
	KV("tx_pages", "%u", fastivc_tx_pages());
	KV("tx_pages_max", "%u", READ_ONCE(fastivc_tx_pages_max));
	KV("rx_pages", "%u", fastivc_rx_pages());
	KV("rx_pages_max", "%u", READ_ONCE(fastivc_rx_pages_max));
	CTR(kicks_failed);
	CTR(kicks_retried);
	CTR(tick_wakes);
	CTR(virq_steers);
	CTR(suspends);
	CTR(detaches);
	CTR(bytes_resent);
	CTR(owner_events);
	CTR(dem_calls);
	CTR(grant_map_calls);
	CTR(grant_unmap_calls);
	CTR(link_setups);
	CTR(link_reuses);
	CTR(link_evictions);
	CTR(early_switches);
	CTR(early_fin_waits);
	CTR(early_fin_wait_us);
	{
		unsigned int pooled, parked, pages;

		ivc_link_totals(&pooled, &parked, &pages);
		KV("links_pooled", "%u", pooled);
		KV("links_parked", "%u", parked);
		KV("link_pages", "%u", pages);
	}
	KV("virq_cpu", "%d", sem_virq_cpu());
	{
		/* events raised per MiB moved through tunnels, both directions, in hundredths */
		s64 ev = atomic64_read(&fastivc_stats.events_raised);
		s64 mib = (atomic64_read(&fastivc_stats.bytes_tx) + atomic64_read(&fastivc_stats.bytes_rx)) >> 20;

		KV("events_per_MiB_x100", "%lld", mib ? (long long)div64_s64(ev * 100, mib) : 0LL);
	}
	for (i = FIVC_R_NONE + 1; i < FIVC_R_COUNT; i++)
		n += scnprintf(buf + n, size - n, "fallback_%s %lld\n", fastivc_reason_names[i],
			       (long long)atomic64_read(&fastivc_stats.fallback[i]));
	for (i = 0; i < FIVC_REJ_COUNT; i++)
		n += scnprintf(buf + n, size - n, "rejected_%s %lld\n", fastivc_reject_names[i],
			       (long long)atomic64_read(&fastivc_stats.rejects[i]));
#undef CTR
#undef KV
	return n;
}

/* "a.b.c.d:port" or "[v6]:port" */
static int addr_port(char *buf, size_t size, const struct xen_evtmgr_addr *a, u16 port)
{
	if (a->family == EVTMGR_AF_INET6)
		return scnprintf(buf, size, "[%pI6c]:%u", a->addr, port);
	return scnprintf(buf, size, "%pI4:%u", a->addr, port);
}

const char *fastivc_conn_str(char *buf, const struct fastivc_sock *ctx)
{
	int n = addr_port(buf, FIVC_CONN_STR, &ctx->laddr, ctx->lport);

	n += scnprintf(buf + n, FIVC_CONN_STR - n, " -> ");
	addr_port(buf + n, FIVC_CONN_STR - n, &ctx->raddr, ctx->rport);
	return buf;
}

/* One socket's line (no newline). Caller holds fastivc_socks_lock, so ctx stays; tunnels are read under RCU. */
static int format_sock(struct fastivc_sock *ctx, char *buf, size_t size)
{
	struct ivc_tunnel *t;
	u32 in_flight = 0;
	char peer[8] = "-", local[56], remote[56];

	rcu_read_lock();
	t = READ_ONCE(ctx->tx);
	if (t && READ_ONCE(ctx->tx_state) == FIVC_DIR_OPEN)
		in_flight = ivc_tx_in_flight(&t->tx, t->ctrl);
	rcu_read_unlock();
	if (ctx->peer != EVTMGR_DOMID_NONE)
		snprintf(peer, sizeof(peer), "%u", ctx->peer);
	addr_port(local, sizeof(local), &ctx->laddr, ctx->lport);
	addr_port(remote, sizeof(remote), &ctx->raddr, ctx->rport);
	return scnprintf(buf, size,
			 "sock id=%llu local=%s remote=%s peer=%s mode=%s reason=%s tx=%s tx_channels=%u "
			 "tx_channel_size=%u tx_bytes=%llu tx_in_flight=%u tx_stalls=%llu rx=%s rx_channels=%u "
			 "rx_channel_size=%u rx_bytes=%llu events_raised=%llu events_received=%llu violations=%llu",
			 ctx->id, local, remote, peer,
			 mode_names[READ_ONCE(ctx->mode)], fastivc_reason_names[READ_ONCE(ctx->reason)],
			 dir_names[READ_ONCE(ctx->tx_state)], ctx->tx_channels, ctx->tx_channel_size,
			 READ_ONCE(ctx->tx_bytes), in_flight, READ_ONCE(ctx->tx_stalls),
			 dir_names[READ_ONCE(ctx->rx_state)], ctx->rx_channels, ctx->rx_channel_size,
			 READ_ONCE(ctx->rx_bytes), READ_ONCE(ctx->events_raised), READ_ONCE(ctx->events_received),
			 READ_ONCE(ctx->violations));
}

#define STATS_BUF 4096
#define SOCK_LINE 576 /* the longest line: two IPv6 endpoints of 52 characters and every counter at 20 digits */

static int stats_show(struct seq_file *m, void *v)
{
	char *buf = kmalloc(STATS_BUF, GFP_KERNEL);

	if (!buf)
		return -ENOMEM;
	format_stats(buf, STATS_BUF);
	seq_puts(m, buf);
	kfree(buf);
	return 0;
}

static int sockets_show(struct seq_file *m, void *v)
{
	struct fastivc_sock *ctx;
	char line[SOCK_LINE];

	spin_lock_bh(&fastivc_socks_lock);
	list_for_each_entry(ctx, &fastivc_socks, node) {
		format_sock(ctx, line, sizeof(line));
		seq_puts(m, line);
		seq_putc(m, '\n');
	}
	spin_unlock_bh(&fastivc_socks_lock);
	return 0;
}

/*
 * /proc/fastivc/peers (and xenstore data/fastivc/peers): one line per peer domain we ever had a tunnel with (a link),
 * "domain D pages N quota Q sockets S pooled P parked K setups U reuses R": pages of its quota we hold now, our
 * tunnel-mode sockets with it, its tunnels waiting in the link (ours pooled, its parked), tunnels set up anew and
 * taken from the link since load. At most PEERS_MAX lines (the buffer's bound).
 */
#define PEERS_MAX 32
#define PEER_LINE 160

static int format_peers(char *buf, size_t size)
{
	struct fastivc_sock *ctx;
	unsigned int socks, pooled, parked, k = 0;
	u64 setups, reuses;
	long d = -1;
	int n = 0;

	buf[0] = 0;
	while (k < PEERS_MAX && ivc_link_next_peer(&d)) {
		ivc_link_peer(d, &pooled, &parked, &setups, &reuses);
		socks = 0;
		spin_lock_bh(&fastivc_socks_lock);
		list_for_each_entry(ctx, &fastivc_socks, node)
			socks += ctx->peer == d && READ_ONCE(ctx->mode) == FIVC_MODE_TUNNEL;
		spin_unlock_bh(&fastivc_socks_lock);
		n += scnprintf(buf + n, size - n, "domain %ld pages %u quota %u sockets %u pooled %u parked %u setups %llu reuses %llu\n",
			       d, fastivc_peer_pages(d), READ_ONCE(fastivc_peer_pages_max), socks, pooled, parked,
			       setups, reuses);
		k++;
	}
	return n;
}

static int peers_show(struct seq_file *m, void *v)
{
	char *buf = kmalloc(PEERS_MAX * PEER_LINE, GFP_KERNEL);

	if (!buf)
		return -ENOMEM;
	format_peers(buf, PEERS_MAX * PEER_LINE);
	seq_puts(m, buf);
	kfree(buf);
	return 0;
}

/* The xenstore mirror, from the SEM's once-a-second work (process context: xenbus may sleep). */
#define MIRROR_MAX 64 /* sockets mirrored per domain: enough for a monitor, bounded xenstore traffic */

void fastivc_stats_mirror(void)
{
	struct fastivc_sock *ctx;
	char *buf, **dir;
	u64 ids[MIRROR_MAX];
	unsigned int nd, i, k;
	int n = 0, rc;

	if (!READ_ONCE(mirror_ok))
		return;
	buf = kmalloc(STATS_BUF + MIRROR_MAX * SOCK_LINE, GFP_KERNEL);
	if (!buf)
		return;
	format_stats(buf, STATS_BUF);
	rc = xenbus_write(XBT_NIL, "data/fastivc", "stats", buf);
	if (rc) {
		pr_info("fastivc: no xenstore mirror (%d): dom0 tools will not see this domain's statistics\n", rc);
		WRITE_ONCE(mirror_ok, false);
		goto out;
	}
	/* the links (the buffer's socket part serves, before the sockets are formatted into it) */
	format_peers(buf + STATS_BUF, MIRROR_MAX * SOCK_LINE);
	xenbus_write(XBT_NIL, "data/fastivc", "peers", buf + STATS_BUF);
	spin_lock_bh(&fastivc_socks_lock);
	list_for_each_entry(ctx, &fastivc_socks, node) {
		if (n == MIRROR_MAX)
			continue;
		ids[n] = ctx->id;
		format_sock(ctx, buf + STATS_BUF + n * SOCK_LINE, SOCK_LINE);
		n++;
	}
	spin_unlock_bh(&fastivc_socks_lock);
	for (i = 0; i < n; i++) {
		char name[24];

		snprintf(name, sizeof(name), "%llu", ids[i]);
		xenbus_write(XBT_NIL, "data/fastivc/sock", name, buf + STATS_BUF + i * SOCK_LINE);
	}
	/* entries of sockets that are gone */
	dir = xenbus_directory(XBT_NIL, "data/fastivc/sock", "", &nd);
	if (!IS_ERR(dir)) {
		for (i = 0; i < nd; i++) {
			u64 id;

			if (kstrtou64(dir[i], 10, &id))
				continue;
			for (k = 0; k < n && ids[k] != id; k++)
				;
			if (k == n)
				xenbus_rm(XBT_NIL, "data/fastivc/sock", dir[i]);
		}
		kfree(dir);
	}
out:
	kfree(buf);
}

int fastivc_stats_init(void)
{
	proc_dir = proc_mkdir("fastivc", NULL);
	if (!proc_dir)
		return -ENOMEM;
	if (!proc_create_single("stats", 0444, proc_dir, stats_show) ||
	    !proc_create_single("sockets", 0444, proc_dir, sockets_show) ||
	    !proc_create_single("peers", 0444, proc_dir, peers_show)) {
		proc_remove(proc_dir);
		return -ENOMEM;
	}
	return 0;
}

void fastivc_stats_exit(void)
{
	proc_remove(proc_dir);
	if (READ_ONCE(mirror_ok))
		xenbus_rm(XBT_NIL, "data", "fastivc");
}
