/*
 * speculo.Reader, and the iterator of Reader.follow().
 *
 * Every call but a wait runs with the GIL held, start to end, so calls of
 * several threads on one Reader are serialized by the GIL alone. A wait
 * releases the GIL while it sleeps in speculo_wait(): a call made by
 * another thread meanwhile asks it to step aside (the Reader's wakeup ends
 * the sleep), runs, and lets it sleep again; close() ends it for good.
 * The hand-over is a small mutex and condition variable:
 *
 *   in_wait  a thread sleeps in speculo_wait() on this reader
 *   wanted   threads that asked it to step aside and have not run yet
 *
 * both written under the GIL and the mutex. The waiter sleeps only while
 * wanted is 0 (and clears the wakeup then, so that a later request is
 * never lost); a caller that finds in_wait counts itself in wanted,
 * signals, waits (GIL released) for in_wait to drop, takes the GIL back
 * and only then leaves wanted: the waiter cannot sleep again before the
 * caller's call, which holds the GIL to its end, is over. One wait at a
 * time: a second thread's wait raises RuntimeError.
 *
 * Ctrl-C: Python runs its signal handlers in the main thread, between
 * bytecodes. A signal sent to the process interrupts a wait of the main
 * thread at once (Linux hands a process's signal to its main thread first;
 * the sleep ends with EINTR), and the wait then runs the handlers
 * (PyErr_CheckSignals): KeyboardInterrupt is raised. When the signal lands
 * on another thread (the main thread blocks it, or already has one
 * pending), nothing wakes the main thread: it therefore sleeps in slices
 * of at most WAIT_SLICE_MS, checking between them. Other threads sleep
 * without slices (signal handlers never run there).
 */
#include "ext.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

/* The longest sleep of a wait in the main thread between two looks at
 * the signals Python received. */
#define WAIT_SLICE_MS 50

typedef struct {
    PyObject_HEAD
    speculo_reader *r;  /* NULL once closed */
    PyObject *segment;  /* its name (str), or NULL before __init__ */
    speculo_wakeup *wk; /* ends a sleep: another thread wants the reader */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int in_wait; /* see the top of the file */
    int wanted;
    unsigned long waiter; /* the thread in a wait() or follow() (with the GIL or not), or 0 */
} ReaderObject;

/* ---- the hand-over ------------------------------------------------------ */

/* Called with the GIL before any call on the reader: if another thread
 * sleeps in a wait on it, get it out of the way until our call is over. */
static void reader_preempt(ReaderObject *self)
{
    if (!self->in_wait)
        return;
    pthread_mutex_lock(&self->mu);
    self->wanted++;
    pthread_mutex_unlock(&self->mu);
    speculo_wakeup_signal(self->wk);
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&self->mu);
    while (self->in_wait)
        pthread_cond_wait(&self->cv, &self->mu);
    pthread_mutex_unlock(&self->mu);
    Py_END_ALLOW_THREADS
    /* the GIL is ours until our call returns: the waiter may go on */
    pthread_mutex_lock(&self->mu);
    self->wanted--;
    pthread_cond_broadcast(&self->cv);
    pthread_mutex_unlock(&self->mu);
}

/* The reader for a call: NULL and ValueError when it is closed. */
static speculo_reader *reader_use(ReaderObject *self)
{
    reader_preempt(self);
    if (!self->r)
        PyErr_SetString(PyExc_ValueError, "I/O operation on a closed speculo.Reader");
    return self->r;
}

/* The waiter's side, GIL held: wait for the callers that asked it to step
 * aside, then mark the sleep (clearing the wakeup). */
static void wait_enter(ReaderObject *self)
{
    for (;;) {
        pthread_mutex_lock(&self->mu);
        if (self->wanted == 0) {
            self->in_wait = 1;
            speculo_wakeup_clear(self->wk);
            pthread_mutex_unlock(&self->mu);
            return;
        }
        pthread_mutex_unlock(&self->mu);
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&self->mu);
        while (self->wanted)
            pthread_cond_wait(&self->cv, &self->mu);
        pthread_mutex_unlock(&self->mu);
        Py_END_ALLOW_THREADS
    }
}

static void wait_leave(ReaderObject *self)
{
    pthread_mutex_lock(&self->mu);
    self->in_wait = 0;
    pthread_cond_broadcast(&self->cv);
    pthread_mutex_unlock(&self->mu);
}

