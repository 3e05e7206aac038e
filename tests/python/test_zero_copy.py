"""Zero copy both ways: Chunk.data is a read-only view of the shared
mapping, valid for as long as it is referenced (across collections, after
the reader and the writer are closed), and the mapping goes as soon as its
last view does; Writer.alloc() hands out a writable view of the segment,
which commit() and the calls that move or discard it take back."""

import gc
import os

import pytest

import speculo
from conftest import mappings_of

np = pytest.importorskip("numpy")


def address(buf):
    return np.frombuffer(buf, dtype=np.uint8).__array_interface__["data"][0]


def inode(segment_dir, seg):
    return os.stat(segment_dir / seg).st_ino


def test_data_is_a_read_only_memoryview(seg):
    with speculo.Writer(seg) as w:
        w.put(b"immutable")
    with speculo.Reader(seg) as r:
        c = r.next()
    view = c.data
    assert isinstance(view, memoryview)
    assert view.readonly and view.format == "B" and view.nbytes == c.size == 9
    with pytest.raises(TypeError):
        view[0] = 0
    with pytest.raises(TypeError):
        view[:] = b"IMMUTABLE"
    with pytest.raises(TypeError):
        memoryview(c)[0:1] = b"x"
    with pytest.raises(ValueError):
        np.frombuffer(view, dtype=np.uint8).setflags(write=True)
    assert bytes(c) == bytes(view) == b"immutable"


def test_numpy_reads_the_segment_in_place(seg, segment_dir):
    values = np.arange(1 << 16, dtype=np.float64)
    with speculo.Writer(seg) as w:
        w.put(values, name="frame")
        with speculo.Reader(seg) as r:
            a, b = r.get("frame"), r.get("frame")
            array = np.frombuffer(a.data, dtype=np.float64)
            assert not array.flags.writeable
            assert array.sum() == values.sum()
            # two lookups, one place: the segment's, in its mapping
            assert address(a.data) == address(b.data) == address(a)
            start = address(a.data)
            spans = [line.split()[0].split("-") for line in mappings_of(inode(segment_dir, seg))]
            assert any(int(lo, 16) <= start and start + a.size <= int(hi, 16) for lo, hi in spans)


def test_views_outlive_the_reader(seg):
    with speculo.Writer(seg) as w:
        w.put(b"kept")
    r = speculo.Reader(seg)
    view = r.next().data
    r.close()
    del r
    gc.collect()
    assert bytes(view) == b"kept"


def test_views_outlive_collections_and_the_writer(seg):
    w = speculo.Writer(seg)
    first = w.put(b"first version", name="doc")
    r = speculo.Reader(seg)
    old = r.get("doc")
    w.put(b"second version", name="doc")
    for _ in range(3):
        w.gc()  # the old version is dropped from the new files
        w.put(b"more")
    w.close()
    assert r.get_id(first) is None
    assert (old.id, bytes(old.data)) == (first, b"first version")
    r.close()
    assert bytes(old.data) == b"first version"


def test_mapping_is_unmapped_when_the_last_view_dies(seg, segment_dir):
    w = speculo.Writer(seg)
    w.put(b"payload")
    old = inode(segment_dir, seg)
    r = speculo.Reader(seg)
    view = r.next().data  # the Chunk itself is gone: the view holds it
    r.close()
    w.gc()  # a new file: only the view maps the old one now
    w.put(b"after")
    assert inode(segment_dir, seg) != old
    assert mappings_of(old), "the file was unmapped under a live view"
    assert bytes(view) == b"payload"
    del view
    assert not mappings_of(old), "the file stays mapped after its last view died"
    w.close()


def test_reader_moving_on_drops_the_old_file(seg, segment_dir):
    with speculo.Writer(seg) as w:
        w.put(b"a")
        r = speculo.Reader(seg)
        chunk = r.next()
        old = inode(segment_dir, seg)
        w.gc()
        w.put(b"b")
        assert bytes(r.next().data) == b"b"  # the reader maps the new file
        assert mappings_of(old)
        del chunk
        assert not mappings_of(old)
        r.close()


