#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sysext_refresh
short_description: Merge, refresh or unmerge system and configuration extensions, atomically and only when needed
version_added: 0.1.0
description:
  - Makes the extensions in the search directories the ones merged into C(/usr), C(/opt)
    (sysext) and C(/etc) (confext), like C(systemd-sysext refresh), but touches nothing and
    reports C(changed=false) when the recorded origins match the images found (the refresh
    skip of systemd 260+, also on hosts with older systemd).
  - When something changed, the new overlay is built completely in a private mount namespace
    first; then it is tucked beneath the old one with C(move_mount(MOVE_MOUNT_BENEATH))
    (Linux 6.5+) and the old one is detached, so readers never see the bare base tree. A
    failure before the swap leaves the old overlay exactly as it was.
  - Anything mounted below a hierarchy (a tmpfs on C(/usr/share/foo), something on
    C(/opt/x)) stays visible through merge, refresh and unmerge, as systemd 262 keeps it;
    it is part of the new overlay before the swap, and an unmerge puts what only the overlay
    had back on the base tree (a run killed meanwhile leaves it in C(/run/tucked-sysext/submounts)
    for the next run to put back).
  - The metadata is systemd's own (C(.systemd-sysext/) with C(extensions), C(dev),
    C(backing) and the v262 C(origin)), so C(systemd-sysext status), C(refresh) and
    C(unmerge) work on a merge made by this module, and this module on theirs.
extends_documentation_fragment:
  - tucked.sysext.bytecode
author:
  - The tucked.sysext team (@tucked)
