// SPDX-License-Identifier: GPL-2.0-only
/*
 * monitor.c: the Protocol Monitor (thesis 3.2.1, 3.4.2, 3.4.3).
 *
 * The thesis points new TCP sockets at an "initial operation set" that decides, on the first send or receive,
 * whether the peer is co-resident. Without patching the kernel we get the same effect by replacing sendmsg, recvmsg
 * and sendpage in tcp_prot and tcpv6_prot (exported and writable) while the module is loaded: every TCP socket, including
 * those created before the module was loaded and accepted ones, passes through them. The first call decides:
 *   tunnel  the DEM says the peer address belongs to another domain of this host: the socket gets a per-socket
 *           context (in icsk_ulp_data, with our tcp_ulp_ops so the kernel's tcp_cleanup_ulp() frees it and drops
 *           its module reference) and sock.c's operations;
 *   native  anything else (reason counted): the socket stays exactly what it was, plain TCP with tcp_prot and no
 *           ULP, so kTLS and sockmap take it as they would without us. Its later calls still pass through the
 *           hooks, which find it in the native verdict table (below) and go straight to TCP's functions: no socket
 *           lock, no DEM lookup.
 * IPv6 sockets are named to the DEM by their IPv6 addresses, or by IPv4 ones when the peer is v4-mapped (a server
 * listening on [::] talking to an IPv4 client). Sockets that cannot be decided yet (not established, another ULP such
 * as kTLS) go straight to TCP's functions each time.
 *
 * Every hook ends in a tail call of the operation it chose (monitor_route()), so no frame of ours stays on the
 * stack of a task blocked in TCP. Unloading: each tunnel-mode socket holds a module reference (like kTLS), so rmmod
 * is refused while one is open. On exit the hooks are removed first; then calls that are still deciding (they may
 * sleep in lock_sock(), counted in monitor_inflight) are waited for, and RCU-tasks grace periods cover a task
 * preempted anywhere in a hook's text, before the module's text goes away. A task blocked in TCP's recvmsg on a
 * native socket does not hold rmmod up.
 * Known limit: a module that copies tcp_prot while fastivc is loaded (tls.ko builds its protos from it) keeps
 * pointers to our hooks; unload fastivc only after such modules, or not at all.
 */
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/delay.h>
#include <linux/hash.h>
#include <linux/log2.h>
#include <linux/net.h>
#include <linux/siphash.h>
#include <linux/user_namespace.h>
#include <net/tcp.h>
#include <net/inet_common.h>
#include <net/transp_v6.h>
#include <net/ipv6.h>
#include "fastivc.h"

LIST_HEAD(fastivc_socks);
DEFINE_SPINLOCK(fastivc_socks_lock);
static atomic64_t next_id = ATOMIC64_INIT(0);

static struct proto fastivc_base_prot;  /* tcp_prot as it was before our hooks: TCP's own functions */
static struct proto fastivc_base6_prot; /* tcpv6_prot likewise */

static atomic_t monitor_inflight = ATOMIC_INIT(0); /* hooks deciding a socket (they may sleep in lock_sock()) */

static void fastivc_ulp_release(struct sock *sk);
/* tunnel-mode sockets: tcp_cleanup_ulp() drops the module reference they hold */
static struct tcp_ulp_ops fastivc_ulp_ops = {
	.name = "fastivc",
	.owner = THIS_MODULE,
	.release = fastivc_ulp_release,
};

/*
 * The native verdict table. A socket decided native keeps nothing of ours, so the hooks recognise it by a tag in a
 * 4-way set-associative table whose set is chosen by the socket's address: the tag is a keyed hash (siphash, key
 * drawn at load) of the address, the 4-tuple and the inode number of the socket's file, so a socket freed and reused
 * for another connection does not match, and a peer cannot aim at a set. Written under the socket lock, read without
 * it (one aligned word per way).
 * FIVC_NATIVE_SETS x FIVC_NATIVE_WAYS: 16384 tags (128 KiB) hold the verdicts of thousands of open native
 * connections; closed sockets' tags stay until a new verdict of their set replaces one (the way picked by the new
 * tag's top bits). A socket whose tag was replaced is decided again on its next call: one more DEM lookup, and its
 * fallback reason is counted again.
 */
#define FIVC_NATIVE_SETS 4096
#define FIVC_NATIVE_WAYS 4
static u64 native_tags[FIVC_NATIVE_SETS][FIVC_NATIVE_WAYS];
static siphash_key_t native_key;

