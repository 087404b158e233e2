# -*- coding: utf-8 -*-
"""sysext_image's repository source without Ansible: MatchPattern= syntax and matching as
systemd-sysupdate has them (sysupdate-pattern.c), the specifiers, SHA256SUMS as
resource_load_from_web() reads it, version specs and the choice of the newest version."""

import datetime
import hashlib

import pytest

from ansible_collections.tucked.sysext.plugins.plugin_utils import repository as r

X86 = r.Host('x86-64', {'ID': 'fedora', 'VERSION_ID': '41', 'VARIANT_ID': 'coreos', 'IMAGE_ID': 'fcos',
                        'IMAGE_VERSION': '41.2', 'BUILD_ID': 'b7'})
ARM = r.Host('arm64', {'ID': 'flatcar'})


def sums(*names) -> bytes:
    return b''.join(b'%s  %s\n' % (hashlib.sha256(n.encode()).hexdigest().encode(), n.encode()) for n in names)


# ---------------------------------------------------------------- patterns
@pytest.mark.parametrize('pattern,name,fields', [
    # the examples of sysupdate.d(5)
    ('foobarOS_@v.raw.xz', 'foobarOS_47.11.raw.xz', {'v': '47.11'}),
    ('foobarOS_@v+@l-@d.efi', 'foobarOS_47.11+3-1.efi', {'v': '47.11', 'l': 3, 'd': 1}),
    ('foobarOS_@v+@l.efi', 'foobarOS_47.11+3.efi', {'v': '47.11', 'l': 3}),
    ('foobarOS_@v.efi', 'foobarOS_47.11.efi', {'v': '47.11'}),
    ('foobarOS_@v_@u.verity.xz', 'foobarOS_1_0123456789abcdef0123456789ABCDEF.verity.xz',
     {'v': '1', 'u': '0123456789abcdef0123456789abcdef'}),
    ('x_@v_@u.raw', 'x_1_01234567-89ab-cdef-0123-456789abcdef.raw', {'v': '1', 'u': '01234567-89ab-cdef-0123-456789abcdef'}),
    ('x-@v-@m-@s-@t.raw', 'x-2-0644-4096-1700000000000000.raw', {'v': '2', 'm': 0o644, 's': 4096, 't': 1700000000000000}),
    ('x-@v-@a-@r-@g-@f.raw', 'x-2-yes-0-true-1f.raw', {'v': '2', 'a': True, 'r': False, 'g': True, 'f': 0x1f}),
    ('x-@v@@.raw', 'x-3@.raw', {'v': '3'}),
    ('x-@v', 'x-3.0~rc1', {'v': '3.0~rc1'}),
])
def test_systemd_patterns_match_with_their_fields(pattern, name, fields):
    assert r.Pattern(pattern).match(name) == fields


@pytest.mark.parametrize('pattern,name', [
    ('x-@v.raw', 'x-1.raw.xz'),             # the string goes on past the pattern
    ('x-@v.raw', 'y-1.raw'),
    ('x-@v.raw', 'x-1@2.raw'),              # not a valid version
    ('x-@v-@m.raw', 'x-1-4777.raw'),        # setuid: refused by systemd
    ('x-@v-@m.raw', 'x-1-0666.raw'),        # world-writable
    ('x-@v-@s.raw', 'x-1-12a.raw'),
    ('x-@v-@s.raw', 'x-1-18446744073709551615.raw'),   # UINT64_MAX
    ('x-@v-@u.raw', 'x-1-0123.raw'),
    ('x-@v-@h.raw', 'x-1-abc.raw'),
    ('x-@v-@a.raw', 'x-1-maybe.raw'),
    ('x/@v.raw', 'x-1.raw'),
    ('x-@v.raw', 'x-.raw'),                 # an empty version is none
])
def test_what_systemd_does_not_match_we_do_not(pattern, name):
    assert r.Pattern(pattern).match(name) is None


def test_the_literal_after_a_field_splits_at_its_first_occurrence_as_strstr_does():
    # systemd takes the version up to the first '-x86' ... so 1-x86-64-x86-64.raw leaves a rest that does not match
    assert r.Pattern('d-@v-x86-64.raw').match('d-1-x86-64.raw') == {'v': '1'}
    assert r.Pattern('d-@v.raw').match('d-1.raw.raw') is None


@pytest.mark.parametrize('pattern,words', [
    ('x-@v-@z.raw', 'unknown field @z'),
    ('x-@v-@v.raw', '@v appears twice'),
    ('x-@v@s.raw', 'two fields without a literal'),
    ('x-1.raw', 'no version field @v'),
    ('x-@v.raw@', 'lone @'),
    ('x-@v*.raw', "character '*' is not allowed"),
    ('x-@v\t.raw', 'is not allowed'),
])
def test_bad_patterns_are_refused_naming_the_pattern(pattern, words):
    with pytest.raises(r.RepositoryError) as e:
        r.Pattern(pattern)
    assert words in str(e.value) and repr(pattern) in str(e.value)


