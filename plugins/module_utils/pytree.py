# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The files of a relocated Python: the packages' trees merged as dpkg would install them,
symlinks resolved inside that merged tree, the standard library files kept (and those
dropped), and the shared libraries the interpreter and its extension modules need, found by
their ``DT_NEEDED`` names, except glibc's own."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field

from . import elf, pylauncher
from .buildtools import BuildError, hash_file

PREFIX = 'usr/lib/tucked-sysext/python'
MAX_LINKS = 40
# What the standard library loses: tests and test-only extension modules, the GUI (no Tk in
# the image), pip's bundled wheels, and site hooks outside the prefix (Debian's
# sitecustomize.py is a link to the host's /etc/python3.X/sitecustomize.py).
DROP_DIRS = ('test', 'idlelib', 'tkinter', 'turtledemo', 'ensurepip/_bundled', 'lib2to3/tests')
DROP_NAMES = ('sitecustomize.py', 'turtle.py')
DROP_DIR_NAMES = ('test', 'tests', 'idle_test')       # a test package inside any package
_DROP_DYNLOAD = re.compile(r'^(_test[a-z_]*|_ctypes_test|_xxtestfuzz|xxlimited(_35)?|_tkinter)\.')
# glibc's own libraries (Debian's libc6), by soname: never bundled, the host's are used.
# (libnsl.so.2 is libnsl2's, libcrypt.so.1 libxcrypt's: those are bundled.)
_GLIBC = re.compile(r'^(libc\.so\.6(\.1)?|libm\.so\.6(\.1)?|libpthread\.so\.0|libdl\.so\.2(\.1)?|librt\.so\.1|'
                    r'libutil\.so\.1(\.1)?|libresolv\.so\.2|libanl\.so\.1|libnsl\.so\.1(\.1)?|libBrokenLocale\.so\.1|'
                    r'libmvec\.so\.1|libc_malloc_debug\.so\.0|libthread_db\.so\.1|libcidn\.so\.1|'
                    r'libnss_[a-z0-9_]+\.so\.2|libmemusage\.so|libpcprofile\.so|'
                    r'ld-linux[a-z0-9_.-]*\.so\.[0-9]+|ld64\.so\.[0-9]+|ld\.so\.1)$')


def is_glibc(soname: str) -> bool:
    return bool(_GLIBC.match(soname))


@dataclass(frozen=True)
class Node:
    kind: str                 # 'f', 'l' or 'd'
    host: str                 # the unpacked path
    package: str
    target: str = ''          # of a symlink


@dataclass
class Index:
    """The packages' files by path relative to /, as they would be installed together."""
    nodes: dict = field(default_factory=dict)

    def add(self, package: str, root: str) -> None:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, root)
            for n in sorted(dirnames + filenames):
                host = os.path.join(dirpath, n)
                rel = n if rel_dir == '.' else rel_dir + '/' + n
                st = os.lstat(host)
                if stat.S_ISLNK(st.st_mode):
                    node = Node('l', host, package, os.readlink(host))
                elif stat.S_ISDIR(st.st_mode):
                    node = Node('d', host, package)
                elif stat.S_ISREG(st.st_mode):
                    node = Node('f', host, package)
                else:
                    raise BuildError('%s of the package %s is neither a file, a directory nor a symlink' % (
                        '/' + rel, package))
                self._put(rel, node)
            # a symlink to a directory is listed among dirnames: it was recorded, never walk it
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]

    def _put(self, rel: str, node: Node) -> None:
        old = self.nodes.get(rel)
        if old is None:
            self.nodes[rel] = node
            return
        same = (old.kind == node.kind == 'd' or (old.kind == node.kind == 'l' and old.target == node.target)
                or (old.kind == node.kind == 'f' and hash_file(old.host) == hash_file(node.host)))
        if not same:
            raise BuildError('the packages %s and %s both ship /%s, with different contents; remove one of them'
                             % (old.package, node.package, rel))

    def resolve(self, rel: str) -> str | None:
        """The path ``rel`` leads to after following every symlink inside the merged tree (an
        absolute target counts from its root); None when it leads nowhere."""
        parts = [p for p in rel.split('/') if p]
        done: list = []
        hops = 0
        while parts:
            p = parts.pop(0)
            if p == '.':
                continue
            if p == '..':
                if done:
                    done.pop()
                continue
            cur = '/'.join(done + [p])
            node = self.nodes.get(cur)
            if node is None:
                return None
            if node.kind == 'l':
                hops += 1
                if hops > MAX_LINKS:
                    return None
                target = [t for t in node.target.split('/') if t]
                if node.target.startswith('/'):
                    done = []
                parts = target + parts
                continue
            if node.kind == 'f' and parts:
                return None
            done.append(p)
        return '/'.join(done)

    def file(self, rel: str) -> Node | None:
        """The regular file ``rel`` leads to, or None."""
        real = self.resolve(rel)
        node = self.nodes.get(real) if real else None
        return node if node is not None and node.kind == 'f' else None


@dataclass
class Layout:
    """What goes into the image: PREFIX-relative path -> (Node, or a symlink target str)."""
    minor: int
    files: dict = field(default_factory=dict)     # rel in the image -> Node (regular file content)
    links: dict = field(default_factory=dict)     # rel in the image -> symlink target
    scripts: dict = field(default_factory=dict)   # rel in the image -> text of an executable script
    libs: dict = field(default_factory=dict)      # soname -> Node (bundled into PREFIX/lib)
    needed_by: dict = field(default_factory=dict)  # soname -> the first object that needs it
    dropped: list = field(default_factory=list)   # image paths of the standard library left out

    @property
    def stdlib(self) -> str:
        return 'usr/lib/python3.%d' % self.minor

    @property
    def binary(self) -> str:
        return '%s/bin/python3.%d' % (PREFIX, self.minor)

    def packages(self) -> list[str]:
        return sorted({n.package for n in list(self.files.values()) + list(self.libs.values())})