/* An IPv6 socket whose peer is an IPv6 address (not v4-mapped). */
static bool real_ipv6(const struct sock *sk)
{
	return IS_ENABLED(CONFIG_IPV6) && sk->sk_family == AF_INET6 && !ipv6_addr_v4mapped(&sk->sk_v6_daddr);
}

static u64 native_tag(struct sock *sk)
{
	const struct inet_sock *inet = inet_sk(sk);
	struct socket *sock = READ_ONCE(sk->sk_socket);
	struct {
		u64 sk, ino, ports;
		struct in6_addr saddr, daddr; /* IPv4: in the first word of each */
	} key = {
		.sk = (unsigned long)sk,
		.ino = sock ? SOCK_INODE(sock)->i_ino : 0,
		.ports = (u64)READ_ONCE(inet->inet_sport) << 16 | READ_ONCE(inet->inet_dport),
	};
	u64 tag;

	if (real_ipv6(sk)) { /* unlocked: a torn read only misses, and the locked path decides again */
		key.saddr = sk->sk_v6_rcv_saddr;
		key.daddr = sk->sk_v6_daddr;
	} else {
		key.saddr.s6_addr32[0] = READ_ONCE(inet->inet_saddr);
		key.daddr.s6_addr32[0] = READ_ONCE(inet->inet_daddr);
	}
	tag = siphash(&key, sizeof(key), &native_key);
	return tag ?: 1; /* 0 marks an empty slot */
}

static u64 *native_set(const struct sock *sk)
{
	return native_tags[hash_ptr(sk, ilog2(FIVC_NATIVE_SETS))];
}

static bool native_remembered(struct sock *sk)
{
	const u64 *set = native_set(sk);
	u64 tag = native_tag(sk);
	int i;

	for (i = 0; i < FIVC_NATIVE_WAYS; i++)
		if (READ_ONCE(set[i]) == tag)
			return true;
	return false;
}

/* Socket lock held. An empty way if there is one, else the one the tag's top bits pick. */
static void native_remember(struct sock *sk)
{
	u64 *set = native_set(sk), tag = native_tag(sk);
	int i;

	for (i = 0; i < FIVC_NATIVE_WAYS; i++)
		if (!READ_ONCE(set[i]))
			break;
	if (i == FIVC_NATIVE_WAYS)
		i = tag >> (64 - ilog2(FIVC_NATIVE_WAYS));
	WRITE_ONCE(set[i], tag);
}

struct fastivc_sock *fastivc_ctx_of(const struct sock *sk)
{
	const struct inet_connection_sock *icsk = inet_csk(sk);

	if (READ_ONCE(icsk->icsk_ulp_ops) != &fastivc_ulp_ops)
		return NULL;
	return (__force struct fastivc_sock *)icsk->icsk_ulp_data;
}

/* The socket's two addresses in the DEM's form: IPv6 for a real IPv6 peer, else IPv4 (v4-mapped peers too). */
static void sock_addrs(const struct sock *sk, struct xen_evtmgr_addr *local, struct xen_evtmgr_addr *remote)
{
	const struct inet_sock *inet = inet_sk(sk);

	if (real_ipv6(sk)) {
		fastivc_addr_v6(local, &sk->sk_v6_rcv_saddr);
		fastivc_addr_v6(remote, &sk->sk_v6_daddr);
	} else {
		fastivc_addr_v4(local, inet->inet_saddr);
		fastivc_addr_v4(remote, inet->inet_daddr);
	}
}

static enum fastivc_reason classify(struct sock *sk, domid_t *peer)
{
	const struct inet_sock *inet = inet_sk(sk);
	struct xen_evtmgr_addr local, remote;
	int rc;

