// SPDX-License-Identifier: GPL-2.0-only
/*
 * monitor.c: the Protocol Monitor (thesis 3.2.1, 3.4.2, 3.4.3).
 *
 * The thesis points new TCP sockets at an "initial operation set" that decides, on the first send or receive,
 * whether the peer is co-resident. Without patching the kernel we get the same effect by replacing sendmsg, recvmsg
 * and sendpage in tcp_prot (exported and writable) while the module is loaded: every IPv4 TCP socket, including
 * those created before the module was loaded and accepted ones, passes through them until it is decided. The
 * decision gives the socket a per-socket context (in icsk_ulp_data, with our tcp_ulp_ops so the kernel's
 * tcp_cleanup_ulp() frees it and drops its module reference) and its own operations:
 *   native  a copy of tcp_prot with TCP's own functions: the socket never comes back here (reason counted);
 *   tunnel  sock.c's operations, when the DEM says the peer address belongs to another domain of this host.
 * IPv6 sockets whose peer is an IPv4 address (v4-mapped: a server listening on [::]) are handled like IPv4 ones,
 * through tcpv6_prot's hooks. Sockets that cannot be decided yet (not established, another ULP such as kTLS, real
 * IPv6 peers) go straight to TCP's functions each time.
 *
 * Unloading: each tunnel-mode socket holds a module reference (like kTLS), so rmmod is refused while one is open.
 * Native sockets hold none: on exit the hooks are removed first, then every native socket is given back tcp_prot and
 * loses its context, and calls that entered a hook or native_close() just before are waited for (an in-flight
 * counter and RCU-tasks grace periods) before the module's text goes away.
 * Known limit: a module that copies tcp_prot while fastivc is loaded (tls.ko builds its protos from it) keeps
 * pointers to our hooks; unload fastivc only after such modules, or not at all.
 */
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/wait.h>
#include <net/tcp.h>
#include <net/inet_common.h>
#include <net/transp_v6.h>
#include <net/ipv6.h>
#include "fastivc.h"

LIST_HEAD(fastivc_socks);
DEFINE_SPINLOCK(fastivc_socks_lock);
static atomic64_t next_id = ATOMIC64_INIT(0);

static struct proto fastivc_native_prot;  /* tcp_prot with TCP's own send/receive */
static struct proto fastivc_native6_prot; /* tcpv6_prot likewise, for IPv4 peers of IPv6 sockets (v4-mapped) */
static int (*tcp6_sendmsg_fn)(struct sock *sk, struct msghdr *msg, size_t size);
static int (*tcp6_recvmsg_fn)(struct sock *sk, struct msghdr *msg, size_t len, int flags, int *addr_len);
static int (*tcp6_sendpage_fn)(struct sock *sk, struct page *page, int offset, size_t size, int flags);
static int (*tcp_sendmsg_fn)(struct sock *sk, struct msghdr *msg, size_t size);
static int (*tcp_recvmsg_fn)(struct sock *sk, struct msghdr *msg, size_t len, int flags, int *addr_len);
static int (*tcp_sendpage_fn)(struct sock *sk, struct page *page, int offset, size_t size, int flags);
static void (*tcp_close_fn)(struct sock *sk, long timeout);

static atomic_t monitor_inflight = ATOMIC_INIT(0);
static DECLARE_WAIT_QUEUE_HEAD(monitor_idle);

static void fastivc_ulp_release(struct sock *sk);
/* tunnel-mode sockets: tcp_cleanup_ulp() drops the module reference they hold */
static struct tcp_ulp_ops fastivc_ulp_ops = {
	.name = "fastivc",
	.owner = THIS_MODULE,
	.release = fastivc_ulp_release,
};
/* native sockets hold no module reference (module exit detaches them) */
static struct tcp_ulp_ops fastivc_native_ulp_ops = {
	.name = "fastivc",
	.release = fastivc_ulp_release,
};

struct fastivc_sock *fastivc_ctx_of(const struct sock *sk)
{
	const struct inet_connection_sock *icsk = inet_csk(sk);
	const struct tcp_ulp_ops *ops = READ_ONCE(icsk->icsk_ulp_ops);

	if (ops != &fastivc_ulp_ops && ops != &fastivc_native_ulp_ops)
		return NULL;
	return (__force struct fastivc_sock *)icsk->icsk_ulp_data;
}

static enum fastivc_reason classify(struct sock *sk, domid_t *peer)
{
	const struct inet_sock *inet = inet_sk(sk);
	int rc;

