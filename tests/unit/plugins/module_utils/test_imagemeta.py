# -*- coding: utf-8 -*-
"""imagemeta's cache: what an image holds is read once per image identity, and written only
where the caller allows it."""

import json
import os

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import imagemeta, images


@pytest.fixture
def image(tmp_path, make_tree, build_image):
    root = tmp_path / 'root'
    (root / 'run').mkdir(parents=True)
    path = build_image(make_tree(tmp_path / 'tree', 'sq', release='ID=_any\nVERSION_ID=1\n'), tmp_path / 'sq.raw')
    return root, path


def _load(path, cache):
    img = images.Image(name='sq', cls='sysext', entry='/x/sq.raw', path='/x/sq.raw', host_path=path, type='raw')
    imagemeta.load(img, cache, 'x86-64')
    return img


def _reads(monkeypatch):
    calls = []
    real = imagemeta.read_file_image

    def counting(*a, **kw):
        calls.append(a[0])
        return real(*a, **kw)
    monkeypatch.setattr(imagemeta, 'read_file_image', counting)
    return calls


def test_an_unchanged_image_is_not_read_again(image, monkeypatch):
    root, path = image
    calls = _reads(monkeypatch)
    c = imagemeta.Cache(str(root), write='create')
    first = _load(path, c)
    c.save()
    assert calls == [path] and os.path.isfile(root / 'run/tucked-sysext/images.json')
    again = _load(path, imagemeta.Cache(str(root)))
    assert calls == [path], 'the cache answered'
    assert (again.release, again.release_file, again.fstype, again.compression, again.container) == \
        (first.release, first.release_file, 'squashfs', 'gzip', 'filesystem')
    os.utime(path, ns=(1, 1))                      # a changed identity (here mtime, and ctime) reads again
    _load(path, imagemeta.Cache(str(root)))
    assert calls == [path, path]


def test_where_the_cache_is_written(image):
    root, path = image
    for mode in ('update', 'off'):
        c = imagemeta.Cache(str(root), write=mode)
        _load(path, c)
        c.save()
        assert not os.path.exists(root / 'run/tucked-sysext'), mode     # no directory made
    (root / 'run/tucked-sysext').mkdir()
    c = imagemeta.Cache(str(root), write='off')
    _load(path, c)
    c.save()
    assert os.listdir(root / 'run/tucked-sysext') == [], 'check mode writes nothing'
    c = imagemeta.Cache(str(root), write='update')
    _load(path, c)
    c.save()
    assert os.listdir(root / 'run/tucked-sysext') == ['images.json']
    with pytest.raises(ValueError):
        imagemeta.Cache(str(root), write='always')


def test_a_garbage_or_foreign_cache_is_ignored(image, monkeypatch):
    root, path = image
    (root / 'run/tucked-sysext').mkdir()
    calls = _reads(monkeypatch)
    for text in ('{not json', json.dumps({'version': -1, 'entries': {}}), json.dumps([1, 2])):
        (root / 'run/tucked-sysext/images.json').write_text(text)
        img = _load(path, imagemeta.Cache(str(root)))
        assert img.release['VERSION_ID'] == '1'
    assert len(calls) == 3
    os.unlink(root / 'run/tucked-sysext/images.json')
    os.mkfifo(root / 'run/tucked-sysext/images.json')     # never opened blocking
    assert _load(path, imagemeta.Cache(str(root))).release['VERSION_ID'] == '1'


def test_the_cache_can_be_turned_off(image, monkeypatch):
    root, path = image
    calls = _reads(monkeypatch)
    c = imagemeta.Cache(str(root), write='create')
    _load(path, c)
    c.save()
    monkeypatch.setenv('TUCKED_SYSEXT_IMAGE_CACHE', '0')
    _load(path, imagemeta.Cache(str(root)))
    assert len(calls) == 2