options:
  state:
    description:
      - V(merged) merges when nothing is merged, refreshes when the plan finds a change, and
        otherwise does nothing. V(unmerged) removes the overlays of the selected classes.
    type: str
    choices: [merged, unmerged]
    default: merged
  classes:
    description: Which extension classes to handle.
    type: list
    elements: str
    choices: [sysext, confext]
    default: [sysext, confext]
  root:
    description:
      - The root directory to operate on, like C(systemd-sysext --root=). Search directories,
        C(os-release) and hierarchies are taken relative to it.
    type: path
    default: /
  always_refresh:
    description:
      - Refresh even when the recorded origins match, like C(systemd-sysext refresh --always-refresh=yes).
    type: bool
    default: false
  mutable:
    description:
      - systemd's mutable mode, with systemd 262's layout, so that systemd-sysext accepts the merge.
      - When not given, C(Mutable=) of the root's C(sysext.conf) / C(confext.conf) (with their
        C(.conf.d/) drop-ins, see sysext.conf(5)) applies, overridden by C(SYSTEMD_SYSEXT_MUTABLE_MODE) /
        C(SYSTEMD_CONFEXT_MUTABLE_MODE) in the task's environment, as for systemd-sysext; else V(no).
        RV(settings) tells which applied, and from where.
      - V(no) read-only overlays.
      - V(yes) writes go to C(/var/lib/extensions.mutable/<hierarchy>), created with missing
        parents 0755 and the hierarchy's own mode; an existing directory with another mode is refused,
        and so is one on a read-only filesystem. It may be a symlink (resolved inside O(root)), also to
        the hierarchy itself, which then takes the writes. Data written there survives every refresh
        and unmerge.
      - V(auto) like V(yes) where that directory exists, else like V(no).
      - V(import) the directory is shown read-only, between the metadata and the extensions (refused
        when it leads to the hierarchy itself).
      - V(ephemeral) writes go to a tmpfs that is dropped on unmerge and refresh.
      - V(ephemeral-import) both.
      - In every mode but V(no) all hierarchies of a class are mounted, as systemd does. Each merge
        gets a fresh work directory, removed when its overlay goes, so that the old and the new
        overlay never share one during the atomic swap. Only a C(.systemd-<hierarchy>-workdir)
        directory beside the mutable directory is ever removed, whatever C(work_dir) metadata says.
    type: str
    choices: ['no', 'yes', auto, import, ephemeral, ephemeral-import]
  image_policy:
    description:
      - systemd's image policy (systemd.image-policy(7)), like C(systemd-sysext --image-policy=),
        for example V(root=verity+signed+absent:usr=verity+signed+absent) or V(*).
      - It applies to image files and block devices, not to directories. A plain squashfs or erofs
        image is one C(root) partition, C(unprotected) unless a C(.verity) hash tree and a root hash
        (C(.roothash), or the C(user.verity.roothash) xattr) lie beside it, and its file system type
        counts for the C(squashfs)/C(erofs) flags.
      - An image the policy refuses makes the task fail before anything is touched (systemd-sysext's
        whole merge fails too), with a message naming the image and the rule.
      - When not given, C(ImagePolicy=) of the root's C(sysext.conf) / C(confext.conf) applies, else
        systemd's default (V(root=verity+signed+encrypted+unprotected+absent:usr=verity+signed+encrypted+unprotected+absent)
        for sysext, the C(root) part for confext; in a running initrd the stricter V(root=signed+absent:usr=signed+absent)
        for the images in C(/.extra/sysext)).
      - Verity-protected images are refused with a clear message by the native backend (it does not set
        up dm-verity) and on kernels without device-mapper.
    type: str
  overlay_options:
    description:
      - Extra overlayfs mount options, like systemd's C(SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS)
        (C(SYSTEMD_CONFEXT_OVERLAYFS_MOUNT_OPTIONS)), comma-separated.
      - Without it, systemd 262's defaults apply - none for a read-only merge,
        V(redirect_dir=on,noatime,metacopy=off,index=off) for a writable one. Given (also empty), it
        replaces those defaults, as systemd's variable does. Mount flags among them (V(noatime),
        V(nosuid), V(ro) ...) become mount flags, as systemd takes them.
      - It applies to the overlays built from now on; changing it alone does not make a refresh
        necessary (systemd records no options either); use O(always_refresh) to apply it at once.
    type: str
  reload:
    description:
      - After a change, talk to the service manager the way systemd-sysext 262 does, only when
        O(root=/) and PID 1 is systemd, and never when nothing changed.
      - C(systemctl daemon-reload) when an extension merged before or after the change has
        C(EXTENSION_RELOAD_MANAGER=1) or lists units; then each unit in C(EXTENSION_RESTART_UNITS=)
        is restarted (started when it was not running) and each in C(EXTENSION_RELOAD_OR_RESTART_UNITS=)
        reloaded or restarted. A listed unit whose unit file went away with its extension is stopped.
    type: bool
    default: true
  atomic:
    description:
      - V(auto) tucks the new overlay beneath the old one when the kernel can (Linux 6.5+) and
        otherwise unmounts and mounts, with a warning and RV(atomic=false).
      - V(required) fails before touching anything when the swap cannot be atomic.
      - V(never) always unmounts and mounts (the way systemd-sysext 262 does).
    type: str
    choices: [auto, required, never]
    default: auto
  force:
    description:
      - Go ahead with a change that removes the interpreter this task runs on.
      - Without it, when C(sys.executable) of the task (symlinks resolved) lies in a hierarchy under O(root)
        that the change would unmerge, or refresh with no extension left that holds that path while an
        extension merged now does, the task fails before anything is changed, naming the interpreter,
        the extension that provides it and the fix. That is the case on a host without Python of its own
        (Flatcar, Fedora CoreOS), where the interpreter comes from an extension such as C(tucked-python).
      - An extension holds the path when its own tree does (a directory extension's directory, an image
        file read with the collection's image readers); when the image it was merged from is gone, the
        base tree below the overlay decides. A refresh that keeps every extension merged now, unchanged,
        is never refused and reads no image for this.
    type: bool
    default: false
  backend:
    description:
      - V(native) does the mount work itself (atomic, see O(atomic)).
      - V(systemd) runs the host's C(systemd-sysext) / C(systemd-confext) for the mount work;
        the decision is still this module's, so even systemd 252 gets the skip. Its exit status is
        not taken for the result; what is mounted afterwards must be what was planned, else the
        task fails with what the tool printed.
    type: str
    choices: [native, systemd]
    default: native
attributes:
  check_mode:
    support: full
    description: Reports what would change and mounts nothing.
  diff_mode:
    support: full
    description: Before and after list of extensions, with versions, per hierarchy.
notes:
  - Runs are serialized per root with C(flock) on C(ROOT/run/tucked-sysext.lock).
    systemd-sysext 262 itself takes no lock, so a C(systemd-sysext) run started at the same
    moment is not excluded.
  - A hierarchy with an overlay that neither systemd-sysext nor this module made is left
    alone; the task fails with a message naming it.
  - Extensions are matched against the root's os-release as systemd-sysext 262 does (C(ID) or
    the root's C(ID_LIKE), C(ID=_any), C(SYSEXT_LEVEL)/C(CONFEXT_LEVEL) else C(VERSION_ID),
    C(ARCHITECTURE), C(SYSEXT_SCOPE)/C(CONFEXT_SCOPE); a root with C(/etc/initrd-release) is an
    initrd). One that does not match is skipped with a warning naming it and the field; with
    nothing left the task succeeds. A root whose os-release lacks C(ID) fails C(state=merged);
    C(state=unmerged) reads no os-release.
