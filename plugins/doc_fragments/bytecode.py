# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options: {}
notes:
  - On the host it runs on, the module keeps the compiled code of this collection's module_utils in
    C(/var/cache/tucked-sysext/pycache) (as root; other users C($XDG_CACHE_HOME/tucked-sysext/pycache),
    default C(~/.cache)), also in check mode, so that later tasks do not compile it again.
    E(TUCKED_SYSEXT_PYCACHE=0) in the task's C(environment) turns that off, and
    E(TUCKED_SYSEXT_PYCACHE_DIR) puts it elsewhere, for example on a tmpfs (C(/run/tucked-sysext/pycache)).
"""
