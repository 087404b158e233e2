# -*- coding: utf-8 -*-
"""A digest of everything a write would change in a tree: names, modes, sizes, mtimes and,
with ``contents``, the bytes of regular files. Tests compare it before and after."""

import hashlib
import os


def tree_digest(root, contents: bool = True) -> str:
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            h.update(('%s %o %d %d\n' % (os.path.relpath(p, root), st.st_mode, st.st_size, st.st_mtime_ns)).encode())
            if contents and os.path.isfile(p) and not os.path.islink(p):
                with open(p, 'rb') as f:
                    h.update(f.read())
    return h.hexdigest()
