"""What a writer commits, a reader gets back: ids, names, bytes, times,
TTL, replacements; lookups, positions, segment listing and removal; the
errors of bad names, missing segments and a held writer role."""

import errno
import json
import math
import os
import subprocess
import time

import pytest

import speculo
from conftest import cli, run_python, spawn_python, wait_for


def chunks(reader):
    return [(c.id, c.name, bytes(c.data)) for c in reader]


def test_put_returns_ids_increasing_in_commit_order(seg):
    with speculo.Writer(seg) as w:
        ids = [w.put(b"x%d" % i) for i in range(10)]
        assert ids == sorted(ids) and len(set(ids)) == 10 and ids[0] >= 1
        assert w.last_id == ids[-1]
    with speculo.Reader(seg) as r:
        assert chunks(r) == [(i, None, b"x%d" % k) for k, i in enumerate(ids)]


def test_chunk_carries_name_bytes_and_times(seg):
    before = time.time_ns()
    with speculo.Writer(seg) as w:
        cid = w.put(b"21.5 C", name="temperature", ttl=30)
    after = time.time_ns()
    with speculo.Reader(seg) as r:
        c = r.next()
    assert (c.id, c.name, bytes(c.data), c.size, c.replaces) == (cid, "temperature", b"21.5 C", 6, 0)
    assert before <= c.committed_ns <= after
    assert c.expires_ns == c.committed_ns + 30 * 10**9
    assert repr(c) == f"<speculo.Chunk id={cid} name='temperature' size=6>"


def test_put_takes_any_contiguous_bytes_like(seg):
    array = pytest.importorskip("array")
    with speculo.Writer(seg) as w:
        w.put(bytearray(b"ba"))
        w.put(memoryview(b"xmvx")[1:3])
        w.put(array.array("H", [1, 2]))
        with pytest.raises(TypeError):
            w.put("a str is not bytes")
    with speculo.Reader(seg) as r:
        assert [bytes(c.data) for c in r] == [b"ba", b"mv", bytes(array.array("H", [1, 2]))]


def test_ttl_none_and_zero_never_expire(seg):
    with speculo.Writer(seg) as w:
        w.put(b"a", ttl=None)
        w.put(b"b", ttl=0)
    with speculo.Reader(seg) as r:
        assert [c.expires_ns for c in r] == [0, 0]


def test_ttl_is_rounded_up_to_a_nanosecond(seg):
    with speculo.Writer(seg) as w:
        cid = w.put(b"a", ttl=1e-12)
        assert w.put(b"b", ttl=1.5) > cid
    with speculo.Reader(seg) as r:
        c = r.get_id(cid)
        assert c is None or c.expires_ns == c.committed_ns + 1
        c = r.next()
        assert c.expires_ns - c.committed_ns == 1_500_000_000


@pytest.mark.parametrize("ttl", [-1, -0.5, math.nan, 1e300, "5"])
def test_bad_ttl_is_refused(seg, ttl):
    with speculo.Writer(seg) as w:
        with pytest.raises((ValueError, TypeError)):
            w.put(b"x", ttl=ttl)


def test_expired_chunk_disappears(seg):
    with speculo.Writer(seg) as w:
        w.put(b"short", name="short", ttl=0.05)
        w.put(b"long", name="long")
    with speculo.Reader(seg) as r:
        wait_for(lambda: r.get("short") is None, "the chunk to expire")
        assert bytes(r.get("long").data) == b"long"
        assert [c.name for c in r] == ["long"]


def test_named_update_obsoletes_previous_version(seg):
    with speculo.Writer(seg) as w:
        first = w.put(b"v1", name="status")
        second = w.put(b"v2", name="status")
    with speculo.Reader(seg) as r:
        c = r.get("status")
        assert (c.id, bytes(c.data), c.replaces) == (second, b"v2", first)
        assert r.get_id(first) is None
        assert chunks(r) == [(second, "status", b"v2")]


def test_replaces_obsoletes_the_chunk_it_names(seg):
    with speculo.Writer(seg) as w:
        old = w.put(b"old")
        new = w.put(b"new", replaces=old)
        with pytest.raises(FileNotFoundError, match="replaces="):
            w.put(b"again", replaces=old)
    with speculo.Reader(seg) as r:
        assert r.get_id(old) is None
        assert r.get_id(new).replaces == old
        assert [c.id for c in r] == [new]


