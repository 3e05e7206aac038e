/*
 * The CPython extension `speculo.speculo` (imported as `speculo`): what
 * its parts share. module.c has the module and its functions, the errors
 * and the argument conversions; chunk.c the Chunk; reader.c the Reader and
 * its follow() iterator; writer.c the Writer and the buffers of alloc().
 *
 * Every function that can fail follows the CPython convention: NULL or -1
 * with a Python exception set.
 */
#ifndef SPECULO_EXT_H
#define SPECULO_EXT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdbool.h>
#include <stdint.h>

#include "speculo.h"

/* Methods with keywords, cast as the method table wants them (through a
 * function pointer type of no arguments, which -Wcast-function-type
 * accepts). */
#define EXT_KW_METHOD(f) ((PyCFunction)(void (*)(void))(f))

extern PyTypeObject ext_chunk_type;
extern PyTypeObject ext_reader_type;
extern PyTypeObject ext_follow_type;
extern PyTypeObject ext_writer_type;
extern PyTypeObject ext_reservation_type;

/* ---- module.c: errors and conversions ---- */

/* Raise the exception for a library error code and return NULL: OSError
 * with the errno and speculo_strerror()'s message (its subclass for the
 * errno: FileNotFoundError, PermissionError...), `what` (a segment name,
 * or NULL) as its filename; an unsafe directory says why. -EINVAL, a bad
 * argument, is a ValueError. */
PyObject *ext_raise(int rc, PyObject *what);
/* The same, -1. */
int ext_fail(int rc, PyObject *what);

/* A segment name from a str, checked: a new reference to the str, its
 * UTF-8 in *utf8 (valid while the str lives); NULL and ValueError or
 * TypeError when it is not one. */
PyObject *ext_segment_name(PyObject *arg, const char **utf8);
/* A chunk name: NULL (None) stays NULL; else as ext_segment_name(). 0/-1. */
int ext_chunk_name(PyObject *arg, const char **utf8);
/* A chunk id (an int in 0..2^64-1; None is 0 when none_ok). 0/-1. */
int ext_chunk_id(PyObject *arg, bool none_ok, uint64_t *id);
/* A duration in seconds (int or float, None = for ever) as nanoseconds,
 * rounded up so that a positive duration is never 0 ns; -1 for ever.
 * ValueError for a negative, NaN or too large one. 0/-1. */
int ext_seconds_ns(PyObject *arg, const char *what, int64_t *ns);

/* CLOCK_MONOTONIC, ns. */
int64_t ext_mono_ns(void);

/* ---- chunk.c ---- */

/* A Chunk for what a reader call just returned, holding the reader's
 * mapping (speculo_reader_hold()) so that its data stays valid for as long
 * as the Chunk or a view of it lives. NULL and an exception on failure. */
PyObject *ext_chunk_new(speculo_reader *r, const speculo_chunk *c, PyObject *segment);

/* ---- writer.c ---- */

/* Install the fork handler that keeps alloc() views of a forked child's
 * writers harmless. 0/-1. */
int ext_writer_fork_init(void);

#endif