/* ---- waiting ---------------------------------------------------------------- */

enum wait_result { WAIT_ERROR = -1, WAIT_TIMEOUT = 0, WAIT_NEWS = 1, WAIT_CLOSED = 2 };

/* The timeout of one sleep: what is left until the deadline (negative: no
 * deadline), in ms rounded up, at most a slice in the main thread. */
static int sleep_ms(int64_t deadline, bool main_thread)
{
    int64_t ms = -1;
    if (deadline >= 0) {
        int64_t left = deadline - ext_mono_ns();
        ms = left <= 0 ? 0 : (left + 999999) / 1000000;
        if (ms > INT_MAX)
            ms = INT_MAX;
    }
    if (main_thread && (ms < 0 || ms > WAIT_SLICE_MS))
        ms = WAIT_SLICE_MS;
    return (int)ms;
}

/*
 * Wait until the reader has news, the deadline (CLOCK_MONOTONIC ns;
 * negative: none) passes, the reader is closed by another thread, or a
 * signal handler raises. The GIL is released while sleeping.
 */
static enum wait_result wait_loop(ReaderObject *self, int64_t deadline)
{
    bool main_thread = gettid() == getpid(); /* the thread Python runs handlers in */
    for (;;) {
        wait_enter(self); /* may let another thread close the reader */
        if (!self->r) {
            wait_leave(self);
            return WAIT_CLOSED;
        }
        struct speculo_wait_item item = {.reader = self->r};
        int ms = sleep_ms(deadline, main_thread);
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = speculo_wait(&item, 1, self->wk, ms);
        Py_END_ALLOW_THREADS
        wait_leave(self);
        if (rc > 0)
            return WAIT_NEWS;
        if (rc != -ETIMEDOUT && rc != -EINTR && rc != -ECANCELED) {
            ext_raise(rc, self->segment);
            return WAIT_ERROR;
        }
        /* a slice ended, a signal came, or another thread used the reader */
        if (PyErr_CheckSignals() < 0)
            return WAIT_ERROR;
        if (rc == -ETIMEDOUT && deadline >= 0 && ext_mono_ns() >= deadline)
            return WAIT_TIMEOUT;
    }
}

/* One waiting thread at a time: RuntimeError if another thread waits
 * (a signal handler that the waiting thread runs may wait too). 0/-1. */
static int check_one_waiter(ReaderObject *self)
{
    if (!self->waiter || self->waiter == PyThread_get_thread_ident())
        return 0;
    PyErr_SetString(PyExc_RuntimeError,
                    "another thread is already waiting on this speculo.Reader "
                    "(use one Reader per waiting thread)");
    return -1;
}

static enum wait_result reader_wait_until(ReaderObject *self, int64_t deadline)
{
    if (check_one_waiter(self) < 0)
        return WAIT_ERROR;
    unsigned long outer = self->waiter;
    self->waiter = PyThread_get_thread_ident();
    enum wait_result w = wait_loop(self, deadline);
    self->waiter = outer;
    return w;
}

/* The optional `timeout` argument of wait() and follow() (`fmt` names
 * the call for PyArg), in ns: -1 for none. 0/-1. */
static int timeout_arg(PyObject *args, PyObject *kw, const char *fmt, int64_t *ns)
{
    static char *kwlist[] = {"timeout", NULL};
    PyObject *timeout = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, fmt, kwlist, &timeout))
        return -1;
    return ext_seconds_ns(timeout, "timeout", ns);
}

/* ---- reading ------------------------------------------------------------------ */

/* The next live chunk: a Chunk, Py_None (nothing new yet; a new
 * reference), or NULL with an exception. */
static PyObject *reader_next_chunk(ReaderObject *self)
{
    speculo_reader *r = reader_use(self);
    if (!r)
        return NULL;
    speculo_chunk c;
    int rc = speculo_reader_next(r, &c);
    if (rc == -EAGAIN)
        Py_RETURN_NONE;
    if (rc < 0)
        return ext_raise(rc, self->segment);
    return ext_chunk_new(r, &c, self->segment);
}