	if (!READ_ONCE(fastivc_enable))
		return FIVC_R_DISABLED;
	if (sk->sk_kern_sock)
		return FIVC_R_KERNEL_SOCKET;
	if (fastivc_port_excluded(ntohs(inet->inet_sport)) || fastivc_port_excluded(ntohs(inet->inet_dport)))
		return FIVC_R_EXCLUDED_PORT;
	if (real_ipv6(sk) ? ipv6_addr_loopback(&sk->sk_v6_daddr) : ipv4_is_loopback(inet->inet_daddr))
		return FIVC_R_LOOPBACK;
	sock_addrs(sk, &local, &remote);
	rc = dem_lookup(&remote, peer);
	if (rc) {
		pr_info_ratelimited("fastivc: DEM lookup failed (%d)\n", rc);
		return FIVC_R_DEM_ERROR;
	}
	if (*peer == EVTMGR_DOMID_NONE)
		return FIVC_R_NOT_CORESIDENT;
	if (*peer == fastivc_domid)
		return FIVC_R_SAME_DOMAIN;
	/*
	 * Our own end must be nameable in the DEM as ours. Not for a socket bound to a device (SO_BINDTODEVICE, VRF, and
	 * every link-local IPv6 one): the SEM's lookup of such a socket needs its device, which the DEM does not carry.
	 * Nor in a namespace an unprivileged user made (unshare -Urn): anyone could give a socket there any of this
	 * domain's addresses, and so the 4-tuple of another namespace's connection; only the host's root's namespaces
	 * (owned by the initial user namespace) count. And the local address must be this domain's in the DEM: behind
	 * NAT (a container's masqueraded address) or with an address the DEM does not hold (an IPv6 temporary address),
	 * the peer could not name this connection, and the DEM would refuse our raises (-EACCES).
	 */
	if (READ_ONCE(sk->sk_bound_dev_if) || sock_net(sk)->user_ns != &init_user_ns)
		return FIVC_R_LOCAL_ADDRESS;
	{
		domid_t owner;

		rc = dem_lookup(&local, &owner);
		if (rc) {
			pr_info_ratelimited("fastivc: DEM lookup failed (%d)\n", rc);
			return FIVC_R_DEM_ERROR;
		}
		if (owner != fastivc_domid)
			return FIVC_R_LOCAL_ADDRESS;
	}
	return FIVC_R_NONE;
}

/*
 * A TCP socket the monitor decides, whose proto is `prot` (read once by the caller): IPv4, or IPv6 (with an IPv6
 * peer, or an IPv4 one, v4-mapped, as on a server listening on [::] like iperf3).
 */
static bool tcp_decidable(const struct sock *sk, const struct proto *prot)
{
	return (sk->sk_family == AF_INET && prot == &tcp_prot) || (sk->sk_family == AF_INET6 && prot == &tcpv6_prot);
}

/* Set once the tunnel's protos are built: the SEM may fetch a CREATE before the monitor is up (module init). */
static bool monitor_ready;

/*
 * Decides the socket: returns its context if it is (or now becomes) a tunnel-mode socket, NULL if it is native or
 * cannot be decided now. Socket lock held. Called by the hooks on a socket's first call, and by the SEM for an
 * EVENT_CREATE_TUNNEL on a socket that has not sent or received yet (an accepted connection whose peer writes first).
 */
struct fastivc_sock *fastivc_attach(struct sock *sk)
{
	struct inet_connection_sock *icsk = inet_csk(sk);
	struct inet_sock *inet = inet_sk(sk);
	domid_t peer = EVTMGR_DOMID_NONE;
	struct fastivc_sock *ctx;
	enum fastivc_reason why;

	if (icsk->icsk_ulp_ops == &fastivc_ulp_ops)
		return fastivc_ctx_of(sk);
	if (icsk->icsk_ulp_ops || !tcp_decidable(sk, sk->sk_prot) || !smp_load_acquire(&monitor_ready))
		return NULL;
	if (!((1 << sk->sk_state) & (TCPF_ESTABLISHED | TCPF_CLOSE_WAIT)))
		return NULL;
	if (native_remembered(sk))
		return NULL;
	why = classify(sk, &peer);
	if (why != FIVC_R_NONE) {
		/* native: the socket stays plain TCP; only the verdict table knows it */
		fastivc_count_fallback(why);
		native_remember(sk);
		return NULL;
	}
	/*
	 * The tunnel's reference on the module (dropped by tcp_cleanup_ulp()). try_module_get() fails once rmmod has
	 * begun: no socket may become tunnel-mode while the module goes away (the call then stays on TCP).
	 */
	if (!try_module_get(THIS_MODULE))
		return NULL;
	ctx = kzalloc(sizeof(*ctx), GFP_KERNEL);
	if (!ctx) {
		module_put(THIS_MODULE);
		fastivc_count_fallback(FIVC_R_NO_MEMORY); /* not remembered: the next call tries again */
		return NULL;
	}
	INIT_LIST_HEAD(&ctx->node);
	ctx->sk = sk;
	ctx->sk_proto = sk->sk_prot;
	ctx->id = atomic64_inc_return(&next_id);
	sock_addrs(sk, &ctx->laddr, &ctx->raddr);
	ctx->lport = ntohs(inet->inet_sport);
	ctx->rport = ntohs(inet->inet_dport);
	ctx->peer = peer;
	ctx->mode = FIVC_MODE_TUNNEL;
	ctx->reason = FIVC_R_NONE;
	ctx->tx_state = FIVC_DIR_TCP;
	ctx->rx_state = FIVC_DIR_TCP;
	/*
	 * A CREATE_TUNNEL may wait for this socket in the SEM's retry list (it came before accept() grafted it, see
	 * sem.c sem_dispatch): the first call through us runs it, under the lock (fastivc_sem_owner_events).
	 */
	set_bit(0, &ctx->owner_events);

