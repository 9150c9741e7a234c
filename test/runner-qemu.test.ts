import test from 'ava';
import {
  DEFAULT_DOM0_CMDLINE,
  DEFAULT_XEN_CMDLINE,
  LabConfigError,
  buildQemuArgs,
  dom0Cmdline,
  escapeQemuCommas,
  shellQuote,
} from '../lab/runner/qemu.js';

const base = { xen: '/b/xen', kernel: '/b/vmlinuz', initrd: '/b/initrd.img', disk: '/b/lab.img' };

function argAfter(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i < 0 ? undefined : args[i + 1];
}

test('default command line', (t) => {
  const args = buildQemuArgs(base);
  t.deepEqual(args, [
    '-accel', 'tcg', '-cpu', 'qemu64', '-m', '3072', '-smp', '2', '-display', 'none', '-monitor', 'none',
    '-serial', 'stdio', '-no-reboot', '-nic', 'none',
    '-kernel', '/b/xen',
    '-append', DEFAULT_XEN_CMDLINE,
    '-initrd', `/b/vmlinuz ${DEFAULT_DOM0_CMDLINE},/b/initrd.img`,
    '-drive', 'file=/b/lab.img,format=raw,if=virtio,readonly=on',
  ]);
  // Xen's own command line is not split by QEMU: its commas stay single.
  t.true(argAfter(args, '-append')?.includes('com1=115200,8n1 dom0_mem=1536M,max:1536M'));
});

test('commas in the dom0 command line are doubled inside -initrd; fault and extras are appended', (t) => {
  const args = buildQemuArgs({
    ...base,
    memMiB: 2048,
    fault: 'drop-grant',
    dom0CmdlineExtra: ' xen_blkfront.max=4,8 ',
    xenCmdlineExtra: 'sched=credit2,x',
  });
  t.is(argAfter(args, '-m'), '2048');
  t.is(argAfter(args, '-append'), `${DEFAULT_XEN_CMDLINE} sched=credit2,x`);
  t.is(
    argAfter(args, '-initrd'),
    `/b/vmlinuz ${DEFAULT_DOM0_CMDLINE} xen_blkfront.max=4,,8 fastivc.fault=drop-grant,/b/initrd.img`,
  );
  t.is(dom0Cmdline({ fault: 'x' }), `${DEFAULT_DOM0_CMDLINE} fastivc.fault=x`);
  t.is(escapeQemuCommas('a,b,,c'), 'a,,b,,,,c');
});

test('paths with commas, spaces or control characters are rejected with a clear error', (t) => {
  for (const [key, bad] of [
    ['kernel', '/b/vm,linuz'],
    ['initrd', '/b/my initrd.img'],
    ['disk', '/b/lab,format=qcow2.img'],
    ['xen', '/b/xen\n'],
    ['xen', ''],
  ] as const) {
    const e = t.throws(() => buildQemuArgs({ ...base, [key]: bad }), { instanceOf: LabConfigError });
    t.true(e?.message.startsWith(`${key}:`), e?.message);
  }
  t.throws(() => buildQemuArgs({ ...base, fault: 'a b' }), { instanceOf: LabConfigError, message: /fault/ });
  t.throws(() => buildQemuArgs({ ...base, memMiB: 12 }), { instanceOf: LabConfigError });
});

test('shellQuote renders argv for logs', (t) => {
  t.is(shellQuote(['qemu', '-append', 'a b', "it's"]), `qemu -append 'a b' 'it'\\''s'`);
});
