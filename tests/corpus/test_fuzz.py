# -*- coding: utf-8 -*-
"""Property tests (hypothesis) for the two parsers that read what others wrote: the
os-release / extension-release parser and the origin reader. Whatever the input, they return
a value or raise their own error with a message; nothing else."""

import json
import string

from hypothesis import given, settings, strategies as st

KEY = st.from_regex(r'\A[A-Z_][A-Z0-9_]{0,20}\Z')
SAFE_VALUE = st.text(alphabet=string.ascii_letters + string.digits + ' ._-/:+@', max_size=40)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=400))
def test_release_parser_never_crashes(text):
    from ansible_collections.tucked.sysext.plugins.module_utils.release import ReleaseError, parse_env
    try:
        out = parse_env(text)
    except ReleaseError as e:
        assert str(e)
    else:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in out.items())


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_release_bytes_never_crash(data):
    from ansible_collections.tucked.sysext.plugins.module_utils.release import ReleaseError, read_release_bytes
    try:
        read_release_bytes(data, '/fuzz/release')
    except ReleaseError as e:
        assert '/fuzz/release' in str(e)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEY, SAFE_VALUE, max_size=8))
def test_quoted_values_round_trip(fields):
    from ansible_collections.tucked.sysext.plugins.module_utils.release import parse_env
    text = ''.join('%s="%s"\n' % (k, v.replace('\\', '\\\\').replace('"', '\\"')) for k, v in fields.items())
    assert parse_env(text) == fields


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20)


@settings(max_examples=500, deadline=None)
@given(JSON)
def test_origin_reader_on_any_json(doc):
    from ansible_collections.tucked.sysext.plugins.module_utils import origin
    try:
        out = origin.loads(json.dumps(doc), '/fuzz/origin')
    except origin.OriginError as e:
        assert '/fuzz/origin' in str(e)
    else:
        assert isinstance(out, dict) and isinstance(out.get('extensions', {}), dict)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_origin_reader_on_any_text(text):
    from ansible_collections.tucked.sysext.plugins.module_utils import origin
    try:
        origin.loads(text, '/fuzz/origin')
    except origin.OriginError as e:
        assert '/fuzz/origin' in str(e)