def _dropped(sub: str) -> bool:
    """Whether the standard-library path ``sub`` (relative to lib/python3.X) is left out."""
    parts = sub.split('/')
    if any(sub == d or sub.startswith(d + '/') for d in DROP_DIRS):
        return True
    if len(parts) == 1 and parts[0] in DROP_NAMES:
        return True
    if any(p in DROP_DIR_NAMES for p in parts[:-1]) or (parts[-1] in DROP_DIR_NAMES and len(parts) > 1):
        return True
    return len(parts) == 2 and parts[0] == 'lib-dynload' and bool(_DROP_DYNLOAD.match(parts[1]))


def select(index: Index, minor: int) -> Layout:
    """The interpreter and its standard library (not yet the libraries)."""
    lay = Layout(minor)
    src_bin = 'usr/bin/python3.%d' % minor
    node = index.file(src_bin)
    if node is None:
        raise BuildError('no package ships /%s, the interpreter; is python3.%d-minimal among the debs?'
                         % (src_bin, minor))
    lay.files[lay.binary] = node
    # bin/python3 is a launcher that names the host's CA certificates for the bundled OpenSSL
    # (module_utils/pylauncher.py says why), then execs the binary
    lay.scripts['%s/bin/python3' % PREFIX] = pylauncher.script('/' + lay.binary)
    base = lay.stdlib + '/'
    dest_base = '%s/lib/python3.%d/' % (PREFIX, minor)
    if index.nodes.get(lay.stdlib, Node('', '', '')).kind != 'd':
        raise BuildError('no package ships /%s, the standard library; add libpython3.%d-minimal and libpython3.%d-'
                         'stdlib to the debs' % (lay.stdlib, minor, minor))
    for rel in sorted(index.nodes):
        if not rel.startswith(base):
            continue
        sub = rel[len(base):]
        node = index.nodes[rel]
        dest = dest_base + sub
        if _dropped(sub):
            # a dropped directory is named once, not each file in it (it sorts before them)
            if not any(dest.startswith(d + '/') for d in lay.dropped):
                lay.dropped.append(dest)
            continue
        if node.kind == 'f':
            lay.files[dest] = node
        elif node.kind == 'l':
            # kept as a link when it stays inside the standard library, else left out
            real = index.resolve(rel)
            if node.target.startswith('/') or real is None or not real.startswith(base):
                lay.dropped.append(dest)
                continue
            lay.links[dest] = node.target
    return lay


def search_dirs(index: Index) -> list[str]:
    """The library directories of the merged tree, multiarch ones first, as ld.so's defaults."""
    triplets = sorted({rel.split('/')[-1] for rel, n in index.nodes.items() if n.kind == 'd'
                       and re.match(r'^(usr/)?lib/[a-z0-9_]+-linux-[a-z0-9_]+$', rel)})
    out = []
    for t in triplets:
        out += ['lib/' + t, 'usr/lib/' + t]
    return out + ['lib64', 'usr/lib64', 'lib', 'usr/lib']


def bundle(index: Index, lay: Layout, objects: dict) -> dict:
    """Find every shared library the ELF ``objects`` (image path -> Elf) need, transitively,
    except glibc's; they go to ``lay.libs``. Returns image path -> Elf of the bundled ones too."""
    dirs = search_dirs(index)
    todo = sorted(objects)
    found = dict(objects)
    while todo:
        path = todo.pop(0)
        obj = found[path]
        for name in obj.needed:
            if is_glibc(name) or name in lay.libs:
                continue
            if '/' in name:
                raise BuildError('%s needs the library by the path %s; only names are searched for' % (
                    '/' + path, name))
            node = next((n for n in (index.file(d + '/' + name) for d in dirs) if n is not None), None)
            if node is None:
                raise BuildError('%s needs %s, which none of the debs ships (searched /%s); download the package '
                                 'that holds it (apt-file search %s, or dpkg -S %s on a Debian host) into the debs '
                                 'directory' % ('/' + path, name, ', /'.join(dirs), name, name))
            dest = '%s/lib/%s' % (PREFIX, name)
            try:
                lib = elf.read(node.host)
            except elf.ElfError as e:
                raise BuildError('%s (from %s, needed by /%s): %s' % (name, node.package, path, e)) from None
            if lib.machine != obj.machine or lib.bits != obj.bits:
                raise BuildError('%s from the package %s is for another architecture than /%s' % (
                    name, node.package, path))
            lay.libs[name] = node
            lay.needed_by[name] = '/' + path
            found[dest] = lib
            todo.append(dest)
    return found


def runpath(image_path: str) -> str:
    """The ``$ORIGIN``-relative RUNPATH that leads from an object at ``image_path`` to PREFIX/lib."""
    rel = os.path.relpath(PREFIX + '/lib', os.path.dirname(image_path))
    return '$ORIGIN' if rel == '.' else '$ORIGIN/' + rel


def glibc_min(objects: dict) -> tuple | None:
    """The newest GLIBC_x.y symbol version any object needs from glibc's libraries."""
    found = [v[-1] for v in (o.glibc_versions(is_glibc) for o in objects.values()) if v]
    return max(found) if found else None


def private_glibc(objects: dict) -> list[str]:
    """Objects that need GLIBC_PRIVATE, which only glibc's own build may use."""
    return sorted('/' + p for p, o in objects.items()
                  if any('GLIBC_PRIVATE' in names for lib, names in o.versions.items() if is_glibc(lib)))
