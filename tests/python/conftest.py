"""Fixtures and helpers of the Python suite (run by tests/python/run-pytest).

Every test gets a fresh segment directory ($SPECULO_DIR, under /dev/shm,
removed afterwards). Tests wait for conditions with deadlines, never for
a fixed time, and assert what happens, never how fast.
"""

import itertools
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

import speculo

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLI = ROOT / "cli" / "speculo"
HERE = pathlib.Path(__file__).resolve().parent

# Generous: a loaded 2-CPU machine, maybe a sanitizer build.
DEADLINE = 60.0


def wait_for(cond, what, timeout=DEADLINE):
    """Poll cond() until it returns something true (returned), or fail
    after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.001)


def sleeping_in_futex(tid):
    """Is thread tid (of this process or another: a pid is its main
    thread's tid) asleep in a futex wait?"""
    for path in (f"/proc/{tid}/wchan", f"/proc/self/task/{tid}/wchan"):
        try:
            with open(path) as f:
                return "futex" in f.read()
        except OSError:
            continue
    return False


def mappings_of(inode):
    """The lines of /proc/self/maps that map the file with this inode."""
    with open("/proc/self/maps") as f:
        return [line for line in f if len(line.split()) >= 5 and line.split()[4] == str(inode)]


def python_env(base=None):
    """The environment for a child Python (base, else this one's), with
    the module found."""
    env = dict(os.environ if base is None else base)
    pkg = str(pathlib.Path(speculo.__file__).resolve().parents[1])
    env["PYTHONPATH"] = pkg + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_python(code, *args, timeout=DEADLINE, **kw):
    """Run code in a child Python; its CompletedProcess (text output)."""
    env = python_env(kw.pop("env", None))
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout, **kw)


def spawn_python(code, *args, **kw):
    """Start code in a child Python, stdout and stderr piped (text)."""
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=python_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def cli(*args, input=None, timeout=DEADLINE, check=True):
    """Run the tree's `speculo` tool; its CompletedProcess (bytes output)."""
    r = subprocess.run([str(CLI), *map(str, args)], input=input, capture_output=True,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"speculo {' '.join(map(str, args))}: exit {r.returncode}: "
                             f"{r.stderr.decode(errors='replace')}")
    return r


def compiler():
    """The compiler command the tree was built with (the Makefile records
    it in .build-flags), so that a sanitizer build links alike."""
    try:
        cmd = (ROOT / ".build-flags").read_text().strip()
    except OSError:
        cmd = ""
    return shlex.split(cmd) or ["cc", "-std=c11", "-D_GNU_SOURCE", "-pthread"]


@pytest.fixture(scope="session")
def build_dir():
    d = tempfile.mkdtemp(prefix="speculo-pytest-build-")
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)


def build_c(build_dir, source, name):
    """Compile a C program against the tree's library; its path."""
    exe = build_dir / name
    if not exe.exists():
        lib = ROOT / "lib"
        r = subprocess.run([*compiler(), f"-I{lib}", "-o", str(exe), str(source),
                            str(lib / "libspeculo.a")], capture_output=True, text=True)
        if r.returncode != 0:
            raise AssertionError(f"compiling {source} failed:\n{r.stderr}")
    return exe


@pytest.fixture(scope="session")
def c_peer(build_dir):
    """tests/python/c_peer.c, built: the C reader and writer."""
    return build_c(build_dir, HERE / "c_peer.c", "c_peer")


@pytest.fixture(autouse=True)
def segment_dir(monkeypatch):
    """A fresh segment directory for each test, as $SPECULO_DIR."""
    d = tempfile.mkdtemp(prefix="speculo-pytest-", dir="/dev/shm")
    os.chmod(d, 0o700)
    monkeypatch.setenv("SPECULO_DIR", d)
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)


_names = itertools.count(1)


@pytest.fixture
def seg():
    """A segment name of its own."""
    return f"seg{next(_names)}"