	if (!READ_ONCE(fastivc_enable))
		return FIVC_R_DISABLED;
	if (sk->sk_kern_sock)
		return FIVC_R_KERNEL_SOCKET;
	if (fastivc_port_excluded(ntohs(inet->inet_sport)) || fastivc_port_excluded(ntohs(inet->inet_dport)))
		return FIVC_R_EXCLUDED_PORT;
	if (ipv4_is_loopback(inet->inet_daddr))
		return FIVC_R_LOOPBACK;
	rc = dem_lookup(inet->inet_daddr, peer);
	if (rc) {
		pr_info_ratelimited("fastivc: DEM lookup failed (%d)\n", rc);
		return FIVC_R_DEM_ERROR;
	}
	if (*peer == EVTMGR_DOMID_NONE)
		return FIVC_R_NOT_CORESIDENT;
	if (*peer == fastivc_domid)
		return FIVC_R_SAME_DOMAIN;
	return FIVC_R_NONE;
}

/*
 * Decides the socket and gives it a context, or returns NULL if it cannot be decided now. Socket lock held.
 * Called by the hooks on the first send/receive, and by the SEM for an EVENT_CREATE_TUNNEL on a socket that has
 * not sent or received yet (an accepted connection whose peer writes first).
 */
struct fastivc_sock *fastivc_attach(struct sock *sk)
{
	struct inet_connection_sock *icsk = inet_csk(sk);
	struct inet_sock *inet = inet_sk(sk);
	domid_t peer = EVTMGR_DOMID_NONE;
	struct fastivc_sock *ctx;
	enum fastivc_reason why;

	if (icsk->icsk_ulp_ops == &fastivc_ulp_ops || icsk->icsk_ulp_ops == &fastivc_native_ulp_ops)
		return fastivc_ctx_of(sk);
	if (icsk->icsk_ulp_ops)
		return NULL;
	/* IPv4, directly or as the v4-mapped peer of an IPv6 socket (a server listening on [::], like iperf3) */
	if (!(sk->sk_family == AF_INET && sk->sk_prot == &tcp_prot) &&
	    !(sk->sk_family == AF_INET6 && sk->sk_prot == &tcpv6_prot && ipv6_addr_v4mapped(&sk->sk_v6_daddr)))
		return NULL;
	if (!((1 << sk->sk_state) & (TCPF_ESTABLISHED | TCPF_CLOSE_WAIT)))
		return NULL;
	why = classify(sk, &peer);
	ctx = kzalloc(sizeof(*ctx), GFP_KERNEL);
	if (!ctx) {
		fastivc_count_fallback(FIVC_R_NO_MEMORY);
		return NULL;
	}
	INIT_LIST_HEAD(&ctx->node);
	ctx->sk = sk;
	ctx->sk_proto = sk->sk_prot;
	ctx->id = atomic64_inc_return(&next_id);
	ctx->laddr = inet->inet_saddr;
	ctx->raddr = inet->inet_daddr;
	ctx->lport = ntohs(inet->inet_sport);
	ctx->rport = ntohs(inet->inet_dport);
	ctx->peer = why == FIVC_R_NONE ? peer : EVTMGR_DOMID_NONE;
	ctx->mode = why == FIVC_R_NONE ? FIVC_MODE_TUNNEL : FIVC_MODE_NATIVE;
	ctx->reason = why;
	ctx->tx_state = FIVC_DIR_TCP;
	ctx->rx_state = FIVC_DIR_TCP;
	if (why != FIVC_R_NONE)
		fastivc_count_fallback(why);

	if (ctx->mode == FIVC_MODE_TUNNEL)
		__module_get(THIS_MODULE); /* dropped by tcp_cleanup_ulp() */
	rcu_assign_pointer(icsk->icsk_ulp_data, (void __rcu *)ctx);
	WRITE_ONCE(icsk->icsk_ulp_ops, ctx->mode == FIVC_MODE_TUNNEL ? &fastivc_ulp_ops : &fastivc_native_ulp_ops);
	spin_lock_bh(&fastivc_socks_lock);
	list_add_tail(&ctx->node, &fastivc_socks);
	spin_unlock_bh(&fastivc_socks_lock);

	write_lock_bh(&sk->sk_callback_lock);
	if (sk->sk_family == AF_INET6)
		WRITE_ONCE(sk->sk_prot, ctx->mode == FIVC_MODE_TUNNEL ? &fastivc_tunnel6_prot : &fastivc_native6_prot);
	else
		WRITE_ONCE(sk->sk_prot, ctx->mode == FIVC_MODE_TUNNEL ? &fastivc_tunnel_prot : &fastivc_native_prot);
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
	kfree_rcu(ctx, rcu);
}

/* ---- the initial operation set ---- */

static bool decide(struct sock *sk)
{
	bool attached;

	lock_sock(sk);
	attached = fastivc_attach(sk) != NULL;
	release_sock(sk);
	return attached;
}

static void monitor_exit_call(void)
{
	if (atomic_dec_and_test(&monitor_inflight))
		wake_up(&monitor_idle);
}

static int monitor_sendmsg(struct sock *sk, struct msghdr *msg, size_t size)
{
	int rc;

	atomic_inc(&monitor_inflight);
	if (decide(sk))
		rc = READ_ONCE(sk->sk_prot)->sendmsg(sk, msg, size);
	else
		rc = (sk->sk_family == AF_INET6 ? tcp6_sendmsg_fn : tcp_sendmsg_fn)(sk, msg, size);
	monitor_exit_call();
	return rc;
}

