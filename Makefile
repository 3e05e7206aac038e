# speculo — top-level Makefile.
#
#   make                  lib/libspeculo.{so,a}, fusefs/speculofs, cli/speculo
#   make check            every test suite (unit, multi-process, CLI, FUSE)
#   make SANITIZE=address,undefined check   (or SANITIZE=thread)
#   make doc | install | uninstall | clean | lint | demo | bench
#   make fuzz | stress | crash-test | coverage     (docs/RELIABILITY.md)
#   make deb              Debian packages into dist/ (scripts/make-deb)
#
# CPPFLAGS/CFLAGS/LDFLAGS are the caller's; what the build needs is added
# with `override`, so `make CFLAGS=-O0` keeps the warnings and the standard.

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
SYSTEMDUSERUNITDIR ?= $(PREFIX)/lib/systemd/user

VERSION := 0.2.0
SONAME  := libspeculo.so.0
REALNAME := libspeculo.so.$(VERSION)

CC       ?= cc
CFLAGS   ?= -O2 -g
WERROR   ?= -Werror
SANITIZE ?=
PKG_CONFIG ?= pkg-config

WARNINGS := -Wall -Wextra -Wstrict-prototypes -Wmissing-prototypes -Wshadow \
            -Wpointer-arith -Wformat=2 -fno-common
override CFLAGS += -std=c11 -D_GNU_SOURCE $(WARNINGS) $(WERROR) -pthread
ifneq ($(SANITIZE),)
override CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
override LDFLAGS += -fsanitize=$(SANITIZE)
endif

FUSE_CFLAGS  = $(shell $(PKG_CONFIG) --cflags fuse3 2>/dev/null)
FUSE_LIBS    = $(shell $(PKG_CONFIG) --libs fuse3 2>/dev/null)
CHECK_CFLAGS = $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS   = $(shell $(PKG_CONFIG) --libs check 2>/dev/null)
# The bridge (speculo bridge out|in, bridge/) is built only with the NATS
# client library; speculo itself never links it.
HAVE_NATS   := $(shell $(PKG_CONFIG) --exists libnats 2>/dev/null && echo yes)
NATS_CFLAGS  = $(shell $(PKG_CONFIG) --cflags libnats 2>/dev/null)
NATS_LIBS    = $(shell $(PKG_CONFIG) --libs libnats 2>/dev/null)

