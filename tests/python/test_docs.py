"""What the documentation promises: the Python examples of docs/examples/
run and print what they say (the sensor reader against the C writer
sensor.c), docs/python.md shows them as they are, every public object has
a docstring and help(speculo) shows the API, the type stubs match the
module, and `make install` puts the package where Python finds it."""

import ast
import inspect
import os
import pydoc
import re
import subprocess
import sys

import pytest

import speculo
from conftest import DEADLINE, ROOT, build_c, python_env

EXAMPLES = ROOT / "docs" / "examples"


def run_example(name, *args, timeout=DEADLINE):
    r = subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)],
                       env=python_env(), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{name}: exit {r.returncode}\n{r.stderr}"
    return r.stdout


def test_sensor_reader_follows_the_c_sensor(build_dir, segment_dir):
    sensor = subprocess.Popen([str(build_c(build_dir, EXAMPLES / "sensor.c", "sensor")), "30"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        out = run_example("sensor_reader.py", 7)
    finally:
        sensor.terminate()
        sensor.wait(DEADLINE)
    lines = out.splitlines()
    assert lines[:3] == ["config station: demo", "config unit: C", "config period_ms: 200"]
    readings = [line for line in lines[3:] if line.startswith("#")]
    assert len(readings) == 7
    for line in readings:
        assert re.fullmatch(r"#\d+: \d\d:\d\d:\d\d reading \d+: \d+\.\d\d C", line), line
    ids = [int(line[1:line.index(":")]) for line in readings]
    assert ids == sorted(ids)
    statuses = [line for line in lines if line.startswith("status: ")]
    assert len(statuses) == 1 and re.match(r"status: up \d+ s, \d+ readings", statuses[0])


def test_numpy_frames_example():
    pytest.importorskip("numpy")
    assert run_example("numpy_frames.py", "write", 5) == ""
    assert run_example("numpy_frames.py", "read", 5) == (
        "frame 4: mean 4.0000, first [4.0, 5.0, 6.0, 7.0]\n")


def test_asyncio_example(seg):
    with speculo.Writer(seg) as w:
        w.put(b"before")
        child = subprocess.Popen([sys.executable, str(EXAMPLES / "asyncio_reader.py"), seg, "3"],
                                 env=python_env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        assert child.stdout.readline() == "1 before\n"
        w.put(b"second")
        w.put(b"third")
        out, err = child.communicate(timeout=DEADLINE)
    assert child.returncode == 0, err
    assert out == "2 second\n3 third\n"


def shown_in(doc, example):
    """The code block that follows the marker of an example in a document."""
    text = (ROOT / "docs" / doc).read_text()
    marker = f"<!-- docs/examples/{example} -->"
    assert marker in text, f"{doc} lost its {example} marker"
    block = text[text.index(marker):]
    start = block.index("```python\n") + len("```python\n")
    return block[start:block.index("```\n", start)]


@pytest.mark.parametrize("example", ["sensor_reader.py", "numpy_frames.py",
                                     "asyncio_reader.py"])
def test_python_md_shows_the_examples_verbatim(example):
    assert shown_in("python.md", example) == (EXAMPLES / example).read_text()


PUBLIC = [speculo.Chunk, speculo.Reader, speculo.Writer, speculo.segments, speculo.remove,
          speculo.segment_dir]


def test_every_public_object_has_a_docstring():
    assert len(speculo.__doc__) > 500
    for obj in PUBLIC:
        assert obj.__doc__ and len(obj.__doc__) > 40, obj
        if inspect.isclass(obj):
            for name, member in vars(obj).items():
                if not name.startswith("_") or name in ("__enter__", "__exit__"):
                    assert getattr(member, "__doc__", None), f"{obj.__name__}.{name}"


def test_help_shows_the_api():
    text = pydoc.render_doc(speculo, renderer=pydoc.plaintext)
    for what in ("class Reader", "class Writer", "class Chunk", "follow(self, /, timeout=None)",
                 "alloc(self, size, /)", "wait(self, /, timeout=None)", "segments()",
                 "remove(segment, *, force=False)", "Writer(segment, *, capacity=0",
                 "asyncio.to_thread(reader.wait, 1.0)", "KeyboardInterrupt"):
        assert what in text, what
    for cls in (speculo.Reader, speculo.Writer, speculo.Chunk):
        assert cls.__module__ == "speculo"
    # signatures for help() and editors
    assert str(inspect.signature(speculo.Writer.put)) == (
        "(self, /, data, *, name=None, ttl=None, replaces=None)")
    assert str(inspect.signature(speculo.Reader)) == "(segment)"


def stub_api():
    """{name: set of member names} of python/speculo/speculo.pyi."""
    tree = ast.parse((ROOT / "python" / "speculo" / "speculo.pyi").read_text())
    api = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            api[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
        elif isinstance(node, ast.FunctionDef):
            api[node.name] = set()
        elif isinstance(node, ast.AnnAssign):
            api[node.target.id] = set()
    return api


def test_type_stubs_match_the_module():
    stubs = stub_api()
    assert set(speculo.__all__) == {n for n in stubs if not n.startswith("_")}
    for name in speculo.__all__:
        obj = getattr(speculo, name)
        if inspect.isclass(obj):
            real = {n for n in dir(obj) if not n.startswith("_")} | (
                {"__init__", "__iter__", "__next__", "__enter__", "__exit__", "__buffer__"}
                & stubs[name])
            assert stubs[name] == real, name


def test_make_install_puts_the_package_where_python_finds_it(tmp_path):
    for prefix, where in (("/usr", "usr/lib/python3/dist-packages"),
                          ("/usr/local", "usr/local/lib/python3.%d/dist-packages"
                           % sys.version_info[1]),
                          ("/opt/x", "elsewhere")):
        dest = tmp_path / prefix.strip("/").replace("/", "_")
        extra = [f"PYTHONDIR=/{where}"] if where == "elsewhere" else []
        r = subprocess.run(["make", "-s", "-C", str(ROOT), "install-python", f"PREFIX={prefix}",
                            f"DESTDIR={dest}", f"PYTHON={sys.executable}", *extra],
                           capture_output=True, text=True, timeout=DEADLINE)
        assert r.returncode == 0, r.stderr
        pkg = dest / where / "speculo"
        names = sorted(os.listdir(pkg))
        module = [n for n in names if re.fullmatch(r"speculo\.cpython-.*\.so", n)]
        assert len(module) == 1 and sorted(set(names) - set(module)) == [
            "__init__.py", "py.typed", "speculo.pyi"], names
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONPATH"] = str(dest / where)
        r = subprocess.run([sys.executable, "-c", "import speculo; print(speculo.__file__)"],
                           env=env, capture_output=True, text=True, timeout=DEADLINE,
                           cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(str(pkg))