def test_obsolete_hides_a_chunk(seg):
    with speculo.Writer(seg) as w:
        a = w.put(b"a")
        b = w.put(b"b")
        w.obsolete(a)
        with pytest.raises(FileNotFoundError):
            w.obsolete(a)
        with pytest.raises(ValueError):
            w.obsolete(-1)
    with speculo.Reader(seg) as r:
        assert [c.id for c in r] == [b]


def test_get_id_and_seek_position_the_reader(seg):
    with speculo.Writer(seg) as w:
        ids = [w.put(b"%d" % i) for i in range(5)]
        with speculo.Reader(seg) as r:
            assert bytes(r.get_id(ids[2]).data) == b"2"
            assert r.get_id(10**6) is None
            r.seek(ids[2])
            assert [c.id for c in r] == ids[3:]
            r.seek(0)
            assert r.next().id == ids[0]
            r.seek(speculo.END)
            assert r.next() is None
            new = w.put(b"new")
            assert r.next().id == new


def test_get_does_not_move_the_position(seg):
    with speculo.Writer(seg) as w:
        a = w.put(b"a", name="a")
        w.put(b"b", name="b")
    with speculo.Reader(seg) as r:
        assert r.get("b").name == "b"
        assert r.next().id == a
        assert r.get("nothing") is None


def test_iteration_gives_what_is_there_now_and_resumes(seg):
    with speculo.Writer(seg) as w:
        w.put(b"1")
        with speculo.Reader(seg) as r:
            assert [bytes(c.data) for c in r] == [b"1"]
            assert list(r) == []
            w.put(b"2")
            assert [bytes(c.data) for c in r] == [b"2"]
            assert r.next() is None


def test_empty_and_large_chunks(seg):
    big = os.urandom(9 << 20)  # over the default capacity: the segment grows
    with speculo.Writer(seg) as w:
        w.put(b"")
        w.put(big, name="big")
    with speculo.Reader(seg) as r:
        empty = r.next()
        assert empty.size == 0 and bytes(empty.data) == b"" and empty.data.nbytes == 0
        assert r.get("big").data == big


def test_info_has_the_keys_and_values_of_the_cli(seg):
    with speculo.Writer(seg) as w:
        w.put(b"a", name="a")
        w.put(b"b", name="a")
        w.put(b"c", ttl=60)
        with speculo.Reader(seg) as r:
            mine = r.info()
        theirs = json.loads(cli("info", "--json", seg).stdout)
    assert list(mine) == list(theirs)
    assert mine == theirs
    assert mine["writer_alive"] is True and mine["writer_pid"] == os.getpid()
    assert (mine["live_chunks"], mine["obsolete_chunks"], mine["last_id"]) == (2, 1, 3)


def test_info_of_a_segment_without_commits(seg):
    speculo.Writer(seg).close()
    with speculo.Reader(seg) as r:
        info = r.info()
    assert info["last_commit"] is None and info["last_commit_ns"] is None
    assert info["writer_alive"] is False and info["last_id"] == 0
    assert info == json.loads(cli("info", "--json", seg).stdout)


def test_segments_lists_segments_sorted(segment_dir):
    assert speculo.segment_dir() == str(segment_dir)
    for name in ("b", "a", "c.d"):
        speculo.Writer(name).close()
    (segment_dir / ".hidden").write_bytes(b"")
    (segment_dir / "sub").mkdir()
    assert speculo.segments() == ["a", "b", "c.d"]


def test_segments_of_a_missing_directory_is_empty(segment_dir, monkeypatch):
    monkeypatch.setenv("SPECULO_DIR", str(segment_dir / "missing"))
    assert speculo.segments() == []


def test_unsafe_directory_is_a_permission_error(segment_dir, seg):
    os.chmod(segment_dir, 0o777)
    with pytest.raises(PermissionError, match="writable by others"):
        speculo.segments()
    with pytest.raises(PermissionError):
        speculo.Writer(seg)


def test_remove(seg):
    with speculo.Writer(seg) as w:
        w.put(b"x")
        with pytest.raises(OSError) as e:
            speculo.remove(seg)
        assert e.value.errno == errno.EBUSY
    speculo.remove(seg)
    assert speculo.segments() == []
    with pytest.raises(FileNotFoundError):
        speculo.remove(seg)


def test_remove_force_while_the_writer_lives(seg):
    with speculo.Writer(seg):
        speculo.remove(seg, force=True)
        assert seg not in speculo.segments()


def test_missing_segment_is_file_not_found(seg):
    with pytest.raises(FileNotFoundError) as e:
        speculo.Reader(seg)
    assert e.value.errno == errno.ENOENT and e.value.filename == seg


