# -*- coding: utf-8 -*-
"""sysext_facts through real ansible-playbook / ansible / ansible-doc, on scratch roots.

No mounts here: the module only reads. Bad input must give a clear message naming the
file (a warning, or a failure when the host state itself cannot be read), never a
traceback, and must leave the root exactly as it was.
"""

import os
import subprocess

import pytest

from lib.ansible_run import BIN, REPO, MountNamespace, ansible_env, run_tasks
from lib.treedigest import tree_digest


def run_facts(root, check_mode=False, classes=None, merged=()):
    """Run the module through ansible-playbook; return its registered result. ``merged``: the
    hierarchies (root-relative) whose merge fake_merged() simulates: bound onto themselves in a
    private mount namespace of the run, as a merge is a mount point."""
    args = {'root': str(root)}
    if classes:
        args['classes'] = classes
    with MountNamespace(root / h for h in merged) as ns:
        res = run_tasks([{'tucked.sysext.sysext_facts': args}], check_mode=check_mode, namespace=ns)[0]
    res['warnings_shown'] = res['_shown']
    return res


def make_root(tmp_path):
    root = tmp_path / 'root'
    for d in ('usr/lib', 'opt', 'etc', 'var/lib/extensions', 'var/lib/confexts', 'run/extensions',
              'run/confexts', 'etc/extensions'):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / 'usr/lib/os-release').write_text('ID=debian\nVERSION_ID=12\n')
    os.symlink('../usr/lib/os-release', root / 'etc/os-release')
    return root


def add_ext(root, sdir, name, release='ID=_any\n', cls='sysext', fname=None):
    rel = 'usr/lib/extension-release.d' if cls == 'sysext' else 'etc/extension-release.d'
    d = root / sdir / (fname or name)
    (d / rel).mkdir(parents=True)
    if release is not None:
        (d / rel / ('extension-release.' + name)).write_bytes(release.encode() if isinstance(release, str) else release)
    return d


def image(facts, entry):
    return next(i for i in facts['images'] if i['entry'] == entry)


def test_facts_on_a_clean_root(tmp_path):
    root = make_root(tmp_path)
    add_ext(root, 'var/lib/extensions', 'foo')
    add_ext(root, 'run/confexts', 'site', cls='confext')
    before = tree_digest(root)
    res = run_facts(root)
    facts = res['ansible_facts']['sysext']
    assert res['changed'] is False
    assert facts['needs_refresh'] is True
    assert facts['classes']['sysext']['action'] == 'merge'
    assert facts['classes']['confext']['after'] == ['site']
    assert facts['hierarchies']['/usr']['merged_by'] == 'none'
    assert image(facts, '/var/lib/extensions/foo')['compatible'] is True
    assert facts['kernel']['move_mount_beneath'] in (True, False, None)
    assert tree_digest(root) == before


def test_check_mode_and_classes(tmp_path):
    root = make_root(tmp_path)
    add_ext(root, 'var/lib/extensions', 'foo')
    res = run_facts(root, check_mode=True, classes=['confext'])
    facts = res['ansible_facts']['sysext']
    assert list(facts['classes']) == ['confext']
    assert facts['needs_refresh'] is False
    assert set(facts['hierarchies']) == {'/etc'}


def test_root_that_does_not_exist(tmp_path):
    res = run_facts(tmp_path / 'nope')
    assert res['failed'] is True
    assert str(tmp_path / 'nope') in res['msg'] and 'does not exist' in res['msg']


def test_root_without_os_release(tmp_path):
    root = tmp_path / 'bare'
    root.mkdir()
    res = run_facts(root)
    assert res['failed'] is True
    assert 'os-release' in res['msg'] and str(root) in res['msg']