def test_nothing_stays_mapped_once_everything_is_gone(seg, segment_dir):
    with speculo.Writer(seg) as w:
        for i in range(100):
            w.put(b"%d" % i, name="n%d" % (i % 7))
        with speculo.Reader(seg) as r:
            kept = [c.data for c in r]
            r.wait(0)
            assert r.get("n3") is not None
        w.gc()
    ino = inode(segment_dir, seg)
    del kept
    assert not mappings_of(ino)


def test_alloc_writes_in_place_and_commit_publishes(seg):
    with speculo.Writer(seg) as w, speculo.Reader(seg) as r:
        view = w.alloc(8 * 1000)
        assert not view.readonly and view.nbytes == 8000
        frame = np.frombuffer(view, dtype=np.float64)
        frame[:] = np.arange(1000)
        assert r.next() is None  # nothing visible before the commit
        del frame
        cid = w.commit(name="frame")
        c = r.next()
        assert (c.id, c.name) == (cid, "frame")
        assert np.array_equal(np.frombuffer(c.data, dtype=np.float64), np.arange(1000))


def test_commit_releases_the_alloc_view(seg):
    with speculo.Writer(seg) as w:
        view = w.alloc(4)
        view[:] = b"done"
        w.commit()
        with pytest.raises(ValueError, match="released"):
            view[0] = 0
        with pytest.raises(ValueError):
            bytes(view)
    with speculo.Reader(seg) as r:
        assert bytes(r.next().data) == b"done"


def test_commit_refuses_while_other_views_live(seg):
    with speculo.Writer(seg) as w:
        view = w.alloc(8)
        part = view[2:6]
        part[:] = b"abcd"
        with pytest.raises(BufferError):
            w.commit()
        part[0:1] = b"A"  # still ours: nothing was published
        del part
        array = np.frombuffer(w.alloc(8), dtype=np.uint8)  # a new reservation
        array[:] = 7
        with pytest.raises(BufferError):
            w.commit()
        with pytest.raises(BufferError):
            w.close()
        del array
        w.commit()
    with speculo.Reader(seg) as r:
        assert bytes(r.next().data) == bytes([7] * 8)


@pytest.mark.parametrize("op", ["alloc", "put", "gc", "close"])
def test_calls_that_move_or_discard_the_reservation_release_its_view(seg, op):
    w = speculo.Writer(seg)
    view = w.alloc(4)
    view[:] = b"abcd"
    {"alloc": lambda: w.alloc(4), "put": lambda: w.put(b"x"), "gc": w.gc,
     "close": w.close}[op]()
    with pytest.raises(ValueError):
        view[0] = 0
    w.close()


def test_gc_carries_the_reservation_to_commit(seg):
    with speculo.Writer(seg) as w:
        w.alloc(5)[:] = b"moved"
        w.gc()
        w.commit(name="carried")
    with speculo.Reader(seg) as r:
        assert bytes(r.get("carried").data) == b"moved"


def test_commit_without_alloc_is_a_value_error(seg):
    with speculo.Writer(seg) as w:
        with pytest.raises(ValueError, match="alloc"):
            w.commit()
        w.alloc(1)[:] = b"x"
        w.commit()
        with pytest.raises(ValueError):
            w.commit()


def test_the_view_keeps_the_writer_alive(seg):
    view = speculo.Writer(seg).alloc(3)  # the Writer object is only referenced by the view
    gc.collect()
    view[:] = b"abc"
    assert bytes(view) == b"abc"
    del view  # the reservation dies with it, then the writer, uncommitted
    with speculo.Writer(seg), speculo.Reader(seg) as r:
        assert r.next() is None


def test_empty_alloc(seg):
    with speculo.Writer(seg) as w:
        assert w.alloc(0).nbytes == 0
        w.commit(name="empty")
    with speculo.Reader(seg) as r:
        assert r.get("empty").size == 0
