# -*- coding: utf-8 -*-
"""Small Debian packages made for tests with dpkg-deb --build."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile


def make_deb(directory: str, package: str, version: str, arch: str = 'amd64', files: dict | None = None) -> str:
    """A .deb of ``package`` holding ``files`` (path -> text, or bytes) in ``directory``; returns its path."""
    root = tempfile.mkdtemp(prefix='deb-')
    try:
        os.makedirs(os.path.join(root, 'DEBIAN'))
        with open(os.path.join(root, 'DEBIAN', 'control'), 'w') as f:
            f.write('Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: tests <t@example.org>\n'
                    'Description: test package\n' % (package, version, arch))
        for rel, content in (files or {}).items():
            dst = os.path.join(root, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(dst, 'wb') as f:
                f.write(content if isinstance(content, bytes) else content.encode())
        out = os.path.join(directory, '%s_%s_%s.deb' % (package, version.replace(':', '%3a'), arch))
        subprocess.run(['dpkg-deb', '--root-owner-group', '-Znone', '--build', root, out], check=True,
                       capture_output=True)
        return out
    finally:
        shutil.rmtree(root)
