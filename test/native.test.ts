import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { AddonLoadError, XenError, addonCandidates, loadBinding, probe } from '../native/lib/index.js';
import { createMockBinding } from '../native/lib/mock.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const addon = path.join(root, 'native', 'build', 'Release', 'fastivc.node');

test.before(() => {
  if (existsSync(addon)) return;
  const gyp = path.join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  const args = [gyp, 'rebuild', '--directory', path.join(root, 'native')];
  if (existsSync('/usr/include/node/node_api.h')) args.push('--nodedir=/usr');
  execFileSync(process.execPath, args, { stdio: 'ignore', timeout: 180_000 });
});

test('addon is found at native/build/Release/fastivc.node', (t) => {
  t.true(addonCandidates({}).includes(addon));
  t.deepEqual(addonCandidates({ FASTIVC_ADDON: '/x/y.node' }), ['/x/y.node']);
  t.is(loadBinding().defaultPrivcmdPath, '/dev/xen/privcmd');
});

test('probe of a missing device rejects with XenError ENOENT and a clear message', async (t) => {
  const e = await t.throwsAsync(probe('/nonexistent/privcmd'), { instanceOf: XenError });
  t.is(e?.code, 'ENOENT');
  t.is(e?.errno, 2);
  t.is(e?.syscall, 'open');
  t.is(e?.path, '/nonexistent/privcmd');
  t.is(e?.message, 'no Xen here: /nonexistent/privcmd does not exist (is this dom0 with xen-privcmd loaded?)');
});

test('probe opens the given path read-write: /dev/null works', async (t) => {
  t.deepEqual(await probe('/dev/null'), { device: '/dev/null', ok: true });
});

test('probe without a path uses /dev/xen/privcmd', async (t) => {
  if (existsSync('/dev/xen/privcmd')) {
    // Running in dom0: either it opens or it is refused with a typed error.
    try {
      t.deepEqual(await probe(), { device: '/dev/xen/privcmd', ok: true });
    } catch (e) {
      t.true(e instanceof XenError);
    }
    return;
  }
  const e = await t.throwsAsync(probe(), { instanceOf: XenError });
  t.is(e?.code, 'ENOENT');
  t.regex(e?.message ?? '', /^no Xen here: \/dev\/xen\/privcmd does not exist/);
});

test('other errno values keep their name: a directory is EISDIR', async (t) => {
  const e = await t.throwsAsync(probe('/'), { instanceOf: XenError });
  t.is(e?.code, 'EISDIR');
});

test('bad arguments throw TypeError synchronously from the binding', (t) => {
  const b = loadBinding();
  t.throws(() => b.probe(42 as unknown as string), { instanceOf: TypeError, message: /path must be a string/ });
  t.throws(() => b.probe(''), { instanceOf: TypeError });
});

test('a missing addon file gives AddonLoadError with the build command', (t) => {
  t.throws(() => loadBinding('/nonexistent/fastivc.node'), { instanceOf: AddonLoadError, message: /build:native/ });
});

test('the mock binding follows the same contract', async (t) => {
  const mock = createMockBinding({ '/dev/xen/privcmd': 'ok', '/locked': 'EACCES' });
  t.deepEqual(await probe(undefined, mock), { device: '/dev/xen/privcmd', ok: true });
  const e = await t.throwsAsync(probe('/locked', mock), { instanceOf: XenError });
  t.is(e?.code, 'EACCES');
  const real = await t.throwsAsync(probe('/nonexistent/privcmd'), { instanceOf: XenError });
  const fake = await t.throwsAsync(probe('/nonexistent/privcmd', mock), { instanceOf: XenError });
  t.is(fake?.message, real?.message);
  t.is(fake?.code, real?.code);
});