static int monitor_recvmsg(struct sock *sk, struct msghdr *msg, size_t len, int flags, int *addr_len)
{
	int rc;

	atomic_inc(&monitor_inflight);
	if (decide(sk))
		rc = READ_ONCE(sk->sk_prot)->recvmsg(sk, msg, len, flags, addr_len);
	else
		rc = (sk->sk_family == AF_INET6 ? tcp6_recvmsg_fn : tcp_recvmsg_fn)(sk, msg, len, flags, addr_len);
	monitor_exit_call();
	return rc;
}

static int monitor_sendpage(struct sock *sk, struct page *page, int offset, size_t size, int flags)
{
	int rc;

	atomic_inc(&monitor_inflight);
	if (decide(sk))
		rc = READ_ONCE(sk->sk_prot)->sendpage(sk, page, offset, size, flags);
	else
		rc = (sk->sk_family == AF_INET6 ? tcp6_sendpage_fn : tcp_sendpage_fn)(sk, page, offset, size, flags);
	monitor_exit_call();
	return rc;
}

/* close of a native socket: back to tcp_prot (kernel memory) before TCP's close, as kTLS does. */
static void native_close(struct sock *sk, long timeout)
{
	atomic_inc(&monitor_inflight); /* no module reference: exit waits for this counter */
	WRITE_ONCE(sk->sk_prot, fastivc_tcp_proto(sk));
	tcp_close_fn(sk, timeout);
	monitor_exit_call();
}

/* Module exit: every native socket gets tcp_prot back and loses its context. */
static void detach_natives(void)
{
	struct fastivc_sock *ctx;
	struct sock *batch[64];
	int n, i;

	do {
		n = 0;
		spin_lock_bh(&fastivc_socks_lock);
		list_for_each_entry(ctx, &fastivc_socks, node)
			if (ctx->mode == FIVC_MODE_NATIVE && n < ARRAY_SIZE(batch) &&
			    refcount_inc_not_zero(&ctx->sk->sk_refcnt))
				batch[n++] = ctx->sk;
		spin_unlock_bh(&fastivc_socks_lock);
		for (i = 0; i < n; i++) {
			struct sock *sk = batch[i];
			struct inet_connection_sock *icsk = inet_csk(sk);

			lock_sock(sk);
			ctx = fastivc_ctx_of(sk);
			if (ctx && icsk->icsk_ulp_ops == &fastivc_native_ulp_ops) {
				WRITE_ONCE(sk->sk_prot, fastivc_tcp_proto(sk));
				WRITE_ONCE(icsk->icsk_ulp_ops, NULL);
				rcu_assign_pointer(icsk->icsk_ulp_data, NULL);
				spin_lock_bh(&fastivc_socks_lock);
				list_del(&ctx->node);
				spin_unlock_bh(&fastivc_socks_lock);
				kfree_rcu(ctx, rcu);
			}
			release_sock(sk);
			sock_put(sk);
		}
	} while (n == ARRAY_SIZE(batch));
}

int fastivc_monitor_init(void)
{
	tcp_sendmsg_fn = tcp_prot.sendmsg;
	tcp_recvmsg_fn = tcp_prot.recvmsg;
	tcp_sendpage_fn = tcp_prot.sendpage;
	tcp_close_fn = tcp_prot.close;
	tcp6_sendmsg_fn = tcpv6_prot.sendmsg;
	tcp6_recvmsg_fn = tcpv6_prot.recvmsg;
	tcp6_sendpage_fn = tcpv6_prot.sendpage;
	fastivc_native_prot = tcp_prot;
	fastivc_native_prot.close = native_close;
	fastivc_native6_prot = tcpv6_prot;
	fastivc_native6_prot.close = native_close;
	fastivc_sock_build(&fastivc_native_prot, &fastivc_native6_prot, &inet_stream_ops);

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
	WRITE_ONCE(tcp_prot.sendmsg, tcp_sendmsg_fn);
	WRITE_ONCE(tcp_prot.recvmsg, tcp_recvmsg_fn);
	WRITE_ONCE(tcp_prot.sendpage, tcp_sendpage_fn);
	WRITE_ONCE(tcpv6_prot.sendmsg, tcp6_sendmsg_fn);
	WRITE_ONCE(tcpv6_prot.recvmsg, tcp6_recvmsg_fn);
	WRITE_ONCE(tcpv6_prot.sendpage, tcp6_sendpage_fn);
	detach_natives();
	/* a task preempted between a hook's entry and its counter increment; softirq users of the native proto */
	synchronize_rcu();
	synchronize_rcu_tasks();
	wait_event(monitor_idle, atomic_read(&monitor_inflight) == 0);
	/* and one between the decrement and its return */
	synchronize_rcu_tasks();
}