/* A lookup's result: a Chunk, None for -ENOENT, or NULL. */
static PyObject *lookup_result(ReaderObject *self, int rc, const speculo_chunk *c)
{
    if (rc == -ENOENT)
        Py_RETURN_NONE;
    if (rc < 0)
        return ext_raise(rc, self->segment);
    return ext_chunk_new(self->r, c, self->segment);
}

/* ---- the type --------------------------------------------------------------- */

static PyObject *reader_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    (void)args;
    (void)kw;
    ReaderObject *self = (ReaderObject *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    int rc = speculo_wakeup_create(&self->wk);
    if (rc < 0) {
        Py_DECREF(self);
        return ext_raise(rc, NULL);
    }
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->cv, NULL);
    return (PyObject *)self;
}

static void reader_close_handle(ReaderObject *self)
{
    speculo_reader *r = self->r;
    self->r = NULL;
    speculo_reader_close(r); /* the chunks handed out keep their mapping */
}

static int reader_init(ReaderObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"segment", NULL};
    PyObject *arg;
    const char *name;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O:Reader", kwlist, &arg))
        return -1;
    PyObject *segment = ext_segment_name(arg, &name);
    if (!segment)
        return -1;
    speculo_reader *r;
    int rc = speculo_reader_open(name, &r);
    if (rc < 0) {
        ext_raise(rc, segment);
        Py_DECREF(segment);
        return -1;
    }
    reader_preempt(self); /* __init__ called again on an open reader */
    reader_close_handle(self);
    Py_XSETREF(self->segment, segment);
    self->r = r;
    return 0;
}

