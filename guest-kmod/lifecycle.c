// SPDX-License-Identifier: GPL-2.0-only
/*
 * lifecycle.c: save, restore and live migration (xl save, xl restore, xl migrate). Before this domain suspends,
 * every tunnel goes back to TCP, with nothing lost or reordered (ivc_ring.h "Detach"):
 *   - a receiving tunnel records what its reader consumed, says IVC_RX_DETACHED and is unmapped; its sender, the
 *     peer, sends the rest again on TCP;
 *   - a sending tunnel asks its receiver to detach (IVC_TX_DETACH, EVENT_SEND_CLOSE_TUNNEL) and waits until the
 *     receiver has, and no longer maps our pages (their grants are ended); what the receiver did not consume goes
 *     out on TCP from our own pages (FIVC_DIR_RESEND, queued before the suspend).
 * FASTIVC_DETACH_WAIT bounds the wait for all of them: a peer that has not answered by then loses that connection
 * (reset, reason `suspend`), since its unread bytes could not be recovered and it would keep our pages mapped
 * across the save. So when Xen saves the domain no page of another domain is mapped here and, unless a peer
 * misbehaved, no page of ours is granted. While the domain suspends it refuses new tunnels (fastivc_rx_create).
 *
 * After the resume (restored, migrated, or the suspend cancelled) every connection is plain TCP; the next send
 * creates a tunnel again, to the peer's domain as the DEM knows it then (sock.c tx_moving: a restored peer has
 * another domain id, and so may this domain: sem.c's syscore resume reads it again). The peer of a saved domain sees
 * its connections wait, as over TCP: its bytes go to TCP and are retransmitted until we are back.
 *
 * How the module learns of the suspend: Linux's Xen suspend (drivers/xen/manage.c do_suspend) freezes tasks, then
 * calls the devices' freeze callbacks (dpm_suspend_start(PMSG_FREEZE)) in the reverse order of their registration,
 * then suspends xenstore and the event channels. Our device is registered at load, after netfront, so it is frozen
 * first: TCP still reaches the network while the tunnels detach, and VIRQ_EVTMGR and the SEM's work still run. The
 * restore callback (thaw, if the suspend was cancelled) runs after the resume.
 */
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/delay.h>
#include <linux/slab.h>
#include <linux/platform_device.h>
#include <linux/pm.h>
#include "fastivc.h"

/*
 * How long the suspend waits for the receivers of our tunnels to detach, all together: a peer's module answers from
 * its SEM work within milliseconds (at worst its retry list's 20 ms per held socket, or its 1 s tick should our
 * event be lost), and the save waits for us meanwhile.
 */
#define FASTIVC_DETACH_WAIT (3 * HZ)
/* Sockets handled per pass (an array of references on the stack); passes repeat until none is left. */
#define LIFECYCLE_BATCH 64

bool fastivc_suspending;
static struct platform_device *lifecycle_pdev;

/*
 * Takes a reference to up to LIFECYCLE_BATCH sockets whose context match() selects, in list order from the first;
 * returns how many. Lock hierarchy: the socket lock is taken after fastivc_socks_lock is dropped.
 */
static int collect(bool (*match)(const struct fastivc_sock *ctx), struct sock **socks)
{
	struct fastivc_sock *ctx;
	int n = 0;

	spin_lock_bh(&fastivc_socks_lock);
	list_for_each_entry(ctx, &fastivc_socks, node) {
		if (n == LIFECYCLE_BATCH)
			break;
		if (match(ctx) && refcount_inc_not_zero(&ctx->sk->sk_refcnt))
			socks[n++] = ctx->sk;
	}
	spin_unlock_bh(&fastivc_socks_lock);
	return n;
}

/* A tunnel still to detach: a receiving one, or a sending one whose receiver was not asked yet (resends too). */
static bool to_detach(const struct fastivc_sock *ctx)
{
	enum fastivc_dir rx = READ_ONCE(ctx->rx_state);

	if (READ_ONCE(ctx->mode) != FIVC_MODE_TUNNEL)
		return false;
	return (READ_ONCE(ctx->rx) && (rx == FIVC_DIR_OPEN || rx == FIVC_DIR_REVERTED)) ||
	       (READ_ONCE(ctx->tx) && !READ_ONCE(ctx->tx_detach_asked));
}

static bool asked(const struct fastivc_sock *ctx)
{
	return READ_ONCE(ctx->tx_detach_asked) != 0;
}