	rcu_assign_pointer(icsk->icsk_ulp_data, (void __rcu *)ctx);
	WRITE_ONCE(icsk->icsk_ulp_ops, &fastivc_ulp_ops);
	spin_lock_bh(&fastivc_socks_lock);
	list_add_tail(&ctx->node, &fastivc_socks);
	spin_unlock_bh(&fastivc_socks_lock);

	write_lock_bh(&sk->sk_callback_lock);
	WRITE_ONCE(sk->sk_prot, sk->sk_family == AF_INET6 ? &fastivc_tunnel6_prot : &fastivc_tunnel_prot);
	write_unlock_bh(&sk->sk_callback_lock);
	return ctx;
}

/* tcp_cleanup_ulp(), when the socket is destroyed (maybe in softirq): free what is left. */
static void fastivc_ulp_release(struct sock *sk)
{
	struct fastivc_sock *ctx = (__force struct fastivc_sock *)inet_csk(sk)->icsk_ulp_data;

	struct ivc_tunnel *tx, *rx;

	if (!ctx)
		return;
	/* off the list first: lock-free readers (the tick's wake check, the statistics) find it there */
	spin_lock_bh(&fastivc_socks_lock);
	list_del(&ctx->node);
	spin_unlock_bh(&fastivc_socks_lock);
	tx = ctx->tx;
	rx = ctx->rx;
	if (tx || rx) { /* destroyed without close(), e.g. never accepted */
		if (ctx->tx_state == FIVC_DIR_OPEN)
			atomic64_dec(&fastivc_stats.tunnels_open);
		if (ctx->rx_state == FIVC_DIR_OPEN)
			atomic64_dec(&fastivc_stats.tunnels_open);
		WRITE_ONCE(ctx->tx, NULL);
		WRITE_ONCE(ctx->rx, NULL);
		ivc_tunnel_release(tx);
		ivc_tunnel_release(rx);
	}
	rcu_assign_pointer(inet_csk(sk)->icsk_ulp_data, NULL);
	/* a socket destroyed without close() (a child never accepted) must not keep our proto past module_put() */
	WRITE_ONCE(sk->sk_prot, fastivc_tcp_proto(sk));
	kfree_rcu(ctx, rcu);
}

/* ---- the initial operation set ---- */

/*
 * Without the socket lock: true if the call goes straight to TCP, because the socket has another ULP (kTLS), is not
 * one the monitor decides, is not established yet, or was decided native. Never sleeps.
 */
static bool straight_to_tcp(struct sock *sk)
{
	const struct tcp_ulp_ops *ops = READ_ONCE(inet_csk(sk)->icsk_ulp_ops);
	const struct proto *prot;

	if (ops)
		return ops != &fastivc_ulp_ops; /* ours: the proto swap is under way, fastivc_attach() returns its context */
	/*
	 * fastivc_attach() sets the ULP ops before the tunnel's proto: a socket attached since the read above has the
	 * tunnel's proto, and its call must not go to TCP behind the switch.
	 */
	prot = READ_ONCE(sk->sk_prot);
	if (prot == &fastivc_tunnel_prot || prot == &fastivc_tunnel6_prot)
		return false;
	if (!tcp_decidable(sk, prot) || !((1 << READ_ONCE(sk->sk_state)) & (TCPF_ESTABLISHED | TCPF_CLOSE_WAIT)))
		return true;
	return native_remembered(sk);
}

/*
 * The operations a call takes: the tunnel's (a socket decided tunnel) or TCP's own. Deciding may sleep in
 * lock_sock(), so it is counted in monitor_inflight, which module exit waits for. The hooks tail-call what this
 * returns: once TCP's function runs, no frame of ours is left below it.
 */
