// SPDX-License-Identifier: GPL-2.0-only
/*
 * fastivc.ko: module entry. For now it only announces itself and what it runs on; the Protocol Monitor, Tunnel
 * Manager, Tunnel Protocol and Socket Event Manager (shared/design.md) land in their own files.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <xen/xen.h>

#define FASTIVC_VERSION "0.1.0"

static int __init fastivc_init(void)
{
	pr_info("fastivc: version %s loaded (xen_domain=%d, pv=%d, initial_domain=%d)\n", FASTIVC_VERSION,
		xen_domain(), xen_pv_domain(), xen_initial_domain());
	return 0;
}

static void __exit fastivc_exit(void)
{
	pr_info("fastivc: unloaded\n");
}

module_init(fastivc_init);
module_exit(fastivc_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("fast-IVC: co-resident TCP connections on shared-memory tunnels between Xen domains");
MODULE_VERSION(FASTIVC_VERSION);