def test_specifiers_are_expanded_before_matching():
    assert r.expand_specifiers('d-@v-%a.raw', X86) == 'd-@v-x86-64.raw'
    assert r.expand_specifiers('d-@v-%a.raw', ARM) == 'd-@v-arm64.raw'
    assert r.expand_specifiers('%o-%w-%W-%M-%A-%B-100%%-@v', X86) == 'fedora-41-coreos-fcos-41.2-b7-100%-@v'
    assert r.expand_specifiers('d-%w-@v', ARM) == 'd--@v'        # no VERSION_ID: empty, as systemd makes it
    for bad, words in (('d-%H-@v', 'host name'), ('d-%m-@v', 'machine ID'), ('d-%x-@v', 'unknown specifier %x'),
                       ('d-@v%', 'lone %')):
        with pytest.raises(r.RepositoryError) as e:
            r.expand_specifiers(bad, X86)
        assert words in str(e.value) and bad in str(e.value)


def test_default_pattern_is_the_bakery_layout():
    pats = r.patterns_for('docker', None, ARM)
    assert [p.text for p in pats] == ['docker-@v-arm64.raw']
    assert [p.text for p in r.patterns_for('docker', 'docker-@v.raw', ARM)] == ['docker-@v.raw']


# ---------------------------------------------------------------- SHA256SUMS
def test_index_lines_as_sha256sum_writes_them():
    h = 'A' * 64
    got = r.parse_index(('%s  one.raw\n%s *two.raw\n' % (h, 'b' * 64)).encode(), 'http://x/SHA256SUMS')
    assert got == [('one.raw', 'a' * 64), ('two.raw', 'b' * 64)]
    assert r.parse_index(b'', 'i') == []


@pytest.mark.parametrize('data,words', [
    (b'abc  x.raw\n', 'line 1 is malformed'),
    (b'%s x.raw\n' % (b'a' * 64), 'line 1 is malformed'),
    (b'%s  x.raw\n%s\tx.raw\n' % (b'a' * 64, b'b' * 64), 'line 2 is malformed'),
    (b'%s  x.raw' % (b'a' * 64), 'does not end in a newline'),
    (b'%s  /a/b.raw\n' % (b'a' * 64), 'not a valid file name'),
    (b'%s  a//b.raw\n' % (b'a' * 64), 'not a valid file name'),
    (b'%s  a/../b.raw\n' % (b'a' * 64), 'not a valid file name'),
    (b'%s  ./b.raw\n' % (b'a' * 64), 'not a valid file name'),
    (b'%s  ..\n' % (b'a' * 64), 'not a valid file name'),
    (b'\\%s  x\\n.raw\n' % (b'a' * 64), 'escaped file names'),
    (b'%s  x.raw\n\0' % (b'a' * 64), 'NUL byte'),
    (b'%s  \xff.raw\n' % (b'a' * 64), 'not valid UTF-8'),
    (b'%s  x.raw\n%s  x.raw\n' % (b'a' * 64, b'b' * 64), 'twice with different sums (lines 1 and 2)'),
    (b'\n', 'line 1 is malformed'),
])
def test_malformed_indexes_are_refused_naming_the_index_and_line(data, words):
    with pytest.raises(r.RepositoryError) as e:
        r.parse_index(data, 'http://h/SHA256SUMS')
    assert words in str(e.value) and 'SHA256SUMS' in str(e.value)


def test_best_before_marker_as_systemd_honours_it():
    empty = hashlib.sha256(b'').hexdigest()
    data = ('%s  BEST-BEFORE-2026-06-01\n%s  d-1-x86-64.raw\n' % (empty, 'a' * 64)).encode()
    assert len(r.parse_index(data, 'i', today=datetime.date(2026, 5, 31))) == 2
    for day in (1, 2):      # from the date on: systemd refuses once its start is in the past
        with pytest.raises(r.RepositoryError, match='out of date'):
            r.parse_index(data, 'i', today=datetime.date(2026, 6, day))
    # not a date: ignored, and then an ordinary file name as in systemd; a marker is never a candidate
    odd = r.parse_index(('%s  BEST-BEFORE-2026-02-30\n' % empty).encode(), 'i', today=datetime.date(2030, 1, 1))
    assert [e.version for e in r.choose(odd, [r.Pattern('BEST-BEFORE-@v')], r.parse_spec('latest')).candidates] == \
        ['2026-02-30']
    assert r.choose(r.parse_index(data, 'i', today=datetime.date(2026, 1, 1)), [r.Pattern('@v')],
                    r.parse_spec('latest')).candidates[0].name == 'd-1-x86-64.raw'


