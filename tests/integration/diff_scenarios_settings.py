# -*- coding: utf-8 -*-
"""Differential scenarios: sysext.conf / confext.conf, image policies and overlayfs options.

What systemd-sysext 262 showed here, and the scenarios hold both sides to:

* the config files are read inside ``--root=`` (``ROOT/etc/systemd/sysext.conf`` and the
  other directories, drop-ins in ``sysext.conf.d/``), drop-ins win over the main file, the
  command line (our parameters) wins over both; a bad value is ignored with a warning, a
  file that cannot be parsed voids all of the configuration;
* an image policy applies to image files, not directories; an image file it refuses makes
  the whole merge fail, and a refused refresh leaves the merge there as it was;
  ``root=squashfs``/``root=erofs`` restrict the file system type; a policy given in the
  config file applies like one given on the command line;
* a verity-protected image (``.verity`` and ``.roothash`` beside it) cannot be merged on a
  kernel without device-mapper; a root hash alone protects nothing;
* overlayfs options (SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS) are added to a read-only
  merge and replace the defaults of a writable one; mount flags among them become mount flags.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from differential import Scenario, Step, checks, seen, setups

EXT = 'var/lib/extensions'
MUT = 'var/lib/extensions.mutable'


def _conf(rel, text):
    def setup(r):
        os.makedirs(os.path.dirname(r.p(rel)), exist_ok=True)
        with open(r.p(rel), 'w') as f:
            f.write(text)
    return setup


def _images(r):
    r.add_dir(EXT, 'foo', files={'usr/share/foo/hello': 'foo\n', 'opt/foo/data': 'opt\n'})
    r.add_raw(EXT, 'sqx', files={'usr/share/sqx/hello': 'sqx\n'})


def _dirs_only(r):
    r.add_dir(EXT, 'foo')


def _replace(r):
    r.add_raw(EXT, 'sqx', files={'usr/share/sqx/hello': 'sqx 2\n'})


def _erofs(r):
    r.add_raw(EXT, 'ero', fs='erofs')


def _verity(with_tree=True):
    def setup(r):
        img = r.add_raw(EXT, 'vv', files={'usr/share/vv/hello': 'vv\n'})
        res = subprocess.run(['veritysetup', 'format', img, img[:-4] + '.verity'], text=True, capture_output=True,
                             check=True)
        root_hash = [ln.split(':', 1)[1].strip() for ln in res.stdout.splitlines() if ln.startswith('Root hash')][0]
        with open(img[:-4] + '.roothash', 'w') as f:
            f.write(root_hash + '\n')
        if not with_tree:
            os.remove(img[:-4] + '.verity')
    return setup


def _ro_state(step, expect_ro, h='usr'):
    def check(result):
        for side in ('systemd', 'ours'):
            m = result['steps'][step][side]['mounts'][h]
            assert m['fstype'] == 'overlay' and m['ro'] is expect_ro, (side, m)
    return check


def _failed(*steps):
    def check(result):
        for i in steps:
            for side in ('systemd', 'ours'):
                assert not result['steps'][i][side]['ok'], (i, side, result['steps'][i][side]['msg'])
    return check


def _options_have(step, *wanted, h='usr'):
    def check(result):
        for side in ('systemd', 'ours'):
            opts = result['steps'][step][side]['options'][h]
            assert opts is not None and set(wanted) <= set(opts['mount'] + opts['super']), (side, opts)
    return check


NO_VERITYSETUP = None if shutil.which('veritysetup') else 'veritysetup is not installed (scripts/bootstrap.sh debs)'


def _kernel_has_dm() -> bool:
    """Whether this kernel has device-mapper, as the engine decides it (imagecheck.device_mapper):
    not /dev/mapper/control, which libdevmapper (veritysetup, systemd-repart of another test run)
    creates for a moment even where the kernel has none, and which skipped the scenario below."""
    from lib.nsroot import engine
    engine()
    from ansible_collections.tucked.sysext.plugins.module_utils import imagecheck
    return imagecheck.device_mapper()


HAS_DM = _kernel_has_dm()

SCENARIOS = [
    # ---------------------------------------------------------------- config files
    Scenario('config-mutable-from-the-root',
             setups(_images, _conf('etc/systemd/sysext.conf', '[SysExt]\nMutable=ephemeral\n')),
             [Step('merge'), Step('write', path='usr/share/written', content='w\n'), Step('refresh'), Step('unmerge')],
             check=_ro_state(0, False)),
    Scenario('config-dropins-win',
             setups(_images, _conf('usr/lib/systemd/sysext.conf', '[SysExt]\nMutable=ephemeral\n'),
                    _conf('etc/systemd/sysext.conf.d/50-ro.conf', '[SysExt]\nMutable=no\n'),
                    _conf('usr/lib/systemd/sysext.conf.d/40-yes.conf', '[SysExt]\nMutable=yes\n')),
             [Step('merge'), Step('unmerge')], check=_ro_state(0, True)),
    Scenario('config-same-name-dropin-hides-vendor',
             setups(_images, _conf('usr/lib/systemd/sysext.conf.d/60-x.conf', '[SysExt]\nMutable=ephemeral\n'),
                    _conf('etc/systemd/sysext.conf.d/60-x.conf', '[SysExt]\nMutable=no\n')),
             [Step('merge'), Step('unmerge')], check=_ro_state(0, True)),
    Scenario('config-bad-values-ignored',
             setups(_images, _conf('etc/systemd/sysext.conf',
                                   '[Sysext]\nMutable=ephemeral\n[SysExt]\nMutable=bogus\nFoo=bar\nImagePolicy=root=bogus\n')),
             [Step('merge'), Step('unmerge')], check=_ro_state(0, True)),
    # a line without "=" and an empty value are only ignored; a broken section header (or an
    # image policy without "=") voids all of the configuration, what was read before included
    Scenario('config-ignored-lines',
             setups(_images, _conf('etc/systemd/sysext.conf', '[SysExt]\nMutable=ephemeral\nMutable\nMutable=\n')),
             [Step('merge'), Step('unmerge')], check=_ro_state(0, False)),
    Scenario('config-broken-file-voids-the-configuration',
             setups(_images, _conf('etc/systemd/sysext.conf', '[SysExt]\nMutable=ephemeral\n[SysExt\n'),
                    _conf('etc/systemd/sysext.conf.d/50-eph.conf', '[SysExt]\nMutable=ephemeral\n')),
             [Step('merge'), Step('unmerge')], check=_ro_state(0, True)),
    Scenario('config-unparsable-policy-voids-the-configuration',
             setups(_images, _conf('etc/systemd/sysext.conf', '[SysExt]\nMutable=ephemeral\nImagePolicy=nocolon\n')),
             [Step('merge'), Step('unmerge')], check=_ro_state(0, True)),
    Scenario('config-parameter-wins',
             setups(_images, _conf('etc/systemd/sysext.conf', '[SysExt]\nMutable=ephemeral\nImagePolicy=root=verity\n')),
             [Step('merge', args={'mutable': 'no', 'image_policy': '*'}), Step('unmerge')], check=_ro_state(0, True)),
    Scenario('config-image-policy-refuses',
             setups(_images, _conf('etc/systemd/sysext.conf', '[SysExt]\nImagePolicy=root=verity+signed\n')),
             [Step('merge'), Step('unmerge')], check=_failed(0)),
    Scenario('config-confext',
             setups(lambda r: r.add_dir('var/lib/confexts', 'site', cls='confext'),
                    _conf('etc/systemd/confext.conf', '[ConfExt]\nMutable=ephemeral\n'),
                    _conf('etc/systemd/sysext.conf', '[SysExt]\nMutable=no\n')),
             [Step('merge', cls='confext'), Step('write', cls='confext', path='etc/written', content='w\n'),
              Step('unmerge', cls='confext')],
             check=_ro_state(0, False, h='etc')),
    # ---------------------------------------------------------------- image policies
    Scenario('policy-refused-refresh-keeps-the-merge', _images,
             [Step('merge'), Step('hook', hook=_replace), Step('refresh', args={'image_policy': 'root=verity'}),
              Step('refresh'), Step('unmerge')],
             check=checks(_failed(2), seen(2, 'share/sqx/hello', 'sqx\n'), seen(3, 'share/sqx/hello', 'sqx 2\n'))),
    Scenario('policy-allows',
             setups(_images, _erofs),
             [Step('merge', args={'image_policy': 'root=unprotected+absent:usr=unprotected'}), Step('unmerge'),
              Step('merge', args={'image_policy': '*'}), Step('unmerge'),
              Step('merge', args={'image_policy': '=unprotected'}), Step('unmerge'),
              Step('merge', args={'image_policy': 'root=squashfs+erofs+growfs-off'}), Step('unmerge')]),
    Scenario('policy-refuses',
             _images,
             [Step('merge', args={'image_policy': p}) for p in
              ('root=absent', '~', 'usr=unprotected', '-', 'root=unused', 'root=read-only-on', 'root=erofs')]
             + [Step('merge'), Step('unmerge')],
             check=_failed(0, 1, 2, 3, 4, 5, 6)),
    Scenario('policy-does-not-apply-to-directories', _dirs_only,
             [Step('merge', args={'image_policy': '~'}), Step('unmerge')]),
    Scenario('policy-unparsable', _images,
             [Step('merge', args={'image_policy': p}) for p in ('root', 'root=bogus', 'bogus=open', 'root=open:root=open')]
             + [Step('merge'), Step('unmerge')],
             check=_failed(0, 1, 2, 3)),
    Scenario('policy-verity-without-device-mapper', setups(_images, _verity()),
             [Step('merge'), Step('merge', args={'image_policy': 'root=unprotected'}), Step('unmerge')],
             check=_failed(0, 1),
             skip=NO_VERITYSETUP or ('this kernel has device-mapper; the native engine refuses verity images '
                                     'where systemd would set them up' if HAS_DM else None)),
    Scenario('policy-root-hash-alone-protects-nothing', setups(_images, _verity(with_tree=False)),
             [Step('merge', args={'image_policy': 'root=unprotected'}), Step('unmerge')], skip=NO_VERITYSETUP),
    # ---------------------------------------------------------------- overlayfs options
    Scenario('overlay-options-read-only', _images,
             [Step('merge', args={'overlay_options': 'redirect_dir=nofollow,noatime'}), Step('unmerge')],
             check=_options_have(0, 'redirect_dir=nofollow', 'noatime')),
    Scenario('overlay-options-replace-the-mutable-defaults', _images,
             [Step('merge', args={'mutable': 'ephemeral', 'overlay_options': 'redirect_dir=nofollow'}),
              Step('write', path='usr/share/written', content='w\n'), Step('unmerge')],
             check=_options_have(0, 'redirect_dir=nofollow', 'relatime')),
    Scenario('overlay-options-defaults', _images,
             [Step('merge', args={'mutable': 'ephemeral'}), Step('unmerge'), Step('merge'), Step('unmerge')],
             check=checks(_options_have(0, 'redirect_dir=on', 'noatime'), _ro_state(2, True))),
]