@pytest.mark.parametrize('what,release,expect', [
    ('binary', b'\x00\x01\x02\xff\xfe' * 20, 'not valid UTF-8'),
    ('nul-bytes', b'ID=_any\n\x00\x00\n', 'NUL'),
    ('not-utf8', b'ID=\xff\xfe\n', 'UTF-8'),
    ('missing', None, 'has no usr/lib/extension-release.d/extension-release.bad'),
])
def test_bad_release_files(tmp_path, what, release, expect):
    root = make_root(tmp_path)
    add_ext(root, 'var/lib/extensions', 'good')
    add_ext(root, 'var/lib/extensions', 'bad', release=release)
    before = tree_digest(root)
    res = run_facts(root)
    facts = res['ansible_facts']['sysext']
    bad = image(facts, '/var/lib/extensions/bad')
    assert bad['compatible'] is False
    assert expect in bad['reason'], bad['reason']
    assert str(root / 'var/lib/extensions/bad') in bad['reason'], 'the message names the image'
    assert expect in res['warnings_shown'], 'the warning is shown'
    assert facts['classes']['sysext']['after'] == ['good']
    assert tree_digest(root) == before


def test_a_large_release_file_is_read_as_systemd_reads_it(tmp_path):
    # systemd 262 reads release files up to READ_FULL_BYTES_MAX (64 MiB - 1): 10 MiB is fine
    root = make_root(tmp_path)
    add_ext(root, 'var/lib/extensions', 'big', release=b'ID=_any\n' + b'X' * (10 * 1024 * 1024))
    facts = run_facts(root)['ansible_facts']['sysext']
    assert image(facts, '/var/lib/extensions/big')['compatible'] is True
    assert facts['classes']['sysext']['after'] == ['big']


def test_an_unterminated_quote_takes_the_rest_of_the_file_as_systemd_does(tmp_path):
    # systemd 262's env-file parser: ID="_any<newline> is the value '_any\n', which matches no OS
    root = make_root(tmp_path)
    add_ext(root, 'var/lib/extensions', 'quote', release=b'ID="_any\n')
    facts = run_facts(root)['ansible_facts']['sysext']
    img = image(facts, '/var/lib/extensions/quote')
    assert img['compatible'] is False and "is for OS '_any\n'" in img['reason'], img['reason']


def test_release_symlink_pointing_outside_the_image(tmp_path):
    root = make_root(tmp_path)
    secret = tmp_path / 'outside-release'
    secret.write_text('ID=_any\n')
    d = add_ext(root, 'var/lib/extensions', 'esc', release=None)
    os.symlink(str(secret), d / 'usr/lib/extension-release.d/extension-release.esc')
    res = run_facts(root)
    esc = image(res['ansible_facts']['sysext'], '/var/lib/extensions/esc')
    # the absolute target is re-rooted inside the image, where it does not exist
    assert esc['compatible'] is False and 'has no' in esc['reason']


@pytest.mark.parametrize('fname,why', [
    ('bad\x01name', 'invalid name'),
    ('..raw', 'invalid name'),
    ('.#tmp.raw', 'invalid name'),
])
def test_invalid_image_names(tmp_path, fname, why):
    root = make_root(tmp_path)
    p = root / 'var/lib/extensions' / fname
    p.write_bytes(b'junk')
    res = run_facts(root)
    entries = [i for i in res['ansible_facts']['sysext']['images'] if i['type'] == 'ignored']
    assert len(entries) == 1 and why in entries[0]['reason'], entries


def test_dangling_symlink_and_loop(tmp_path):
    root = make_root(tmp_path)
    os.symlink('/nowhere/x', root / 'etc/extensions/dangling')
    os.symlink('loop2', root / 'etc/extensions/loop1')
    os.symlink('loop1', root / 'etc/extensions/loop2')
    res = run_facts(root)
    facts = res['ansible_facts']['sysext']
    assert 'dangling symlink' in image(facts, '/etc/extensions/dangling')['reason']
    assert 'symlink loop' in image(facts, '/etc/extensions/loop1')['reason']
    assert 'symlink loop' in res['warnings_shown'] and str(root / 'etc/extensions/loop1') in res['warnings_shown']


