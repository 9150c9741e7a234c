// SPDX-License-Identifier: GPL-2.0-only
/*
 * dem_hcall.ko: lab-only access to the DEM hypercall (evtmgr_op, 43) from a domU's user space, for dem-probe.
 *
 * Linux restricts /dev/xen/privcmd in an unprivileged domU (its hypercall ioctl answers -EPERM there), so the
 * conformance tests that must run in a domU go through this device instead. Its ioctl has exactly the privcmd
 * hypercall ABI (struct privcmd_hypercall, IOCTL_PRIVCMD_HYPERCALL) so dem-probe only changes the device path, and
 * it forwards nothing but __HYPERVISOR_evtmgr_op: the guest argument pointer goes to Xen as it came from user
 * space, exactly as privcmd does, so bad user pointers reach the hypervisor's own checks.
 */
#include <linux/module.h>
#include <linux/miscdevice.h>
#include <linux/fs.h>
#include <linux/uaccess.h>
#include <xen/xen.h>
#include <xen/privcmd.h>
#include <asm/xen/hypercall.h>

#define EVTMGR_HYPERCALL 43

static long dem_hcall_ioctl(struct file *file, unsigned int cmd, unsigned long udata)
{
	struct privcmd_hypercall hc;

	if (cmd != IOCTL_PRIVCMD_HYPERCALL)
		return -ENOTTY;
	if (copy_from_user(&hc, (void __user *)udata, sizeof(hc)))
		return -EFAULT;
	if (hc.op != EVTMGR_HYPERCALL)
		return -EINVAL;
	return privcmd_call(EVTMGR_HYPERCALL, hc.arg[0], hc.arg[1], hc.arg[2], hc.arg[3], hc.arg[4]);
}

static const struct file_operations dem_hcall_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = dem_hcall_ioctl,
};

static struct miscdevice dem_hcall_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "fastivc-dem-hcall",
	.fops = &dem_hcall_fops,
	.mode = 0600,
};

static int __init dem_hcall_init(void)
{
	if (!xen_domain())
		return -ENODEV;
	return misc_register(&dem_hcall_dev);
}

static void __exit dem_hcall_exit(void)
{
	misc_deregister(&dem_hcall_dev);
}

module_init(dem_hcall_init);
module_exit(dem_hcall_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("fastivc lab: the DEM hypercall for dem-probe in a domU");
