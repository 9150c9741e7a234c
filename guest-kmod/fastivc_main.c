// SPDX-License-Identifier: GPL-2.0-only
/*
 * fastivc.ko: module entry and parameters. The parts are described in fastivc.h.
 *
 * Parameters (also writable at run time under /sys/module/fastivc/parameters/; new tunnels use the new values):
 *   channels       channels per tunnel, 1..16, or 0 (the default): sized by demand (geometry.c)
 *   channel_size   bytes per channel, a multiple of 4096 in 4096..262144, or 0 (the default): sized by demand.
 *                  The thesis' own geometry is channels=4 channel_size=4096.
 *   auto_bytes     bytes per tunnel that demand sizing gives a socket whose buffers TCP autotunes (geometry.c)
 *   enable         0: every socket the monitor decides stays on TCP (reason `disabled`; a native socket may
 *                  be decided again later, see README "How a connection moves")
 *   exclude_ports  comma-separated TCP ports whose connections stay on TCP (reason `excluded_port`), e.g. a
 *                  control channel that must not depend on the tunnel
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/moduleparam.h>
#include <linux/bitmap.h>
#include <linux/rcupdate.h>
#include <xen/xen.h>
#include "fastivc.h"

unsigned int fastivc_channels;     /* 0: by demand */
unsigned int fastivc_channel_size; /* 0: by demand */
bool fastivc_enable = true;
domid_t fastivc_domid;
struct workqueue_struct *fastivc_wq;

static int set_channels(const char *val, const struct kernel_param *kp)
{
	unsigned int v;
	int rc = kstrtouint(val, 0, &v);

	if (rc)
		return rc;
	if (v > IVC_MAX_CHANNELS)
		return -EINVAL;
	WRITE_ONCE(fastivc_channels, v);
	return 0;
}

static int set_channel_size(const char *val, const struct kernel_param *kp)
{
	unsigned int v;
	int rc = kstrtouint(val, 0, &v);

	if (rc)
		return rc;
	if (v && !ivc_geometry_ok(1, v))
		return -EINVAL;
	WRITE_ONCE(fastivc_channel_size, v);
	return 0;
}

static const struct kernel_param_ops channels_ops = { .set = set_channels, .get = param_get_uint };
static const struct kernel_param_ops channel_size_ops = { .set = set_channel_size, .get = param_get_uint };
module_param_cb(channels, &channels_ops, &fastivc_channels, 0644);
MODULE_PARM_DESC(channels, "channels per new tunnel, 1..16, or 0 (default): sized by demand");
module_param_cb(channel_size, &channel_size_ops, &fastivc_channel_size, 0644);
MODULE_PARM_DESC(channel_size, "bytes per channel of new tunnels, 4096..262144, a multiple of 4096, or 0 (default): sized by demand");
module_param_named(enable, fastivc_enable, bool, 0644);
MODULE_PARM_DESC(enable, "move co-resident connections to tunnels (default 1)");

/* exclude_ports: a bitmap of 65536 ports, replaced as a whole under RCU when the parameter is written */
static unsigned long __rcu *excluded;
static char exclude_ports_str[256];

bool fastivc_port_excluded(u16 port)
{
	unsigned long *b;
	bool r = false;

	rcu_read_lock();
	b = rcu_dereference(excluded);
	if (b)
		r = test_bit(port, b);
	rcu_read_unlock();
	return r;
}

static int set_exclude_ports(const char *val, const struct kernel_param *kp)
{
	unsigned long *b, *old;
	char *s, *p, *tok;
	unsigned int port;

	if (strlen(val) >= sizeof(exclude_ports_str))
		return -ENOSPC;
	b = bitmap_zalloc(65536, GFP_KERNEL);
	s = kstrdup(val, GFP_KERNEL);
	if (!b || !s) {
		bitmap_free(b);
		kfree(s);
		return -ENOMEM;
	}
	p = strim(s);
	while ((tok = strsep(&p, ",")) != NULL) {
		if (!*tok)
			continue;
		if (kstrtouint(tok, 10, &port) || port == 0 || port > 65535) {
			bitmap_free(b);
			kfree(s);
			return -EINVAL;
		}
		set_bit(port, b);
	}
	kfree(s);
	strscpy(exclude_ports_str, val, sizeof(exclude_ports_str));
	strim(exclude_ports_str);
	old = rcu_replace_pointer(excluded, b, true);
	synchronize_rcu();
	bitmap_free(old);
	return 0;
}