/* Runs act() on each socket of socks under its lock (the context may have gone meanwhile), and drops the references. */
static void each(struct sock **socks, int n, bool (*act)(struct fastivc_sock *ctx), unsigned int *count)
{
	struct fastivc_sock *ctx;
	int i;

	for (i = 0; i < n; i++) {
		lock_sock(socks[i]);
		ctx = fastivc_ctx(socks[i]);
		if (ctx && act(ctx))
			(*count)++;
		release_sock(socks[i]);
		sock_put(socks[i]);
	}
}

/* true if the connection was reset (a receiver that found the sender's FIN behind unread bytes) */
static bool act_suspend(struct fastivc_sock *ctx)
{
	fastivc_sock_suspend(ctx);
	return READ_ONCE(ctx->mode) == FIVC_MODE_BROKEN;
}

static bool act_answered(struct fastivc_sock *ctx)
{
	return !fastivc_sock_detach_answered(ctx);
}

static bool act_finish(struct fastivc_sock *ctx)
{
	return fastivc_sock_suspend_finish(ctx);
}

static int fastivc_freeze(struct device *dev)
{
	struct sock *socks[LIFECYCLE_BATCH];
	unsigned long until = jiffies + FASTIVC_DETACH_WAIT;
	unsigned int handled = 0, waiting, reset = 0;
	int n, passes = 0;

	WRITE_ONCE(fastivc_suspending, true);
	/* a tunnel the SEM's work was mapping as the flag went up is in its socket once the work is done */
	flush_workqueue(fastivc_wq);
	ivc_tunnel_release_kept(); /* lab only (fault_inject never_unmap): nothing of a peer's stays mapped */
	ivc_link_flush(); /* parked tunnels unmapped now; pooled ones asked back (their grants end in step 4) */
	/* 1. receivers detach, senders ask theirs to (a socket handled leaves the match) */
	while ((n = collect(to_detach, socks)) > 0 && passes++ < 1024) {
		handled += n;
		each(socks, n, act_suspend, &reset);
	}
	/* 2. the answers: the peers' modules detach from their SEM work */
	while ((n = collect(asked, socks)) > 0) {
		waiting = 0;
		each(socks, n, act_answered, &waiting);
		if (!waiting) { /* these have answered: finished, they leave the match (their grants ended) */
			n = collect(asked, socks);
			each(socks, n, act_finish, &reset);
			continue;
		}
		if (time_after(jiffies, until))
			break;
		msleep(10);
	}
	/* 3. what is left: the answered ones get their resends, the silent ones are reset */
	passes = 0;
	while ((n = collect(asked, socks)) > 0 && passes++ < 1024)
		each(socks, n, act_finish, &reset);
	/* 4. every unmap done before Xen saves our memory: the releases are queued with queue_rcu_work() ... */
	rcu_barrier();
	flush_workqueue(fastivc_wq);
	/* ... and our released pages' grants ended, a second at most for receivers still letting go */
	until = jiffies + HZ;
	while (ivc_tunnel_releases_waiting() && time_before(jiffies, until))
		msleep(10);
	atomic64_inc(&fastivc_stats.suspends);
	pr_info("fastivc: suspending: %u connections with tunnels went back to TCP, %u of them reset (unread bytes behind a FIN, or no answer from the peer in %u ms)\n",
		handled, reset, jiffies_to_msecs(FASTIVC_DETACH_WAIT));
	return 0;
}

/* Resumed: restored or migrated (restore), or the suspend was cancelled (thaw). Tunnels are created again on demand. */
static int fastivc_resume(struct device *dev)
{
	WRITE_ONCE(fastivc_suspending, false);
	pr_info("fastivc: resumed as domain %u; connections tunnel again with their next sends\n",
		READ_ONCE(fastivc_domid));
	return 0;
}

static const struct dev_pm_ops fastivc_pm_ops = {
	.freeze = fastivc_freeze,
	.thaw = fastivc_resume,
	.restore = fastivc_resume,
};

static int fastivc_lifecycle_probe(struct platform_device *pdev)
{
	return 0;
}

static struct platform_driver fastivc_lifecycle_driver = {
	.probe = fastivc_lifecycle_probe,
	.driver = {
		.name = "fastivc",
		.pm = &fastivc_pm_ops,
	},
};

int fastivc_lifecycle_init(void)
{
	int rc = platform_driver_register(&fastivc_lifecycle_driver);

	if (rc)
		return rc;
	lifecycle_pdev = platform_device_register_simple("fastivc", PLATFORM_DEVID_NONE, NULL, 0);
	if (IS_ERR(lifecycle_pdev)) {
		platform_driver_unregister(&fastivc_lifecycle_driver);
		return PTR_ERR(lifecycle_pdev);
	}
	return 0;
}

void fastivc_lifecycle_exit(void)
{
	platform_device_unregister(lifecycle_pdev);
	platform_driver_unregister(&fastivc_lifecycle_driver);
}