static const struct proto *monitor_route(struct sock *sk)
{
	const struct proto *tcp = sk->sk_family == AF_INET6 ? &fastivc_base6_prot : &fastivc_base_prot;
	const struct proto *p = tcp;

	if (straight_to_tcp(sk))
		return tcp;
	atomic_inc(&monitor_inflight);
	lock_sock(sk);
	if (fastivc_attach(sk))
		p = READ_ONCE(sk->sk_prot);
	release_sock(sk);
	if (p == &tcp_prot || p == &tcpv6_prot) /* closed under us: its hooks would lead back here */
		p = tcp;
	/* the last thing before the tail call (no wake-up that could sleep on PREEMPT_RT): exit polls for zero */
	atomic_dec(&monitor_inflight);
	return p;
}

static int monitor_sendmsg(struct sock *sk, struct msghdr *msg, size_t size)
{
	return monitor_route(sk)->sendmsg(sk, msg, size);
}

static int monitor_recvmsg(struct sock *sk, struct msghdr *msg, size_t len, int flags, int *addr_len)
{
	return monitor_route(sk)->recvmsg(sk, msg, len, flags, addr_len);
}

static int monitor_sendpage(struct sock *sk, struct page *page, int offset, size_t size, int flags)
{
	return monitor_route(sk)->sendpage(sk, page, offset, size, flags);
}

/*
 * kTLS (tls.ko) copies the proto of the first socket given it (tcp_prot, tcpv6_prot) into its own tables, once. Had
 * it done so with our hooks inside, its sockets would call them after fastivc is unloaded. So before the hooks go
 * in, a kernel socket asks for kTLS (which loads tls.ko if the system has it): tls builds its tables from TCP's own
 * functions, then refuses the unconnected socket (ENOTCONN). Without tls.ko: ENOENT, and nothing to protect.
 */
static void ktls_tables_from_tcp(int family)
{
	struct socket *sock;
	int rc;

	if (sock_create_kern(&init_net, family, SOCK_STREAM, IPPROTO_TCP, &sock))
		return;
	rc = sock->ops->setsockopt(sock, SOL_TCP, TCP_ULP, KERNEL_SOCKPTR("tls"), sizeof("tls"));
	if (rc && rc != -ENOTCONN && rc != -ENOENT)
		pr_info("fastivc: kTLS tables not prepared (%d): unload fastivc only after tls.ko\n", rc);
	sock_release(sock);
}

int fastivc_monitor_init(void)
{
	get_random_bytes(&native_key, sizeof(native_key));
	ktls_tables_from_tcp(AF_INET);
	ktls_tables_from_tcp(AF_INET6);
	fastivc_base_prot = tcp_prot;
	fastivc_base6_prot = tcpv6_prot;
	fastivc_sock_build(&fastivc_base_prot, &fastivc_base6_prot, &inet_stream_ops);
	smp_store_release(&monitor_ready, true);

	WRITE_ONCE(tcp_prot.sendpage, monitor_sendpage);
	WRITE_ONCE(tcp_prot.recvmsg, monitor_recvmsg);
	WRITE_ONCE(tcp_prot.sendmsg, monitor_sendmsg);
	WRITE_ONCE(tcpv6_prot.sendpage, monitor_sendpage);
	WRITE_ONCE(tcpv6_prot.recvmsg, monitor_recvmsg);
	WRITE_ONCE(tcpv6_prot.sendmsg, monitor_sendmsg);
	return 0;
}

void fastivc_monitor_exit(void)
{
	WRITE_ONCE(tcp_prot.sendmsg, fastivc_base_prot.sendmsg);
	WRITE_ONCE(tcp_prot.recvmsg, fastivc_base_prot.recvmsg);
	WRITE_ONCE(tcp_prot.sendpage, fastivc_base_prot.sendpage);
	WRITE_ONCE(tcpv6_prot.sendmsg, fastivc_base6_prot.sendmsg);
	WRITE_ONCE(tcpv6_prot.recvmsg, fastivc_base6_prot.recvmsg);
	WRITE_ONCE(tcpv6_prot.sendpage, fastivc_base6_prot.sendpage);
	/* a task preempted between a hook's entry and its counter increment (or in the lock-free part) */
	synchronize_rcu_tasks();
	while (atomic_read(&monitor_inflight))
		msleep(10);
	/* and one between the decrement and its tail call */
	synchronize_rcu_tasks();
}