seealso:
  - module: tucked.sysext.sysext_facts
  - name: systemd-sysext(8)
    description: The tool whose on-disk format this module shares.
    link: https://www.freedesktop.org/software/systemd/man/latest/systemd-sysext.html
"""

EXAMPLES = r"""
- name: Merge or refresh all extensions, only when something changed
  tucked.sysext.sysext_refresh:

- name: Refresh only the confexts, and fail rather than leave a gap
  tucked.sysext.sysext_refresh:
    classes: [confext]
    atomic: required

- name: Let the host's systemd-sysext do the mounts (our decision, its mounts)
  tucked.sysext.sysext_refresh:
    backend: systemd

- name: Refuse unsigned images, with writes to /usr going to /var/lib/extensions.mutable
  tucked.sysext.sysext_refresh:
    image_policy: root=signed+absent:usr=signed+absent
    mutable: 'yes'
- name: Extra overlayfs options (as SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS would give them)
  tucked.sysext.sysext_refresh:
    overlay_options: redirect_dir=on,noatime
- name: Remove all overlays
  tucked.sysext.sysext_refresh:
    state: unmerged

- name: Remove all overlays, also the one the task's interpreter comes from (later tasks need another one)
  tucked.sysext.sysext_refresh:
    state: unmerged
    force: true

# Ad hoc, across a fleet:
#   ansible all -b -m tucked.sysext.sysext_refresh
#   ansible all -b -m tucked.sysext.sysext_refresh -a 'state=unmerged classes=confext'
"""

RETURN = r"""
changed:
  description: Whether an overlay was merged, replaced or removed (in check mode, would be).
  returned: always
  type: bool
classes:
  description: Per class, what was decided.
  returned: always
  type: dict
  contains:
    action:
      description: V(none), V(merge), V(refresh) or V(unmerge).
      type: str
    reasons:
      description: The differences found (see the C(reasons) of M(tucked.sysext.sysext_facts)).
      type: list
      elements: dict
    before:
      description: Extensions merged before, lowest layer first.
      type: list
      elements: str
    after:
      description: Extensions merged after, lowest layer first.
      type: list
      elements: str
reasons:
  description:
    - Every difference that made the module act, of all classes, each with its C(class); the
      same entries as the C(reasons) of each class in RV(classes).
  returned: always
  type: list
  elements: dict
  sample: [{"class": "sysext", "extension": "foo", "change": "replaced", "fields": ["mtime"], "detail": "..."}]
hierarchies:
  description: Per hierarchy (C(/usr), C(/opt), C(/etc)), the extensions before and after.
  returned: always
  type: dict
  sample: {"/usr": {"before": ["foo"], "after": ["foo", "bar"], "merged_by": "systemd", "merged_by_after": "tucked", "mount_id": 2147483713}}
atomic:
  description: Whether the swap was atomic (tucked beneath, then the old top detached); V(null) when nothing was mounted.
  returned: always
  type: bool
reloaded:
  description: Whether the service manager was reloaded (C(daemon-reload)).
  returned: always
  type: bool
units:
  description:
    - The units (re)started, reloaded or stopped after the change, as the extensions'
      C(EXTENSION_RESTART_UNITS=) and C(EXTENSION_RELOAD_OR_RESTART_UNITS=) asked (jobs queued with C(--no-block)).
    - Empty when the service manager was not involved.
  returned: always
  type: dict
  sample: {"restarted": ["docker.service"], "reloaded_or_restarted": ["nginx.service"], "stopped": []}