static int get_exclude_ports(char *buf, const struct kernel_param *kp)
{
	return scnprintf(buf, PAGE_SIZE, "%s\n", exclude_ports_str);
}

static const struct kernel_param_ops exclude_ops = { .set = set_exclude_ports, .get = get_exclude_ports };
module_param_cb(exclude_ports, &exclude_ops, NULL, 0644);
MODULE_PARM_DESC(exclude_ports, "comma-separated TCP ports kept on TCP (default none)");

static int __init fastivc_init(void)
{
	struct xen_evtmgr_info info;
	int rc;

	if (!xen_domain())
		return -ENODEV;
	rc = dem_info(&info);
	if (rc) {
		pr_err("fastivc: the hypervisor has no Domain Event Manager (evtmgr_op: %d); is this Xen built with xen-patches/ and booted with evtmgr=1?\n",
		       rc);
		return -ENODEV;
	}
	if (info.abi_version != EVTMGR_ABI_VERSION || info.virq != EVTMGR_VIRQ) {
		pr_err("fastivc: DEM ABI %u / VIRQ %u, this module speaks ABI %u / VIRQ %u\n", info.abi_version,
		       info.virq, EVTMGR_ABI_VERSION, EVTMGR_VIRQ);
		return -ENODEV;
	}
	fastivc_domid = info.domid;
	fastivc_wq = alloc_workqueue("fastivc", WQ_MEM_RECLAIM | WQ_HIGHPRI, 0);
	if (!fastivc_wq)
		return -ENOMEM;
	ivc_link_init();
	rc = fastivc_stats_init();
	if (rc)
		goto fail_wq;
	rc = fastivc_sem_init();
	if (rc)
		goto fail_stats;
	rc = fastivc_monitor_init();
	if (rc)
		goto fail_sem;
	rc = fastivc_lifecycle_init();
	if (rc)
		goto fail_monitor;
	if (fastivc_channels && fastivc_channel_size)
		pr_info("fastivc: version %s loaded (domain %u, %u channels x %u bytes per tunnel, xen_domain=%d, pv=%d, initial_domain=%d)\n",
			FASTIVC_VERSION, fastivc_domid, fastivc_channels, fastivc_channel_size, xen_domain(),
			xen_pv_domain(), xen_initial_domain());
	else
		pr_info("fastivc: version %s loaded (domain %u, tunnels sized by demand, %u bytes when autotuned, xen_domain=%d, pv=%d, initial_domain=%d)\n",
			FASTIVC_VERSION, fastivc_domid, fastivc_auto_bytes, xen_domain(), xen_pv_domain(),
			xen_initial_domain());
	return 0;
fail_monitor:
	fastivc_monitor_exit();
fail_sem:
	fastivc_sem_exit();
fail_stats:
	fastivc_stats_exit();
fail_wq:
	ivc_link_exit();
	ivc_link_free();
	destroy_workqueue(fastivc_wq);
	return rc;
}

static void __exit fastivc_exit(void)
{
	fastivc_lifecycle_exit();
	fastivc_monitor_exit();
	fastivc_sem_exit();
	rcu_barrier(); /* tunnel releases queued with queue_rcu_work() */
	flush_workqueue(fastivc_wq);
	ivc_link_exit(); /* links given back: parked ones unmapped, pooled ones waiting for their receivers */
	ivc_tunnel_release_drain(); /* and those waiting for a receiver to unmap */
	flush_workqueue(fastivc_wq);
	fastivc_stats_exit();
	ivc_link_free(); /* /proc/fastivc/peers is gone: nobody reads the per-peer entries */
	destroy_workqueue(fastivc_wq);
	bitmap_free(rcu_dereference_protected(excluded, true));
	pr_info("fastivc: unloaded\n");
}

module_init(fastivc_init);
module_exit(fastivc_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("fast-IVC: co-resident TCP connections on shared-memory tunnels between Xen domains");
MODULE_VERSION(FASTIVC_VERSION);