@pytest.mark.parametrize("name", ["", ".dot", "a/b", "x" * 201, "sp ace", "é", "nul\0"])
def test_bad_segment_names_are_value_errors(name):
    with pytest.raises(ValueError):
        speculo.Reader(name)
    with pytest.raises(ValueError):
        speculo.Writer(name)
    with pytest.raises(ValueError):
        speculo.remove(name)


def test_segment_name_must_be_a_str():
    with pytest.raises(TypeError):
        speculo.Reader(b"bytes")
    with pytest.raises(TypeError):
        speculo.Writer(5)


@pytest.mark.parametrize("name", ["", "1abc", ".x", "-x", "a b", "x" * 256])
def test_bad_chunk_names_are_value_errors(seg, name):
    with speculo.Writer(seg) as w, speculo.Reader(seg) as r:
        with pytest.raises(ValueError):
            w.put(b"x", name=name)
        with pytest.raises(ValueError):
            r.get(name)


def test_bad_arguments_are_value_errors(seg):
    with speculo.Writer(seg) as w, speculo.Reader(seg) as r:
        for bad in (-1, 2**64):
            with pytest.raises(ValueError):
                r.get_id(bad)
            with pytest.raises(ValueError):
                r.seek(bad)
            with pytest.raises(ValueError):
                w.put(b"x", replaces=bad)
        with pytest.raises(ValueError):
            w.alloc(-1)
        with pytest.raises(ValueError):
            r.wait(-1)
        with pytest.raises(ValueError):
            speculo.Writer(seg + "x", capacity=-1)


def test_closed_handles_refuse_with_value_error(seg):
    w = speculo.Writer(seg)
    w.close()
    w.close()
    assert w.closed and repr(w) == f"<speculo.Writer segment='{seg}' closed>"
    with pytest.raises(ValueError):
        w.put(b"x")
    r = speculo.Reader(seg)
    r.close()
    r.close()
    assert r.closed
    for call in (r.next, r.info, lambda: r.get("a"), lambda: r.wait(0), lambda: list(r)):
        with pytest.raises(ValueError):
            call()


def test_second_writer_in_this_process_is_busy(seg):
    with speculo.Writer(seg):
        with pytest.raises(OSError) as e:
            speculo.Writer(seg)
        assert e.value.errno == errno.EBUSY and "another live writer" in str(e.value)


def test_second_writer_in_another_process_is_busy(seg):
    with speculo.Writer(seg):
        r = run_python("import speculo, sys\n"
                       "try:\n"
                       "    speculo.Writer(sys.argv[1])\n"
                       "except OSError as e:\n"
                       "    print(e.errno)\n", seg)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == errno.EBUSY


def test_role_of_a_killed_writer_is_taken_over(seg):
    child = spawn_python("import speculo, sys\n"
                         "w = speculo.Writer(sys.argv[1])\n"
                         "w.put(b'kept', name='kept')\n"
                         "w.alloc(10)[:] = b'0123456789'\n"
                         "print('ready', flush=True)\n"
                         "sys.stdin.read()\n", seg, stdin=subprocess.PIPE)
    assert child.stdout.readline() == "ready\n"
    child.kill()
    child.communicate()
    with speculo.Writer(seg) as w:
        w.put(b"next")
    with speculo.Reader(seg) as r:
        assert [bytes(c.data) for c in r] == [b"kept", b"next"]


def test_forked_child_writer_refuses_with_ebusy(seg):
    with speculo.Writer(seg) as w:
        view = w.alloc(8)
        view[:4] = b"mine"
        pid = os.fork()
        if pid == 0:  # the child: no role, no mapping; nothing may crash
            status = 1
            try:
                view[4:] = b"kid!"  # lands in private memory
                try:
                    w.put(b"from the child")
                except OSError as e:
                    status = 0 if e.errno == errno.EBUSY else 2
            finally:
                os._exit(status)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        view[4:] = b"dad!"
        w.commit(name="parent")
    with speculo.Reader(seg) as r:
        assert chunks(r) == [(1, "parent", b"minedad!")]


def test_cli_reads_what_python_writes_and_back(seg):
    with speculo.Writer(seg) as w:
        w.put(b"from python", name="py")
    assert cli("cat", seg, "py").stdout == b"from python"
    assert b"py" in cli("ls", seg).stdout
    speculo.remove(seg)
    cid = int(cli("put", seg, "sh", "--ttl", "30", input=b"from the shell").stdout)
    with speculo.Reader(seg) as r:
        c = r.get("sh")
        assert (c.id, bytes(c.data), c.expires_ns - c.committed_ns) == (cid, b"from the shell",
                                                                         30 * 10**9)