static void reader_dealloc(ReaderObject *self)
{
    reader_close_handle(self); /* nobody waits: a waiter holds a reference */
    speculo_wakeup_destroy(self->wk);
    if (self->wk) {
        pthread_cond_destroy(&self->cv);
        pthread_mutex_destroy(&self->mu);
    }
    Py_XDECREF(self->segment);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

PyDoc_STRVAR(next_doc, "next($self, /)\n--\n\n"
                       "The next live chunk in commit order after the last one returned\n"
                       "(expired and obsolete ones are skipped), or None when nothing new\n"
                       "was committed yet. Across a garbage-collection switch it carries on\n"
                       "after the last id it returned. FileNotFoundError once the segment\n"
                       "was removed (a segment created again under the name is then read\n"
                       "from its first chunk).");

static PyObject *reader_next(ReaderObject *self, PyObject *unused)
{
    (void)unused;
    return reader_next_chunk(self);
}

static PyObject *reader_iternext(ReaderObject *self)
{
    PyObject *c = reader_next_chunk(self);
    if (c == Py_None) {
        Py_DECREF(c);
        return NULL; /* StopIteration */
    }
    return c;
}

static PyObject *reader_iter(ReaderObject *self)
{
    if (!reader_use(self))
        return NULL;
    return Py_NewRef(self);
}

PyDoc_STRVAR(wait_doc,
             "wait($self, /, timeout=None)\n--\n\n"
             "Block until something was committed that next() has not returned\n"
             "yet, or the segment was collected or removed: True; False when\n"
             "timeout seconds (int or float; None = for ever) passed first, or\n"
             "when another thread closed the reader. Returns True at once if\n"
             "there is news already. The sleep is on a futex in the segment,\n"
             "without polling; the GIL is released meanwhile.\n\n"
             "Signals are handled as they come: Ctrl-C raises KeyboardInterrupt\n"
             "(at once in the usual case; within 50 ms when the signal reaches\n"
             "another thread than the main one). In asyncio:\n"
             "    await asyncio.to_thread(reader.wait, 1.0)");

static PyObject *reader_wait(ReaderObject *self, PyObject *args, PyObject *kw)
{
    int64_t ns;
    if (timeout_arg(args, kw, "|O:wait", &ns) < 0 || check_one_waiter(self) < 0 ||
        !reader_use(self))
        return NULL;
    enum wait_result w = reader_wait_until(self, ns < 0 ? -1 : ext_mono_ns() + ns);
    if (w == WAIT_ERROR)
        return NULL;
    return PyBool_FromLong(w == WAIT_NEWS);
}

PyDoc_STRVAR(get_doc, "get($self, name, /)\n--\n\n"
                      "The latest live version of the chunk named name, or None. A hash\n"
                      "lookup: its cost does not grow with the number of chunks. It does\n"
                      "not move the position of next().");

static PyObject *reader_get(ReaderObject *self, PyObject *arg)
{
    const char *name;
    if (ext_chunk_name(arg, &name) < 0)
        return NULL;
    if (!name) {
        PyErr_SetString(PyExc_TypeError, "get() needs a chunk name (a str), not None");
        return NULL;
    }
    speculo_reader *r = reader_use(self);
    if (!r)
        return NULL;
    speculo_chunk c;
    return lookup_result(self, speculo_reader_get(r, name, &c), &c);
}

PyDoc_STRVAR(get_id_doc, "get_id($self, id, /)\n--\n\n"
                         "The live chunk with this id, or None (a binary search). It does\n"
                         "not move the position of next().");

static PyObject *reader_get_id(ReaderObject *self, PyObject *arg)
{
    uint64_t id;
    if (ext_chunk_id(arg, false, &id) < 0)
        return NULL;
    speculo_reader *r = reader_use(self);
    if (!r)
        return NULL;
    speculo_chunk c;
    return lookup_result(self, speculo_reader_get_id(r, id, &c), &c);
}

PyDoc_STRVAR(seek_doc, "seek($self, after_id, /)\n--\n\n"
                       "Position the reader so that next() returns the first live chunk\n"
                       "whose id is greater than after_id: 0 rewinds to the oldest chunk,\n"
                       "speculo.END skips everything committed so far (to follow only new\n"
                       "chunks).");

static PyObject *reader_seek(ReaderObject *self, PyObject *arg)
{
    uint64_t id;
    if (ext_chunk_id(arg, false, &id) < 0)
        return NULL;
    speculo_reader *r = reader_use(self);
    if (!r)
        return NULL;
    int rc = speculo_reader_seek(r, id);
    if (rc < 0)
        return ext_raise(rc, self->segment);
    Py_RETURN_NONE;
}

/* ---- info ----------------------------------------------------------------- */

/* The keys of `speculo info --json`, in its order, with their fields. */
enum info_type { U32, U64, I64, BOOL };
static const struct {
    const char *key;
    size_t offset;
    enum info_type type;
} info_fields[] = {
#define F(name, type) {#name, offsetof(struct speculo_segment_info, name), type}
    F(format_version, U32), F(generation, U64),   F(capacity, U64),        F(data_capacity, U64),
    F(bytes_used, U64),     F(dead_bytes, U64),   F(live_chunks, U64),     F(expired_chunks, U64),
    F(obsolete_chunks, U64), F(named_chunks, U64), F(first_id, U64),        F(last_id, U64),
    F(writer_pid, I64),     F(writer_alive, BOOL),
#undef F
};

static PyObject *info_value(const struct speculo_segment_info *s, size_t i)
{
    const char *p = (const char *)s + info_fields[i].offset;
    switch (info_fields[i].type) {
    case U32:
        return PyLong_FromUnsignedLong(*(const uint32_t *)(const void *)p);
    case U64:
        return PyLong_FromUnsignedLongLong(*(const uint64_t *)(const void *)p);
    case I64: {
        int64_t v = *(const int64_t *)(const void *)p;
        return PyLong_FromLongLong(v > 0 ? v : 0);
    }
    case BOOL:
        return PyBool_FromLong(*(const int *)(const void *)p);
    }
    return NULL;
}

/* ISO 8601 UTC with nanoseconds, as `speculo info --json` gives times. */
static PyObject *utc_text(int64_t ns)
{
    time_t secs = (time_t)(ns / 1000000000);
    struct tm tm;
    char day[32];
    if (!gmtime_r(&secs, &tm) || !strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm))
        return PyUnicode_FromString("?");
    return PyUnicode_FromFormat("%s.%09ldZ", day, (long)(ns % 1000000000));
}

/* key: the time as text, key_ns: as ns; both None when the time is 0. */
static int set_time(PyObject *d, const char *key, const char *key_ns, int64_t ns)
{
    PyObject *text = ns > 0 ? utc_text(ns) : Py_NewRef(Py_None);
    PyObject *num = ns > 0 ? PyLong_FromLongLong(ns) : Py_NewRef(Py_None);
    int rc = text && num && PyDict_SetItemString(d, key, text) == 0 &&
                     PyDict_SetItemString(d, key_ns, num) == 0
                 ? 0
                 : -1;
    Py_XDECREF(text);
    Py_XDECREF(num);
    return rc;
}

