# -*- coding: utf-8 -*-
"""The verity.d certificates a signature is checked against in userspace: found as systemd's
conf_files_list() finds them with a root, every name resolved inside the root."""

import os

from ansible_collections.tucked.sysext.plugins.module_utils import dmverity


def test_certificates_are_resolved_inside_the_root(tmp_path):
    root = tmp_path / 'root'
    outside = tmp_path / 'outside.crt'          # this machine's file, not the root's
    outside.write_text('machine\n')
    for d in ('etc/verity.d', 'usr/lib/verity.d', 'srv'):
        (root / d).mkdir(parents=True)
    (root / 'srv/in.crt').write_text('in the root\n')
    os.symlink(str(outside), root / 'etc/verity.d/a.crt')        # re-rooted: ROOT/.../outside.crt, missing
    os.symlink('/srv/in.crt', root / 'etc/verity.d/b.crt')       # re-rooted: ROOT/srv/in.crt
    os.symlink('/dev/null', root / 'etc/verity.d/c.crt')         # masks usr/lib's c.crt
    (root / 'usr/lib/verity.d/c.crt').write_text('masked\n')
    (root / 'usr/lib/verity.d/d.crt').write_text('vendor\n')
    (root / 'etc/verity.d/e.crt').write_text('')                 # empty: masks too
    (root / 'usr/lib/verity.d/e.crt').write_text('masked\n')
    (root / 'usr/lib/verity.d/f.pem').write_text('not a .crt\n')
    assert dmverity.certificates(str(root)) == [str(root / 'srv/in.crt'), str(root / 'usr/lib/verity.d/d.crt')]