settings:
  description:
    - Per class, the effective C(mutable) mode and C(image_policy), each with its C(value) and
      C(source) (V(parameter), V(environment), V(FILE:LINE) of the root's sysext.conf or a drop-in,
      or V(default)), and the config C(files) read.
  returned: always
  type: dict
  sample: {"sysext": {"mutable": {"value": "ephemeral", "source": "/etc/systemd/sysext.conf.d/50-eph.conf:2"},
           "image_policy": {"value": "root=verity+signed+encrypted+unprotected+absent:usr=...", "source": "default"},
           "files": ["/etc/systemd/sysext.conf.d/50-eph.conf"]}}
skipped_reason:
  description: Why nothing was done (for example C(no change was found), C(check mode)); V(null) when something was.
  returned: always
  type: str
timing:
  description: Milliseconds spent deciding (C(plan_ms)), mounting (C(apply_ms)) and in all (C(total_ms)).
  returned: always
  type: dict
interpreter:
  description:
    - When the change was refused because it would remove the interpreter this task runs on (see O(force)), this holds
      the interpreter (C(executable), resolved C(path)), its C(hierarchy) and C(class), the C(extensions)
      it comes from and the C(image) it was found in (V(null) when that image is gone).
  returned: when refused for that reason
  type: dict
  sample: {"executable": "/usr/lib/tucked-sysext/python/bin/python3", "path": "/usr/lib/tucked-sysext/python/bin/python3.11",
           "hierarchy": "/usr", "class": "sysext", "extensions": ["tucked-python"],
           "image": "/var/lib/tucked-sysext/store/tucked-python/tucked-python-3.11.2-6.deb12u6.raw"}
"""

from ansible.module_utils.basic import AnsibleModule

# first: from here on, the compiled code of this collection's module_utils is cached on the target
from ansible_collections.tucked.sysext.plugins.module_utils import bytecode  # noqa: F401 pylint: disable=unused-import
from ansible_collections.tucked.sysext.plugins.module_utils import engine, refresh

ARGUMENT_SPEC = {
    'state': {'type': 'str', 'choices': ['merged', 'unmerged'], 'default': 'merged'},
    'classes': {'type': 'list', 'elements': 'str', 'choices': ['sysext', 'confext'],
                'default': ['sysext', 'confext']},
    'root': {'type': 'path', 'default': '/'},
    'always_refresh': {'type': 'bool', 'default': False},
    'mutable': {'type': 'str', 'choices': ['no', 'yes', 'auto', 'import', 'ephemeral', 'ephemeral-import']},
    'image_policy': {'type': 'str'},
    'overlay_options': {'type': 'str'},
    'reload': {'type': 'bool', 'default': True},
    'atomic': {'type': 'str', 'choices': list(refresh.ATOMIC_CHOICES), 'default': 'auto'},
    'backend': {'type': 'str', 'choices': list(refresh.BACKENDS), 'default': 'native'},
    'force': {'type': 'bool', 'default': False},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    opts = refresh.Options(root=p['root'], classes=tuple(dict.fromkeys(p['classes'])), state=p['state'],
                           always_refresh=p['always_refresh'], mutable=p['mutable'], image_policy=p['image_policy'],
                           overlay_options=p['overlay_options'], reload=p['reload'],
                           atomic=p['atomic'], backend=p['backend'], force=p['force'], check_mode=module.check_mode)
    try:
        out = refresh.run(opts)
    except refresh.InterpreterInUse as e:
        module.fail_json(msg=str(e), interpreter=e.details, partial=False)
    except engine.EngineError as e:
        module.fail_json(msg=str(e), partial=getattr(e, 'partial', False))
    for w in out.warnings:
        module.warn(w)
    result = out.as_dict()
    if module._diff and out.diff:
        result['diff'] = [{'before_header': h, 'after_header': h, 'before': b, 'after': a}
                          for h, (b, a) in sorted(out.diff.items())]
    module.exit_json(**result)


if __name__ == '__main__':
    main()