static PyObject *info_dict(PyObject *segment, const struct speculo_segment_info *s)
{
    PyObject *d = PyDict_New();
    if (!d || PyDict_SetItemString(d, "segment", segment) < 0)
        goto fail;
    PyObject *ok = PyUnicode_FromString("ok");
    int rc = ok ? PyDict_SetItemString(d, "status", ok) : -1;
    Py_XDECREF(ok);
    if (rc < 0)
        goto fail;
    for (size_t i = 0; i < sizeof info_fields / sizeof info_fields[0]; i++) {
        PyObject *v = info_value(s, i);
        rc = v ? PyDict_SetItemString(d, info_fields[i].key, v) : -1;
        Py_XDECREF(v);
        if (rc < 0)
            goto fail;
    }
    if (set_time(d, "created", "created_ns", s->created_ns) < 0 ||
        set_time(d, "last_commit", "last_commit_ns", s->last_commit_ns) < 0)
        goto fail;
    return d;
fail:
    Py_XDECREF(d);
    return NULL;
}

PyDoc_STRVAR(info_doc,
             "info($self, /)\n--\n\n"
             "The segment as this reader sees it now, with the keys and values of\n"
             "`speculo info --json`: segment, status, format_version, generation,\n"
             "capacity, data_capacity, bytes_used, dead_bytes, live_chunks,\n"
             "expired_chunks, obsolete_chunks, named_chunks, first_id, last_id,\n"
             "writer_pid, writer_alive (bool), created and last_commit (ISO 8601\n"
             "UTC text, or None), created_ns and last_commit_ns. Counts chunk\n"
             "states by a scan of the segment (its cost grows with the chunks).");

static PyObject *reader_info(ReaderObject *self, PyObject *unused)
{
    (void)unused;
    speculo_reader *r = reader_use(self);
    if (!r)
        return NULL;
    struct speculo_segment_info s;
    int rc = speculo_reader_info(r, &s);
    if (rc < 0)
        return ext_raise(rc, self->segment);
    return info_dict(self->segment, &s);
}

/* ---- closing ---------------------------------------------------------------- */

PyDoc_STRVAR(close_doc, "close($self, /)\n--\n\n"
                        "Close the reader. The chunks it returned stay valid (they hold\n"
                        "the mapping). A wait() or follow() of another thread on it ends\n"
                        "(returning False, or stopping). Closing twice is harmless.");

static PyObject *reader_close(ReaderObject *self, PyObject *unused)
{
    (void)unused;
    reader_preempt(self);
    reader_close_handle(self);
    Py_RETURN_NONE;
}

static PyObject *reader_enter(ReaderObject *self, PyObject *unused)
{
    (void)unused;
    if (!reader_use(self))
        return NULL;
    return Py_NewRef(self);
}

static PyObject *reader_exit(ReaderObject *self, PyObject *args)
{
    (void)args;
    return reader_close(self, NULL);
}

static PyObject *reader_closed(ReaderObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->r == NULL);
}

static PyObject *reader_segment(ReaderObject *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->segment ? self->segment : Py_None);
}

static PyObject *reader_repr(ReaderObject *self)
{
    return PyUnicode_FromFormat("<speculo.Reader segment=%R%s>",
                                self->segment ? self->segment : Py_None,
                                self->r ? "" : " closed");
}

/* ---- follow ---------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    ReaderObject *reader;
    int64_t timeout_ns; /* -1: for ever */
} FollowObject;

PyDoc_STRVAR(follow_doc,
             "follow($self, /, timeout=None)\n--\n\n"
             "The live chunks from the reader's position on, those already\n"
             "committed first, then each new one as it is committed: between\n"
             "chunks it sleeps as wait() does (no polling; GIL released;\n"
             "Ctrl-C raises KeyboardInterrupt). The iteration stops when a chunk\n"
             "is asked for and nothing new comes within timeout seconds (None:\n"
             "never), or when another thread closes the reader.\n"
             "FileNotFoundError if the segment is removed.\n\n"
             "    for chunk in reader.follow():\n"
             "        handle(chunk.data)");