# ---------------------------------------------------------------- versions and the choice
@pytest.mark.parametrize('spec,yes,no', [
    ('latest', ['1', '0~rc1'], []),
    (None, ['1'], []),
    ('1.2', ['1.2'], ['1.2.0', '1.3', '1.02']),
    ('>=1.2,<2', ['1.2', '1.10', '1.99^1'], ['1.1', '2', '2.0']),
    ('<2', ['2~rc1', '1.9'], ['2', '2.0']),
    ('>1.9, !=1.10', ['1.11', '1.9.1'], ['1.10', '1.9', '1.2']),
    ('==3', ['3', '03'], ['3.0']),
    ('<=1', ['1', '1~b'], ['1.0', '1^p']),
])
def test_version_specs_use_systemds_order(spec, yes, no):
    s = r.parse_spec(spec)
    assert all(s.allows(v) for v in yes) and not any(s.allows(v) for v in no)


@pytest.mark.parametrize('spec,deviations', [
    ('latest', {'0~rc1': 0, '99': 0}),
    ('1.2', {'1.2': 0, '1.02': 0, '1.10': 1, '1.2~rc1': -1}),
    ('>=1.2,<2', {'1.2': 0, '1.10': 0, '1.1': -1, '2': 1, '2.0': 1}),
    ('>1.9, !=1.10', {'1.9': -1, '1.8': -1, '1.10': None, '1.11': 0}),
    ('==3', {'3': 0, '2': -1, '3.0': 1}),
    ('<=1', {'1': 0, '1^p': 1}),
])
def test_deviation_says_below_above_or_excluded(spec, deviations):
    """How a running version misses a spec (the fleet report's drift of repository entries)."""
    s = r.parse_spec(spec)
    assert {v: s.deviation(v) for v in deviations} == deviations


@pytest.mark.parametrize('spec', ['>=', '1.2,<2', '>=1,<', '=>1', '~>1', '1 2', '>=1;<2', ''])
def test_bad_version_specs_are_refused_with_the_syntax(spec):
    with pytest.raises(r.RepositoryError) as e:
        r.parse_spec(spec)
    assert repr(spec.strip()) in str(e.value)


REPO = sums('docker-27.2.0-x86-64.raw', 'docker-27.10.1-x86-64.raw', 'docker-27.3.1-x86-64.raw',
            'docker-28.0.0~rc1-x86-64.raw', 'docker-29.0-arm64.raw', 'docker-27.3.1-arm64.raw',
            'containerd-9-x86-64.raw', 'docker-27.3.1-x86-64.raw.sig', 'docker.conf', 'SHA256SUMS.gpg')


def pick(spec, host=X86, patterns=None):
    return [e.name for e in r.choose(r.parse_index(REPO, 'i'), r.patterns_for('docker', patterns, host),
                                     r.parse_spec(spec)).candidates]


def test_the_newest_version_for_the_hosts_architecture_comes_first():
    assert pick('latest') == ['docker-28.0.0~rc1-x86-64.raw', 'docker-27.10.1-x86-64.raw', 'docker-27.3.1-x86-64.raw',
                              'docker-27.2.0-x86-64.raw']
    assert pick('latest', ARM) == ['docker-29.0-arm64.raw', 'docker-27.3.1-arm64.raw']
    assert pick('<28') == ['docker-27.10.1-x86-64.raw', 'docker-27.3.1-x86-64.raw', 'docker-27.2.0-x86-64.raw']
    assert pick('27.3.1') == ['docker-27.3.1-x86-64.raw'] and pick('27.3.1', ARM) == ['docker-27.3.1-arm64.raw']
    assert pick('29.0') == []


def test_several_patterns_the_first_matching_one_gives_the_fields():
    got = r.choose(r.parse_index(sums('d-2.raw', 'd-1-x86-64.raw', 'd-3-arm64.raw'), 'i'),
                   r.patterns_for('d', ['d-@v-%a.raw', 'd-@v.raw'], X86), r.parse_spec('latest'))
    # d-3-arm64.raw matches the second pattern with the version "3-arm64": systemd's syntax allows it
    assert [(e.name, e.version) for e in got.candidates] == [('d-3-arm64.raw', '3-arm64'), ('d-2.raw', '2'),
                                                             ('d-1-x86-64.raw', '1')]


