/**
 * An in-memory stand-in for the native binding, for tests of code that uses it (ivctop, CLI commands) on machines
 * without Xen. It follows the addon's contract: unknown devices reject with ENOENT and the same messages.
 */
import { DEFAULT_PRIVCMD, type FastivcBinding, type ProbeResult } from './index.js';

export type MockDeviceState = 'ok' | 'ENOENT' | 'EACCES' | 'ENODEV';

const ERRNO: Record<Exclude<MockDeviceState, 'ok'>, number> = { ENOENT: 2, EACCES: 13, ENODEV: 19 };

function systemError(code: Exclude<MockDeviceState, 'ok'>, device: string): Error {
  const message =
    code === 'ENOENT'
      ? `no Xen here: ${device} does not exist (is this dom0 with xen-privcmd loaded?)`
      : code === 'EACCES'
        ? `permission denied opening ${device} (run as root in dom0)`
        : `no Xen here: ${device} exists but no device answers (No such device; is this running under Xen?)`;
  return Object.assign(new Error(message), { code, errno: ERRNO[code], syscall: 'open', path: device });
}

/** A binding whose devices behave as listed (missing ones: ENOENT). */
export function createMockBinding(devices: Record<string, MockDeviceState> = {}): FastivcBinding {
  return {
    defaultPrivcmdPath: DEFAULT_PRIVCMD,
    probe(path?: string): Promise<ProbeResult> {
      if (path !== undefined && typeof path !== 'string') {
        throw new TypeError('probe(path): path must be a string');
      }
      const device = path ?? DEFAULT_PRIVCMD;
      const state = devices[device] ?? 'ENOENT';
      return state === 'ok' ? Promise.resolve({ device, ok: true }) : Promise.reject(systemError(state, device));
    },
  };
}