static PyObject *reader_follow(ReaderObject *self, PyObject *args, PyObject *kw)
{
    int64_t ns;
    if (timeout_arg(args, kw, "|O:follow", &ns) < 0 || !reader_use(self))
        return NULL;
    FollowObject *it = PyObject_New(FollowObject, &ext_follow_type);
    if (!it)
        return NULL;
    it->reader = (ReaderObject *)Py_NewRef(self);
    it->timeout_ns = ns;
    return (PyObject *)it;
}

static PyObject *follow_next(FollowObject *it)
{
    ReaderObject *self = it->reader;
    int64_t deadline = it->timeout_ns < 0 ? -1 : ext_mono_ns() + it->timeout_ns;
    for (;;) {
        if (!self->r)
            return NULL; /* closed by another thread: the iteration ends */
        PyObject *c = reader_next_chunk(self);
        if (c != Py_None)
            return c;
        Py_DECREF(c);
        if (reader_wait_until(self, deadline) != WAIT_NEWS)
            return NULL; /* an exception, or StopIteration */
    }
}

static void follow_dealloc(FollowObject *it)
{
    Py_DECREF(it->reader);
    PyObject_Free(it);
}

PyTypeObject ext_follow_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "speculo.Follow",
    .tp_basicsize = sizeof(FollowObject),
    .tp_dealloc = (destructor)follow_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The iterator of Reader.follow().",
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)follow_next,
};

/* ---- tables ------------------------------------------------------------------- */

static PyMethodDef reader_methods[] = {
    {"next", (PyCFunction)reader_next, METH_NOARGS, next_doc},
    {"wait", EXT_KW_METHOD(reader_wait), METH_VARARGS | METH_KEYWORDS, wait_doc},
    {"follow", EXT_KW_METHOD(reader_follow), METH_VARARGS | METH_KEYWORDS, follow_doc},
    {"get", (PyCFunction)reader_get, METH_O, get_doc},
    {"get_id", (PyCFunction)reader_get_id, METH_O, get_id_doc},
    {"seek", (PyCFunction)reader_seek, METH_O, seek_doc},
    {"info", (PyCFunction)reader_info, METH_NOARGS, info_doc},
    {"close", (PyCFunction)reader_close, METH_NOARGS, close_doc},
    {"__enter__", (PyCFunction)reader_enter, METH_NOARGS, "Return the reader."},
    {"__exit__", (PyCFunction)reader_exit, METH_VARARGS, "Close the reader."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef reader_getset[] = {
    {"closed", (getter)reader_closed, NULL, "True once the reader is closed.", NULL},
    {"segment", (getter)reader_segment, NULL, "The segment's name.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(
    reader_doc,
    "Reader(segment)\n--\n\n"
    "A reader of a segment: the chunks in commit order (next(), iteration,\n"
    "follow()), named chunks by name (get()), chunks by id (get_id()).\n"
    "Needs read access only. Opens the segment in the segment directory\n"
    "($SPECULO_DIR, else /dev/shm/speculo-$UID); FileNotFoundError when it\n"
    "does not exist, ValueError for a bad name. A context manager:\n\n"
    "    with speculo.Reader(\"sensor\") as reader:\n"
    "        for chunk in reader:          # what is there now\n"
    "            print(chunk.id, bytes(chunk.data))\n\n"
    "Chunks are zero-copy views of the shared memory; they stay valid for\n"
    "as long as they are referenced (see speculo.Chunk).\n\n"
    "Threads: a Reader may be shared; its calls are serialized. A call made\n"
    "while another thread waits on it (wait(), follow()) briefly interrupts\n"
    "that wait, which then goes on; close() ends it. Only one thread may wait\n"
    "on a Reader at a time (RuntimeError otherwise): give each waiting thread\n"
    "its own Reader.");

PyTypeObject ext_reader_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "speculo.Reader",
    .tp_basicsize = sizeof(ReaderObject),
    .tp_dealloc = (destructor)reader_dealloc,
    .tp_repr = (reprfunc)reader_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = reader_doc,
    .tp_iter = (getiterfunc)reader_iter,
    .tp_iternext = (iternextfunc)reader_iternext,
    .tp_methods = reader_methods,
    .tp_getset = reader_getset,
    .tp_init = (initproc)reader_init,
    .tp_new = reader_new,
};