LIB_SRCS  := $(wildcard lib/*.c)
LIB_OBJS  := $(LIB_SRCS:.c=.o)
LIB_PIC   := $(LIB_SRCS:.c=.pic.o)
FUSE_SRCS := $(wildcard fusefs/*.c)
CLI_SRCS  := $(wildcard cli/*.c)
TCOMMON_SRCS := $(wildcard tests/common/*.c)
TLIB_SRCS  := $(wildcard tests/lib/*.c)
TFUSE_SRCS := $(wildcard tests/fuse/*.c)
TCLI_SRCS  := $(wildcard tests/cli/*.c)
BRIDGE_SRCS  := $(wildcard bridge/*.c)
TBRIDGE_SRCS := $(wildcard tests/bridge/*.c)

PROGS :=
ifneq ($(FUSE_SRCS),)
PROGS += fusefs/speculofs
endif
ifneq ($(CLI_SRCS),)
PROGS += cli/speculo
endif

TESTS := tests/check_lib tests/check_fuzz_reader
ifneq ($(TFUSE_SRCS),)
TESTS += tests/check_fuse
endif
ifneq ($(FUSE_SRCS),)
TESTS += tests/check_sfs tests/check_fuzz
endif
ifneq ($(TCLI_SRCS),)
TESTS += tests/check_cli
endif
ifeq ($(HAVE_NATS),yes)
PROGS += cli/speculo-bridge
ifneq ($(TBRIDGE_SRCS),)
TESTS += tests/check_bridge
endif
endif

.PHONY: all check doc install uninstall clean lint demo bench FORCE
all: lib/libspeculo.a lib/libspeculo.so lib/speculo.pc $(PROGS)

# Rebuild everything when the flags change (e.g. SANITIZE on or off).
.build-flags: FORCE
	@echo '$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS)' | cmp -s - $@ || \
	    echo '$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS)' > $@

LIB_HDRS := $(wildcard lib/*.h)

lib/%.o: lib/%.c $(LIB_HDRS) .build-flags
	$(CC) $(CPPFLAGS) $(CFLAGS) -DSPECULO_BUILDING -fvisibility=hidden -c -o $@ $<
lib/%.pic.o: lib/%.c $(LIB_HDRS) .build-flags
	$(CC) $(CPPFLAGS) $(CFLAGS) -DSPECULO_BUILDING -fvisibility=hidden -fPIC -c -o $@ $<

lib/libspeculo.a: $(LIB_OBJS)
	rm -f $@ && $(AR) rcs $@ $^
lib/$(REALNAME): $(LIB_PIC) lib/libspeculo.map
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,-z,defs -Wl,--version-script=lib/libspeculo.map \
	    -o $@ $(LIB_PIC) $(LDFLAGS) -pthread
lib/libspeculo.so: lib/$(REALNAME)
	ln -sf $(REALNAME) lib/$(SONAME) && ln -sf $(REALNAME) $@

PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
             -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|'
lib/speculo.pc: lib/speculo.pc.in Makefile
	$(PC_SED) $< > $@

# Programs link the static library: they run from the tree and installed alike.
fusefs/speculofs: $(FUSE_SRCS) $(wildcard fusefs/*.h) lib/libspeculo.a .build-flags
	$(CC) $(CPPFLAGS) $(CFLAGS) $(FUSE_CFLAGS) -Ilib -o $@ $(FUSE_SRCS) lib/libspeculo.a $(LDFLAGS) \
	    $(FUSE_LIBS)
cli/speculo: $(CLI_SRCS) $(wildcard cli/*.h) lib/libspeculo.a .build-flags
	$(CC) $(CPPFLAGS) $(CFLAGS) -Ilib -o $@ $(CLI_SRCS) lib/libspeculo.a $(LDFLAGS)
# Next to speculo in the tree as installed: `speculo bridge` runs it from there.
# It shares the CLI's helpers (messages, options).
BRIDGE_CLI := cli/common.c cli/follow.c
cli/speculo-bridge: $(BRIDGE_SRCS) $(wildcard bridge/*.h) $(BRIDGE_CLI) cli/cli.h lib/libspeculo.a \
                    .build-flags
	$(CC) $(CPPFLAGS) $(CFLAGS) $(NATS_CFLAGS) -Ilib -Icli -o $@ $(BRIDGE_SRCS) $(BRIDGE_CLI) \
	    lib/libspeculo.a $(LDFLAGS) $(NATS_LIBS)

TEST_DEPS := lib/libspeculo.a $(wildcard tests/common/*.h) $(TCOMMON_SRCS) .build-flags
tests/check_lib: $(TLIB_SRCS) $(TEST_DEPS)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) -Ilib -Itests/common -o $@ $(TLIB_SRCS) $(TCOMMON_SRCS) lib/libspeculo.a $(LDFLAGS) $(CHECK_LIBS)
tests/check_fuse: $(TFUSE_SRCS) $(TEST_DEPS)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) -Ilib -Itests/common -o $@ $(TFUSE_SRCS) $(TCOMMON_SRCS) lib/libspeculo.a $(LDFLAGS) $(CHECK_LIBS)
tests/check_cli: $(TCLI_SRCS) $(TEST_DEPS)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) -Ilib -Itests/common -o $@ $(TCLI_SRCS) $(TCOMMON_SRCS) lib/libspeculo.a $(LDFLAGS) $(CHECK_LIBS)
# The bridge's tests: its wire format in-process, and real nats-server
# processes (skipped, exit 77, without nats-server).
tests/check_bridge: $(TBRIDGE_SRCS) $(wildcard tests/bridge/*.h) bridge/proto.c bridge/proto.h \
                    $(TEST_DEPS)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(CHECK_CFLAGS) $(NATS_CFLAGS) -Ilib -Ibridge -Itests/common -o $@ \
	    $(TBRIDGE_SRCS) bridge/proto.c $(TCOMMON_SRCS) lib/libspeculo.a $(LDFLAGS) $(NATS_LIBS) \
	    $(CHECK_LIBS)

# The public header must compile alone, pedantic.
tests/header-alone.o: lib/speculo.h .build-flags
	echo '#include "speculo.h"' | $(CC) -std=c11 -pedantic -Wall -Wextra -Werror -Ilib -x c -c -o $@ -

check: all $(TESTS) tests/header-alone.o
	@scripts/check-symbols
	@scripts/run-tests $(TESTS)

doc: docs/Doxyfile lib/speculo.h
	doxygen docs/Doxyfile

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
	           $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 \
	           $(DESTDIR)$(SYSTEMDUSERUNITDIR)
	$(foreach p,$(PROGS),install -m 0755 $(p) $(DESTDIR)$(BINDIR)/;)
	install -m 0644 lib/libspeculo.a $(DESTDIR)$(LIBDIR)/
	install -m 0755 lib/$(REALNAME) $(DESTDIR)$(LIBDIR)/
	ln -sf $(REALNAME) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(REALNAME) $(DESTDIR)$(LIBDIR)/libspeculo.so
	install -m 0644 lib/speculo.h $(DESTDIR)$(INCLUDEDIR)/
	$(PC_SED) lib/speculo.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/speculo.pc  # this install's paths
	$(foreach m,$(wildcard docs/man/*.1),install -m 0644 $(m) $(DESTDIR)$(MANDIR)/man1/;)
	$(foreach m,$(wildcard docs/man/*.3),install -m 0644 $(m) $(DESTDIR)$(MANDIR)/man3/;)
	sed 's|@BINDIR@|$(BINDIR)|' packaging/systemd/speculofs@.service.in \
	    > $(DESTDIR)$(SYSTEMDUSERUNITDIR)/speculofs@.service

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/speculo $(DESTDIR)$(BINDIR)/speculofs
	rm -f $(DESTDIR)$(BINDIR)/speculo-bridge
	rm -f $(DESTDIR)$(LIBDIR)/libspeculo.a $(DESTDIR)$(LIBDIR)/libspeculo.so \
	      $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/$(REALNAME)
	rm -f $(DESTDIR)$(INCLUDEDIR)/speculo.h $(DESTDIR)$(PKGCONFIGDIR)/speculo.pc
	rm -f $(foreach m,$(notdir $(wildcard docs/man/*.1)),$(DESTDIR)$(MANDIR)/man1/$(m))
	rm -f $(foreach m,$(notdir $(wildcard docs/man/*.3)),$(DESTDIR)$(MANDIR)/man3/$(m))
	rm -f $(DESTDIR)$(SYSTEMDUSERUNITDIR)/speculofs@.service

lint:
	clang-format --dry-run -Werror lib/*.c lib/*.h $(FUSE_SRCS) $(CLI_SRCS) $(BRIDGE_SRCS) bridge/*.h
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability -D__linux__ lib fusefs cli bridge
	clang-tidy --quiet -checks='-*,clang-analyzer-*,bugprone-*,-bugprone-easily-swappable-parameters,-bugprone-reserved-identifier,-clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling' \
	    lib/*.c -- -std=c11 -D_GNU_SOURCE -Ilib

demo:  # scripts/demo installs missing packages first, then builds
	scripts/demo

bench: all
	scripts/bench

clean:
	rm -f lib/*.o lib/*.a lib/*.so* lib/speculo.pc fusefs/speculofs cli/speculo cli/speculo-bridge \
	      tests/check_* tests/*.o .build-flags
	rm -rf docs/html

# ---- crash and stress tests: make stress | make crash-test ---------------
# tests/stress/crash kills a writer under load CRASH_ROUNDS times and checks
# that nothing committed is lost; tests/stress/stress runs 1 writer and 8
# readers for STRESS_SECONDS. Shortened runs of both are Check tests in
# tests/check_lib (tests/lib/test_stress.c), so check_lib needs them built.
CRASH_ROUNDS   ?= 1000
STRESS_SECONDS ?= 60
STRESS_BINS    := tests/stress/crash tests/stress/stress

# Both drivers link payload.c, the plumbing they share (payload.h), and
# the tests' common helpers.
STRESS_SHARED  := tests/stress/payload.c tests/common/t_util.c

$(STRESS_BINS): tests/stress/%: tests/stress/%.c $(STRESS_SHARED) tests/stress/payload.h \
                                tests/common/t_util.h lib/libspeculo.a .build-flags
	$(CC) $(CFLAGS) -Ilib -Itests/common -o $@ $< $(STRESS_SHARED) lib/libspeculo.a $(LDFLAGS)
tests/check_lib: $(STRESS_BINS)

.PHONY: stress crash-test clean-reliability
stress: $(STRESS_BINS)
	tests/stress/stress -t $(STRESS_SECONDS)
crash-test: tests/stress/crash
	scripts/crash-test $(CRASH_ROUNDS)
clean: clean-reliability
clean-reliability:
	rm -rf $(STRESS_BINS) tests/fuzz/build build-coverage

# ---- coverage: make coverage ----------------------------------------------
# Line coverage of lib/ by tests/check_lib and of fusefs/ by tests/check_fuse
# (real mounts of a speculofs built for coverage), with gcov, built in a copy
# of the sources (build-coverage/); see scripts/coverage.
.PHONY: coverage
coverage:
	scripts/coverage

# ---- fuzzing: make fuzz [FUZZ_SECONDS=60] ---------------------------------
# libFuzzer targets tests/fuzz/fuzz_*.c, built apart with clang, ASan and
# UBSan (the library's sources compiled in), so the tree's objects are left
# alone. Seeds come from tests/fuzz/make_corpus; crashes land in
# tests/fuzz/build/ (see scripts/fuzz and docs/RELIABILITY.md).
# fuzz_fs also compiles in speculofs (fusefs/ without main.c and notify.c,
# which make a session and threads) with tests/fuzz/fuse_stub.c and
# notify_stub.c standing in for libfuse's reply API and for notify.c.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_OUT     := tests/fuzz/build
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -g -O1 $(WARNINGS) -Werror -Ilib -Itests/common \
                -fsanitize=address,undefined -fno-sanitize-recover=all
# Every target's private directory comes from the tests' common helpers.
FUZZ_COMMON  := tests/common/t_util.c
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(FUZZ_OUT)/%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_FS_SRCS := tests/fuzz/fuse_stub.c tests/fuzz/notify_stub.c \
                $(filter-out fusefs/main.c fusefs/notify.c,$(FUSE_SRCS))
FUZZ_FS_DEPS := $(FUZZ_FS_SRCS) $(wildcard tests/fuzz/*.h fusefs/*.h)
ifeq ($(FUSE_SRCS),)
FUZZ_TARGETS := $(filter-out $(FUZZ_OUT)/fuzz_fs,$(FUZZ_TARGETS))
endif

$(FUZZ_OUT)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_COMMON) $(LIB_SRCS) $(LIB_HDRS)
	@mkdir -p $(FUZZ_OUT)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_COMMON) $(LIB_SRCS)
$(FUZZ_OUT)/fuzz_fs: tests/fuzz/fuzz_fs.c $(FUZZ_FS_DEPS) $(FUZZ_COMMON) $(LIB_SRCS) $(LIB_HDRS)
	@mkdir -p $(FUZZ_OUT)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUSE_CFLAGS) -Ifusefs -Itests/fuzz -pthread -fsanitize=fuzzer \
	    -o $@ $< $(FUZZ_FS_SRCS) $(FUZZ_COMMON) $(LIB_SRCS)

# The replay of tests/fuzz/regress/ through fuzz_fs's entry point, built
# with $(CC) and without libFuzzer: a test of `make check` (scripts/fuzz
# tells how a crash input gets there).
tests/check_fuzz: tests/fuzz/replay.c tests/fuzz/fuzz_fs.c $(FUZZ_FS_DEPS) $(FUZZ_COMMON) \
                  lib/libspeculo.a .build-flags
	$(CC) $(CFLAGS) $(FUSE_CFLAGS) -Ilib -Ifusefs -Itests/fuzz -Itests/common -o $@ \
	    tests/fuzz/replay.c tests/fuzz/fuzz_fs.c $(FUZZ_FS_SRCS) $(FUZZ_COMMON) lib/libspeculo.a \
	    $(LDFLAGS)
# The same for fuzz_reader's entry point over tests/fuzz/regress-reader/:
# segment files through every reader call, the check and a takeover.
tests/check_fuzz_reader: tests/fuzz/replay.c tests/fuzz/fuzz_reader.c $(FUZZ_COMMON) \
                         lib/libspeculo.a .build-flags
	$(CC) $(CFLAGS) -Ilib -Itests/common -DREPLAY_DIR='"tests/fuzz/regress-reader"' -o $@ \
	    tests/fuzz/replay.c tests/fuzz/fuzz_reader.c $(FUZZ_COMMON) lib/libspeculo.a $(LDFLAGS)
# speculofs's operations in-process (the same stubs), with Check.
tests/check_sfs: tests/sfs/check_sfs.c $(FUZZ_FS_DEPS) $(TEST_DEPS)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) $(FUSE_CFLAGS) -Ilib -Ifusefs -Itests/fuzz -Itests/common \
	    -o $@ tests/sfs/check_sfs.c $(FUZZ_FS_SRCS) $(TCOMMON_SRCS) lib/libspeculo.a $(LDFLAGS) \
	    $(CHECK_LIBS)
$(FUZZ_OUT)/make_corpus: tests/fuzz/make_corpus.c tests/fuzz/fuzz_fs.h $(FUZZ_COMMON) $(LIB_SRCS) \
                         $(LIB_HDRS)
	@mkdir -p $(FUZZ_OUT)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_COMMON) $(LIB_SRCS)

.PHONY: fuzz
fuzz: $(FUZZ_TARGETS) $(FUZZ_OUT)/make_corpus
	scripts/fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# ---- Debian packages: make deb ------------------------------------------
# libspeculo0, libspeculo-dev, speculo and the source package, into dist/,
# built with debhelper from packaging/debian/ in a copy of the tree
# (build-deb/), so that the tree's own build is left alone; then lintian.
# The tests are not run in the package build unless DEB_BUILD_OPTIONS
# says so (`make deb DEB_BUILD_OPTIONS=` runs them).
DEB_BUILD_OPTIONS ?= nocheck
.PHONY: deb clean-deb
deb:
	DEB_BUILD_OPTIONS='$(DEB_BUILD_OPTIONS)' scripts/make-deb $(VERSION)
clean: clean-deb
clean-deb:
	rm -rf build-deb dist

FORCE:

# ---- Python: make python ----------------------------------------------------
# The extension module of the `speculo` package (python/speculo/), built in
# the tree against $(PYTHON)'s headers, with the library's objects linked
# in: `PYTHONPATH=python python3 -c 'import speculo'` works after it. The
# default is Debian's python3 (python3-dev), whose dist-packages `make
# install` fills, even when another python3 comes first on PATH (pyenv's,
# a virtualenv's: pass PYTHON=... to build for that one). make check runs
# its pytest suite (tests/python/), make bench its benchmarks.
PYTHON    ?= $(firstword $(wildcard /usr/bin/python3) python3)
PY_CONFIG := $(shell $(PYTHON) -c 'import sys, sysconfig; print(sysconfig.get_paths()["include"], \
               sysconfig.get_config_var("EXT_SUFFIX"), "%d.%d" % sys.version_info[:2])' 2>/dev/null)
PY_INCLUDE := $(word 1,$(PY_CONFIG))
PY_MODULE  := python/speculo/speculo$(word 2,$(PY_CONFIG))
PY_SRCS    := $(wildcard python/src/*.c)
PY_FILES   := python/speculo/__init__.py python/speculo/speculo.pyi python/speculo/py.typed
# /usr/local -> /usr/local/lib/python3.X/dist-packages; /usr (a package) ->
# /usr/lib/python3/dist-packages; where Debian's python3 looks for them.
PYTHONDIR ?= $(if $(filter /usr,$(PREFIX)),/usr/lib/python3/dist-packages,$(PREFIX)/lib/python$(word 3,$(PY_CONFIG))/dist-packages)
export PYTHON

.PHONY: python install-python uninstall-python clean-python
ifneq ($(wildcard $(PY_INCLUDE)/Python.h),)
PY_BUILD := $(PY_MODULE)
python: $(PY_MODULE)
else
python:
	@echo "make python: $(PYTHON) has no C headers: apt-get install python3-dev" >&2; exit 1
endif
$(PY_MODULE): $(PY_SRCS) python/src/ext.h python/src/export.map $(LIB_PIC) lib/speculo.h .build-flags
	$(CC) $(CFLAGS) -fPIC -fvisibility=hidden -isystem $(PY_INCLUDE) -Ilib -shared \
	    -Wl,--version-script=python/src/export.map -o $@ $(PY_SRCS) $(LIB_PIC) $(LDFLAGS)

# pytest through a runner that says SKIPPED when the module or pytest is
# missing, and preloads the sanitizer runtime in a SANITIZE build.
TESTS += tests/python/run-pytest
check bench: $(PY_BUILD)

install: install-python
install-python:
	$(if $(wildcard $(PY_MODULE)),install -d $(DESTDIR)$(PYTHONDIR)/speculo && \
	    install -m 0644 $(PY_MODULE) $(PY_FILES) $(DESTDIR)$(PYTHONDIR)/speculo/,@:)
uninstall: uninstall-python
uninstall-python:
	rm -rf $(DESTDIR)$(PYTHONDIR)/speculo
clean: clean-python
clean-python:
	rm -f python/speculo/*.so
	rm -rf python/speculo/__pycache__ tests/python/__pycache__