def test_corrupt_and_truncated_raw_images(tmp_path):
    root = make_root(tmp_path)
    (root / 'var/lib/extensions/junk.raw').write_bytes(os.urandom(8192))
    src = tmp_path / 'tree'
    add_ext(tmp_path, '.', 'cut', release='ID=_any\n', fname='tree')
    (src / 'usr/lib/payload').write_bytes(os.urandom(256 * 1024))   # incompressible: the image is big
    subprocess.run(['mksquashfs', str(src), str(tmp_path / 'cut.raw'), '-quiet', '-noappend'], check=True)
    data = (tmp_path / 'cut.raw').read_bytes()
    (root / 'var/lib/extensions/cut.raw').write_bytes(data[:len(data) // 2])
    res = run_facts(root)
    facts = res['ansible_facts']['sysext']
    junk = image(facts, '/var/lib/extensions/junk.raw')
    assert junk['compatible'] is False and 'unknown magic' in junk['reason']
    cut = image(facts, '/var/lib/extensions/cut.raw')
    assert cut['compatible'] is False
    assert 'corrupt' in cut['reason'] and str(root / 'var/lib/extensions/cut.raw') in cut['reason'], cut['reason']


def fake_merged(root, cls, origin_text):
    """Metadata that makes the hierarchy look merged by systemd (dev matches); run_facts(merged=)
    makes it a mount point."""
    hier = root / ('usr' if cls == 'sysext' else 'etc')
    meta = hier / ('.systemd-sysext' if cls == 'sysext' else '.systemd-confext')
    meta.mkdir()
    st = os.stat(hier)
    (meta / 'dev').write_text('%d:%d\n' % (os.major(st.st_dev), os.minor(st.st_dev)))
    (meta / ('extensions' if cls == 'sysext' else 'confexts')).write_text('foo\n')
    if origin_text is not None:
        (meta / 'origin').write_text(origin_text)
    return meta


@pytest.mark.parametrize('text,expect', [
    ('{"mutable": {"mode": "no"}, "extensions": {"foo": {"path": "/var/lib/ext', 'not valid JSON'),
    ('["not", "an", "object"]', 'does not hold an origin object'),
    ('\x00\x01binary', 'not valid JSON'),
])
def test_truncated_or_non_json_origin(tmp_path, text, expect):
    root = make_root(tmp_path)
    add_ext(root, 'var/lib/extensions', 'foo')
    meta = fake_merged(root, 'sysext', text)
    before = tree_digest(root)
    res = run_facts(root, merged=('usr',))
    facts = res['ansible_facts']['sysext']
    usr = facts['hierarchies']['/usr']
    assert usr['merged_by'] == 'systemd' and usr['origins'] is None
    assert any(expect in p and str(meta / 'origin') in p for p in usr['problems']), usr['problems']
    assert facts['classes']['sysext']['needs_refresh'] is True
    assert tree_digest(root) == before


def test_recorded_origin_matches(tmp_path):
    """An origin written like systemd's for the current image means: nothing to do."""
    root = make_root(tmp_path)
    add_ext(root, 'var/lib/extensions', 'foo')
    meta = fake_merged(root, 'sysext', None)
    # one run (one mount namespace: onMountId is per namespace): read the origin, write it the
    # way systemd does (pretty-printed, keys in another order: compared semantically), read again
    image_origin = ("(r0.ansible_facts.sysext.images | selectattr('entry', 'equalto', '/var/lib/extensions/foo')"
                    " | first).origin")
    doc = "{{ {'mutable': {'mode': 'no'}, 'extensions': {'foo': %s}} | to_nice_json(indent=8) }}" % image_origin
    with MountNamespace([root / 'usr']) as ns:
        res = run_tasks([{'tucked.sysext.sysext_facts': {'root': str(root)}},
                         {'ansible.builtin.copy': {'dest': str(meta / 'origin'), 'content': doc}},
                         {'tucked.sysext.sysext_facts': {'root': str(root)}}], namespace=ns)[2]
    facts = res['ansible_facts']['sysext']
    assert facts['classes']['sysext']['needs_refresh'] is False, facts['classes']['sysext']
    assert facts['classes']['sysext']['unchanged'] == ['foo']


def test_ansible_doc_renders():
    res = subprocess.run([os.path.join(BIN, 'ansible-doc'), 'tucked.sysext.sysext_facts'], cwd=REPO,
                         env=ansible_env(), text=True, capture_output=True, check=False)
    assert res.returncode == 0, res.stderr
    assert 'needs_refresh' in res.stdout and 'move_mount_beneath' in res.stdout


def test_adhoc_short_and_long_form(tmp_path):
    root = make_root(tmp_path)
    for mod, args in (('tucked.sysext.sysext_refresh', 'root=%s' % root), ('sysext_refresh', 'root=%s' % root)):
        env = ansible_env({'ANSIBLE_STDOUT_CALLBACK': 'ansible.builtin.minimal'})
        res = subprocess.run([os.path.join(BIN, 'ansible'), 'localhost', '-m', mod, '-a', args],
                             cwd=REPO, env=env, text=True, capture_output=True, check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        assert '"skipped_reason": "no change was found"' in res.stdout
    for mod in ('tucked.sysext.sysext_facts', 'sysext_facts'):
        env = ansible_env()
        env['ANSIBLE_STDOUT_CALLBACK'] = 'ansible.builtin.minimal'
        env['ANSIBLE_COLLECTIONS_ON_ANSIBLE_VERSION_MISMATCH'] = 'ignore'
        res = subprocess.run([os.path.join(BIN, 'ansible'), 'localhost', '-m', mod, '-a', 'root=%s' % root],
                             cwd=REPO, env=env, text=True, capture_output=True, check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        assert '"needs_refresh": false' in res.stdout


def test_facts_settings_vpick_and_policy(tmp_path):
    """The settings a refresh would use and where they come from, the version vpick picked
    (and why the others lost), and an image file that would fail the merge."""
    root = make_root(tmp_path)
    (root / 'etc/systemd/sysext.conf.d').mkdir(parents=True)
    (root / 'etc/systemd/sysext.conf').write_text('[SysExt]\nMutable=ephemeral\nImagePolicy=root=verity\n')
    (root / 'etc/systemd/sysext.conf.d/50-local.conf').write_text('[SysExt]\nMutable=import\nBogus=1\n')
    for v in ('1', '2', '3+0'):
        add_ext(root, 'var/lib/extensions/foo.v', 'foo', fname='foo_' + v)
    squash = subprocess.run(['mksquashfs', str(add_ext(root, 'tmp', 'sq')), str(root / 'var/lib/extensions/sq.raw'),
                             '-quiet', '-noappend', '-all-root'], capture_output=True, check=False)
    if squash.returncode != 0:
        pytest.skip('mksquashfs is not installed (scripts/bootstrap.sh debs)')
    before = tree_digest(root)
    res = run_facts(root, classes=['sysext'])
    facts = res['ansible_facts']['sysext']
    settings = facts['classes']['sysext']['settings']
    assert settings['mutable'] == {'value': 'import', 'source': '/etc/systemd/sysext.conf.d/50-local.conf:2'}
    assert settings['image_policy'] == {'value': 'root=verity:=unused+absent', 'source': '/etc/systemd/sysext.conf:3'}
    assert settings['files'] == ['/etc/systemd/sysext.conf', '/etc/systemd/sysext.conf.d/50-local.conf']
    assert "unknown key 'Bogus'" in res['warnings_shown']
    vfoo = image(facts, '/var/lib/extensions/foo.v')
    assert vfoo['path'] == '/var/lib/extensions/foo.v/foo_2' and vfoo['picked']['version'] == '2'
    assert {c['entry']: c['reason'] for c in vfoo['picked']['candidates']} == {
        'foo_1': 'older than foo_2', 'foo_3+0': 'ranked below foo_2'}
    sq = image(facts, '/var/lib/extensions/sq.raw')
    assert sq['blocks_merge'] is True and sq['compatible'] is False and sq['fstype'] == 'squashfs'
    assert sq['protection'] == 'unprotected' and 'does not match the image policy root=verity' in sq['reason']
    assert facts['classes']['sysext']['after'] == ['foo']
    # the parameters win over the files
    res = run_tasks([{'tucked.sysext.sysext_facts': {'root': str(root), 'classes': ['sysext'], 'mutable': 'no',
                                                     'image_policy': '*'}}])[0]
    settings = res['ansible_facts']['sysext']['classes']['sysext']['settings']
    assert settings['mutable'] == {'value': 'no', 'source': 'parameter'}
    assert settings['image_policy'] == {'value': '=open', 'source': 'parameter'}
    assert image(res['ansible_facts']['sysext'], '/var/lib/extensions/sq.raw')['blocks_merge'] is False
    bad = run_tasks([{'tucked.sysext.sysext_facts': {'root': str(root), 'image_policy': 'root=bogus'}}])[0]
    assert bad['failed'] and "image_policy 'root=bogus' cannot be parsed: unknown partition policy flag" in bad['msg']
    assert tree_digest(root) == before


def _gpt_image(path, fs_data, designator='root', arch='x86-64'):
    """A GPT disk image holding ``fs_data`` in one partition of the Discoverable Partitions
    Specification type (tests/lib/gptimage.py; systemd-repart DDIs are tested against systemd
    in the differential scenarios)."""
    import sys
    import uuid
    from lib import gptimage
    sys.path.insert(0, os.path.join(REPO, '.build', 'collections'))
    from ansible_collections.tucked.sysext.plugins.module_utils.imagefs import gpt
    part = gptimage.Part(gpt.TYPES[arch][gpt.DESIGNATORS.index(designator)], 'root-x86-64', fs_data, 0,
                         str(uuid.uuid4()))
    gptimage.write(path, [part])
    return part


def test_facts_say_what_each_image_is(tmp_path):
    """container, file system, compression, partition and protection of each kind of image;
    the zstd squashfs is read through a detached read-only mount (root), the others in place."""
    if os.uname().machine != 'x86_64':
        pytest.skip('the DDI below is made for x86-64')
    root = make_root(tmp_path)
    tree = add_ext(tmp_path, '.', 'fmt', fname='tree')
    (tree / 'usr/share').mkdir()
    (tree / 'usr/share/hello').write_text('hello\n')
    ext = root / 'var/lib/extensions'
    for name, how in (('sqz', ['-comp', 'zstd']), ('sqg', [])):
        os.rename(tree / 'usr/lib/extension-release.d' / os.listdir(tree / 'usr/lib/extension-release.d')[0],
                  tree / 'usr/lib/extension-release.d' / ('extension-release.' + name))
        subprocess.run(['mksquashfs', str(tree), str(ext / (name + '.raw')), '-quiet', '-noappend', '-all-root'] + how,
                       check=True)
    os.rename(tree / 'usr/lib/extension-release.d/extension-release.sqg',
              tree / 'usr/lib/extension-release.d/extension-release.ero')
    subprocess.run(['mkfs.erofs', '--quiet', '-zlz4', str(ext / 'ero.raw'), str(tree)], check=True,
                   capture_output=True)
    os.rename(tree / 'usr/lib/extension-release.d/extension-release.ero',
              tree / 'usr/lib/extension-release.d/extension-release.ddi')
    subprocess.run(['mksquashfs', str(tree), str(tmp_path / 'ddi.sq'), '-quiet', '-noappend', '-all-root'], check=True)
    part = _gpt_image(ext / 'ddi.raw', (tmp_path / 'ddi.sq').read_bytes())
    (root / 'run/tucked-sysext').mkdir(parents=True)
    before = tree_digest(str(root / 'var'))
    facts = run_facts(root)['ansible_facts']['sysext']
    assert tree_digest(str(root / 'var')) == before
    # what was read is cached by each image's identity (ROOT/run, a tmpfs on a live host)
    assert os.listdir(root / 'run/tucked-sysext') == ['images.json']
    got = {i['name']: i for i in facts['images']}
    assert set(got) == {'sqz', 'sqg', 'ero', 'ddi'}, sorted(got)
    for name, container, fstype, compression in (('sqz', 'filesystem', 'squashfs', 'zstd'),
                                                 ('sqg', 'filesystem', 'squashfs', 'gzip'),
                                                 ('ero', 'filesystem', 'erofs', 'lz4'),
                                                 ('ddi', 'gpt', 'squashfs', 'gzip')):
        img = got[name]
        assert img['compatible'] and not img['blocks_merge'], (name, img['reason'])
        assert (img['container'], img['fstype'], img['compression']) == (container, fstype, compression), img
        assert img['protection'] == 'unprotected' and img['verity_hash'] is None
        assert img['release_file'], img
    assert got['sqz']['partition'] is None
    p = got['ddi']['partition']
    assert (p['number'], p['designator'], p['architecture'], p['uuid']) == (1, 'root', 'x86-64', part.uuid), p
    assert p['verity_partition'] is None and p['signature_partition'] is None