def test_equal_versions_are_ordered_by_file_name_and_a_name_sum_must_match_the_index():
    h = hashlib.sha256(b'x').hexdigest()
    idx = [('d-1-%s.raw' % h, h), ('d-01-%s.raw' % ('0' * 64), '0' * 64)]
    got = r.choose(idx, [r.Pattern('d-@v-@h.raw')], r.parse_spec('latest')).candidates
    assert [e.name for e in got] == ['d-01-%s.raw' % ('0' * 64), 'd-1-%s.raw' % h]
    with pytest.raises(r.RepositoryError, match='inconsistent'):
        r.choose([('d-1-%s.raw' % h, '1' * 64)], [r.Pattern('d-@v-@h.raw')], r.parse_spec('latest'))


def test_no_match_messages_say_what_the_repository_has():
    idx = r.parse_index(REPO, 'http://h/SHA256SUMS')
    pats = r.patterns_for('kubelet', None, X86)
    msg = r.no_match_message('kubelet', 'http://h/SHA256SUMS', pats, r.parse_spec('latest'),
                             r.choose(idx, pats, r.parse_spec('latest')), idx)
    assert 'no file of http://h/SHA256SUMS matches kubelet-@v-x86-64.raw (10 file(s) listed' in msg
    pats = r.patterns_for('docker', None, X86)
    spec = r.parse_spec('>=30')
    msg = r.no_match_message('docker', 'http://h/SHA256SUMS', pats, spec, r.choose(idx, pats, spec), idx)
    assert msg == ('docker: no version of http://h/SHA256SUMS matching docker-@v-x86-64.raw fits version >=30 '
                   '(versions there: 28.0.0~rc1, 27.10.1, 27.3.1, 27.2.0); nothing was changed')


def test_the_files_of_sysupdate_d_5_example_1_each_match_their_transfers_pattern():
    """sysupdate.d(5), Example 1: the server of a hypothetical version 7 serves these files."""
    served = sums('SHA256SUMS.gpg', 'foobarOS_7_8b8186b1-2b4e-4eb6-ad39-8d4d18d2a8fb.verity.xz',
                  'foobarOS_7_f4d1234f-3ebf-47c4-b31d-4052982f9a2f.root.xz', 'foobarOS_7.efi', 'foobarOS_6.efi',
                  'foobarOS_7_devel.raw.xz')
    idx = r.parse_index(served, 'https://download.example.com/SHA256SUMS')
    latest = r.parse_spec('latest')
    for pattern, name, fields in (
            ('foobarOS_@v_@u.verity.xz', 'foobarOS_7_8b8186b1-2b4e-4eb6-ad39-8d4d18d2a8fb.verity.xz',
             {'u': '8b8186b1-2b4e-4eb6-ad39-8d4d18d2a8fb'}),
            ('foobarOS_@v_@u.root.xz', 'foobarOS_7_f4d1234f-3ebf-47c4-b31d-4052982f9a2f.root.xz',
             {'u': 'f4d1234f-3ebf-47c4-b31d-4052982f9a2f'}),
            ('foobarOS_@v.efi', 'foobarOS_7.efi', {}),
            ('foobarOS_@v_devel.raw.xz', 'foobarOS_7_devel.raw.xz', {})):
        best = r.choose(idx, [r.Pattern(pattern)], latest).candidates[0]
        assert (best.name, best.version, best.fields) == (name, '7', fields), pattern
    # foobarOS_@v.efi does not take the devel image, nor foobarOS_@v_@u.root.xz the verity one
    assert [e.name for e in r.choose(idx, [r.Pattern('foobarOS_@v.efi')], latest).candidates] == \
        ['foobarOS_7.efi', 'foobarOS_6.efi']


def test_index_entries_in_subdirectories_are_read_and_matched_by_patterns_naming_the_directory():
    """systemd-sysupdate accepts "subdir/file" lines (resource_load_from_web()); a pattern without
    a directory does not match them, one that names it does."""
    data = ('%s  old/d-1-x86-64.raw\n%s  d-2-x86-64.raw\n' % ('a' * 64, 'b' * 64)).encode()
    entries = r.parse_index(data, 'i')
    assert entries == [('old/d-1-x86-64.raw', 'a' * 64), ('d-2-x86-64.raw', 'b' * 64)]
    spec = r.parse_spec('latest')
    assert [e.name for e in r.choose(entries, r.patterns_for('d', None, X86), spec).candidates] == ['d-2-x86-64.raw']
    assert [e.name for e in r.choose(entries, r.patterns_for('d', 'old/d-@v-%a.raw', X86), spec).candidates] == \
        ['old/d-1-x86-64.raw']
    with pytest.raises(r.RepositoryError, match=r"'\*\*/' prefix"):
        r.patterns_for('d', '**/d-@v-%a.raw', X86)
