/*
 * speculo.Writer, and the buffer that alloc() hands out.
 *
 * alloc() returns a writable memoryview of the reserved bytes in the
 * segment: no copy on the way in. Its exporter is a Reservation, which
 * keeps the Writer (and so its mapping) alive. Once those bytes are
 * committed they must never change, and once the reservation is discarded
 * (another alloc(), put()) or moved (gc()) or the writer closed, the
 * address is no longer ours: so before any of these the Writer releases
 * the memoryview it handed out (a later write through it raises
 * ValueError) and refuses, with BufferError, while other views of the
 * reservation live (a memoryview slice or a numpy array made from it),
 * as Python's mmap refuses to close under exported buffers. Released, the
 * Reservation exports nothing more.
 *
 * A child forked by the writer's process does not inherit the writer's
 * mapping (the library marks it MADV_DONTFORK, as the role stays with the
 * parent): the memory under an alloc() view would be gone there. A fork
 * handler maps private anonymous pages at the place of every live
 * reservation in the child, so that a write through such a view in the
 * child is harmless (it changes nothing shared; the child's commit fails
 * with EBUSY).
 */
#include "ext.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct ReservationObject ReservationObject;

typedef struct {
    PyObject_HEAD
    speculo_writer *w;      /* NULL once closed */
    PyObject *segment;      /* its name (str), or NULL before __init__ */
    ReservationObject *res; /* the last alloc()'s, while it lives (borrowed) */
    PyObject *view;         /* weak reference to the memoryview alloc() returned */
} WriterObject;

struct ReservationObject {
    PyObject_HEAD
    WriterObject *writer; /* the mapping is the writer's */
    void *data;           /* NULL once released */
    Py_ssize_t size;
    Py_ssize_t exports; /* buffers handed out and not released */
    ReservationObject *prev, *next; /* the live reservations, for fork */
};

/* ---- fork ------------------------------------------------------------------- */

/* The reservations with data: a list of the process (changed with the GIL
 * held, read by the fork handler in the child). */
static pthread_mutex_t fork_mu = PTHREAD_MUTEX_INITIALIZER;
static ReservationObject *fork_list;

static void fork_prepare(void)
{
    pthread_mutex_lock(&fork_mu);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&fork_mu);
}

/* In the child: private pages where the writer's mapping was. A live
 * reservation's pages are the writer's mapping's (the calls that move or
 * unmap it take the reservation out of the list first), which the child
 * did not inherit, or, had the kernel not honoured MADV_DONTFORK, inherited
 * shared: in both cases nothing else lives there, and private pages in
 * their place are what the child must have. */
static void fork_child(void)
{
    uintptr_t page = (uintptr_t)getpagesize();
    for (ReservationObject *r = fork_list; r; r = r->next) {
        uintptr_t start = (uintptr_t)r->data & ~(page - 1);
        uintptr_t end = ((uintptr_t)r->data + (uintptr_t)r->size + page - 1) & ~(page - 1);
        if (end > start)
            mmap((void *)start, end - start, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    }
    pthread_mutex_unlock(&fork_mu);
}

int ext_writer_fork_init(void)
{
    static int done;
    if (done)
        return 0;
    int rc = pthread_atfork(fork_prepare, fork_parent, fork_child);
    if (rc != 0) {
        errno = rc;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    done = 1;
    return 0;
}

static void fork_list_add(ReservationObject *r)
{
    pthread_mutex_lock(&fork_mu);
    r->prev = NULL;
    r->next = fork_list;
    if (fork_list)
        fork_list->prev = r;
    fork_list = r;
    pthread_mutex_unlock(&fork_mu);
}

static void fork_list_remove(ReservationObject *r)
{
    pthread_mutex_lock(&fork_mu);
    if (r->prev)
        r->prev->next = r->next;
    else if (fork_list == r)
        fork_list = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    pthread_mutex_unlock(&fork_mu);
}

/* ---- the reservation ---------------------------------------------------------- */

static PyObject *reservation_new(WriterObject *writer, void *data, size_t size)
{
    ReservationObject *r = PyObject_New(ReservationObject, &ext_reservation_type);
    if (!r)
        return NULL;
    r->writer = (WriterObject *)Py_NewRef(writer);
    r->data = data;
    r->size = (Py_ssize_t)size;
    r->exports = 0;
    fork_list_add(r);
    return (PyObject *)r;
}

/* No new buffer from it; the ones handed out must be gone already. */
static void reservation_release(ReservationObject *r)
{
    if (r->data) {
        fork_list_remove(r);
        r->data = NULL;
    }
}

static void reservation_dealloc(ReservationObject *r)
{
    reservation_release(r);
    if (r->writer->res == r)
        r->writer->res = NULL;
    Py_DECREF(r->writer);
    PyObject_Free(r);
}

static int reservation_getbuffer(ReservationObject *r, Py_buffer *view, int flags)
{
    if (!r->data) {
        PyErr_SetString(PyExc_BufferError,
                        "this alloc() buffer was committed or discarded: call alloc() again");
        return -1;
    }
    if (PyBuffer_FillInfo(view, (PyObject *)r, r->data, r->size, 0, flags) < 0)
        return -1;
    r->exports++;
    return 0;
}

static void reservation_releasebuffer(ReservationObject *r, Py_buffer *view)
{
    (void)view;
    r->exports--;
}

static PyBufferProcs reservation_as_buffer = {
    .bf_getbuffer = (getbufferproc)reservation_getbuffer,
    .bf_releasebuffer = (releasebufferproc)reservation_releasebuffer,
};

PyTypeObject ext_reservation_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "speculo.Reservation",
    .tp_basicsize = sizeof(ReservationObject),
    .tp_dealloc = (destructor)reservation_dealloc,
    .tp_as_buffer = &reservation_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The bytes reserved by Writer.alloc(), exported to its memoryview.",
};

/* ---- the writer ----------------------------------------------------------------- */

static int writer_closed_error(void)
{
    PyErr_SetString(PyExc_ValueError, "I/O operation on a closed speculo.Writer");
    return -1;
}

static int buffer_in_use(const char *op)
{
    PyErr_Format(PyExc_BufferError,
                 "cannot %s: a view of the alloc() buffer is still in use (a memoryview "
                 "slice, a numpy array...): delete it first",
                 op);
    return -1;
}

/*
 * Before `op` discards, moves or publishes the reserved bytes: release the
 * memoryview alloc() returned, and make sure no other view of them lives.
 * 0, or -1 and BufferError (the reservation is then kept as it is).
 */
static int writer_take_back(WriterObject *self, const char *op)
{
    if (self->view) {
        PyObject *view = PyWeakref_GetObject(self->view);
        if (view != Py_None) {
            Py_INCREF(view);
            PyObject *rc = PyObject_CallMethod(view, "release", NULL);
            Py_DECREF(view);
            if (!rc) {
                if (PyErr_ExceptionMatches(PyExc_BufferError)) {
                    PyErr_Clear();
                    return buffer_in_use(op);
                }
                return -1;
            }
            Py_DECREF(rc);
        }
        Py_CLEAR(self->view);
    }
    if (self->res) {
        if (self->res->exports > 0)
            return buffer_in_use(op);
        reservation_release(self->res);
        self->res = NULL;
    }
    return 0;
}

/* The writer for a call, or NULL and ValueError when closed. */
static speculo_writer *writer_use(WriterObject *self)
{
    if (!self->w)
        writer_closed_error();
    return self->w;
}

/* Commit options from keywords. The name's UTF-8 lives as long as `name`. */
static int commit_options(PyObject *name, PyObject *ttl, PyObject *replaces,
                          struct speculo_commit_options *o)
{
    int64_t ns;
    if (ext_chunk_name(name, &o->name) < 0 || ext_seconds_ns(ttl, "ttl", &ns) < 0 ||
        ext_chunk_id(replaces, true, &o->replaces) < 0)
        return -1;
    o->ttl_ns = ns < 0 ? 0 : ns;
    return 0;
}

/* A commit's error: -ENOENT is about `replaces`. */
static PyObject *commit_error(WriterObject *self, int rc, const struct speculo_commit_options *o)
{
    if (rc == -ENOENT && o->replaces) {
        PyObject *msg = PyUnicode_FromFormat("replaces=%llu: no live chunk has this id",
                                             (unsigned long long)o->replaces);
        if (msg) {
            PyObject *exc = PyObject_CallFunction(PyExc_FileNotFoundError, "iOO", ENOENT, msg,
                                                  self->segment);
            if (exc) {
                PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
                Py_DECREF(exc);
            }
            Py_DECREF(msg);
        }
        return NULL;
    }
    return ext_raise(rc, self->segment);
}

static PyObject *writer_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    (void)args;
    (void)kw;
    return type->tp_alloc(type, 0);
}

static int writer_close_handle(WriterObject *self, const char *op)
{
    if (writer_take_back(self, op) < 0)
        return -1;
    speculo_writer *w = self->w;
    self->w = NULL;
    speculo_writer_close(w);
    return 0;
}

static int writer_init(WriterObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"segment",         "capacity", "mode", "gc_dead_percent",
                             "gc_min_dead_bytes", NULL};
    PyObject *arg;
    Py_ssize_t capacity = 0, min_dead = 0;
    int mode = 0600, dead_percent = 0;
    const char *name;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$nini:Writer", kwlist, &arg, &capacity, &mode,
                                     &dead_percent, &min_dead))
        return -1;
    if (capacity < 0 || min_dead < 0 || dead_percent < 0 || mode < 0 || mode > 07777) {
        PyErr_SetString(PyExc_ValueError,
                        "capacity, gc_dead_percent and gc_min_dead_bytes must be >= 0, "
                        "mode a file mode");
        return -1;
    }
    PyObject *segment = ext_segment_name(arg, &name);
    if (!segment)
        return -1;
    struct speculo_writer_options o = {
        .capacity = (size_t)capacity,
        .mode = (mode_t)mode,
        .gc_dead_percent = (unsigned)dead_percent,
        .gc_min_dead_bytes = (size_t)min_dead,
    };
    speculo_writer *w;
    if (self->w && writer_close_handle(self, "open the writer again") < 0) {
        Py_DECREF(segment);
        return -1;
    }
    int rc = speculo_writer_open(name, &o, &w);
    if (rc < 0) {
        ext_raise(rc, segment);
        Py_DECREF(segment);
        return -1;
    }
    Py_XSETREF(self->segment, segment);
    self->w = w;
    return 0;
}

static void writer_dealloc(WriterObject *self)
{
    /* no reservation lives (each holds a reference), so no view either */
    Py_CLEAR(self->view);
    speculo_writer_close(self->w);
    Py_XDECREF(self->segment);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

PyDoc_STRVAR(put_doc,
             "put($self, /, data, *, name=None, ttl=None, replaces=None)\n--\n\n"
             "Copy data (bytes, bytearray, memoryview, a numpy array: any\n"
             "contiguous bytes-like object) into a new chunk and commit it; return\n"
             "its id. Readers see it at once, complete.\n\n"
             "name: publish it as a named block, obsoleting the previous live\n"
             "  version of that name (1-255 bytes of [A-Za-z0-9_.-], starting with\n"
             "  a letter or '_');\n"
             "ttl: seconds (int or float) after which it expires; None or 0: never;\n"
             "replaces: the id of a live chunk this one obsoletes\n"
             "  (FileNotFoundError when no live chunk has it).\n"
             "An uncommitted alloc() is discarded (its view released).");

static PyObject *writer_put(WriterObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"data", "name", "ttl", "replaces", NULL};
    PyObject *data, *name = Py_None, *ttl = Py_None, *replaces = Py_None;
    struct speculo_commit_options o = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$OOO:put", kwlist, &data, &name, &ttl,
                                     &replaces) ||
        commit_options(name, ttl, replaces, &o) < 0 || !writer_use(self))
        return NULL;
    Py_buffer buf;
    if (PyObject_GetBuffer(data, &buf, PyBUF_SIMPLE) < 0)
        return NULL;
    if (writer_take_back(self, "put") < 0) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    uint64_t id;
    int rc = speculo_writer_put(self->w, buf.buf, (size_t)buf.len, &o, &id);
    PyBuffer_Release(&buf);
    if (rc < 0)
        return commit_error(self, rc, &o);
    return PyLong_FromUnsignedLongLong(id);
}

PyDoc_STRVAR(alloc_doc,
             "alloc($self, size, /)\n--\n\n"
             "Reserve size bytes for the next chunk, in the segment itself, and\n"
             "return a writable memoryview of them (zero copy: write the data\n"
             "there, e.g. numpy.frombuffer(view, dtype)[:] = ...). Nothing is\n"
             "visible to readers until commit().\n\n"
             "The view is valid until commit(), the next alloc() or put() (which\n"
             "discard this reservation), gc() or close(): these release it (a\n"
             "write into it then raises ValueError), and raise BufferError while\n"
             "other views of it live (slices, numpy arrays): delete those first.");

static PyObject *writer_alloc(WriterObject *self, PyObject *arg)
{
    Py_ssize_t size = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    if (size == -1 && PyErr_Occurred())
        return NULL;
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "alloc() size must be >= 0");
        return NULL;
    }
    if (!writer_use(self) || writer_take_back(self, "alloc") < 0)
        return NULL;
    void *data;
    int rc = speculo_writer_alloc(self->w, (size_t)size, &data);
    if (rc < 0)
        return ext_raise(rc, self->segment);
    PyObject *res = reservation_new(self, data, (size_t)size);
    if (!res)
        return NULL;
    PyObject *view = PyMemoryView_FromObject(res);
    Py_DECREF(res); /* the view holds it */
    if (!view)
        return NULL;
    self->view = PyWeakref_NewRef(view, NULL);
    if (!self->view) {
        Py_DECREF(view);
        return NULL;
    }
    self->res = (ReservationObject *)res;
    return view;
}

PyDoc_STRVAR(commit_doc,
             "commit($self, /, *, name=None, ttl=None, replaces=None)\n--\n\n"
             "Publish the bytes reserved by alloc() as a new chunk; return its id.\n"
             "The options are those of put(). The view alloc() returned is\n"
             "released first (BufferError while other views of it live).\n"
             "ValueError when nothing is reserved.");

static PyObject *writer_commit(WriterObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"name", "ttl", "replaces", NULL};
    PyObject *name = Py_None, *ttl = Py_None, *replaces = Py_None;
    struct speculo_commit_options o = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|$OOO:commit", kwlist, &name, &ttl, &replaces) ||
        commit_options(name, ttl, replaces, &o) < 0 || !writer_use(self) ||
        writer_take_back(self, "commit") < 0)
        return NULL;
    uint64_t id;
    int rc = speculo_writer_commit(self->w, &o, &id);
    if (rc == -EINVAL) {
        PyErr_SetString(PyExc_ValueError, "commit() with nothing reserved: call alloc() first");
        return NULL;
    }
    if (rc < 0)
        return commit_error(self, rc, &o);
    return PyLong_FromUnsignedLongLong(id);
}

PyDoc_STRVAR(obsolete_doc, "obsolete($self, id, /)\n--\n\n"
                           "Mark the live chunk id obsolete: readers skip it from now on.\n"
                           "FileNotFoundError when no live chunk has this id.");

static PyObject *writer_obsolete(WriterObject *self, PyObject *arg)
{
    uint64_t id;
    if (ext_chunk_id(arg, false, &id) < 0 || !writer_use(self))
        return NULL;
    int rc = speculo_writer_obsolete(self->w, id);
    if (rc < 0) {
        struct speculo_commit_options o = {.replaces = id};
        return commit_error(self, rc, &o);
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(gc_doc, "gc($self, /)\n--\n\n"
                     "Collect now: copy the live chunks into a new segment file and switch\n"
                     "it in. Readers are not disturbed. An uncommitted alloc() is carried\n"
                     "over (commit() still publishes it) but its view is released, as its\n"
                     "bytes move.");

static PyObject *writer_gc(WriterObject *self, PyObject *unused)
{
    (void)unused;
    if (!writer_use(self) || writer_take_back(self, "gc") < 0)
        return NULL;
    int rc = speculo_writer_gc(self->w);
    if (rc < 0)
        return ext_raise(rc, self->segment);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(close_doc, "close($self, /)\n--\n\n"
                        "Give up the writer role. Committed chunks stay; an uncommitted\n"
                        "alloc() is discarded (BufferError while views of it live).\n"
                        "Closing twice is harmless.");

static PyObject *writer_close(WriterObject *self, PyObject *unused)
{
    (void)unused;
    if (writer_close_handle(self, "close") < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *writer_enter(WriterObject *self, PyObject *unused)
{
    (void)unused;
    if (!writer_use(self))
        return NULL;
    return Py_NewRef(self);
}

static PyObject *writer_exit(WriterObject *self, PyObject *args)
{
    (void)args;
    return writer_close(self, NULL);
}

static PyObject *writer_closed(WriterObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->w == NULL);
}

static PyObject *writer_segment(WriterObject *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->segment ? self->segment : Py_None);
}

static PyObject *writer_last_id(WriterObject *self, void *closure)
{
    (void)closure;
    if (!writer_use(self))
        return NULL;
    return PyLong_FromUnsignedLongLong(speculo_writer_last_id(self->w));
}

static PyObject *writer_repr(WriterObject *self)
{
    return PyUnicode_FromFormat("<speculo.Writer segment=%R%s>",
                                self->segment ? self->segment : Py_None,
                                self->w ? "" : " closed");
}

static PyMethodDef writer_methods[] = {
    {"put", EXT_KW_METHOD(writer_put), METH_VARARGS | METH_KEYWORDS, put_doc},
    {"alloc", (PyCFunction)writer_alloc, METH_O, alloc_doc},
    {"commit", EXT_KW_METHOD(writer_commit), METH_VARARGS | METH_KEYWORDS, commit_doc},
    {"obsolete", (PyCFunction)writer_obsolete, METH_O, obsolete_doc},
    {"gc", (PyCFunction)writer_gc, METH_NOARGS, gc_doc},
    {"close", (PyCFunction)writer_close, METH_NOARGS, close_doc},
    {"__enter__", (PyCFunction)writer_enter, METH_NOARGS, "Return the writer."},
    {"__exit__", (PyCFunction)writer_exit, METH_VARARGS, "Close the writer."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef writer_getset[] = {
    {"closed", (getter)writer_closed, NULL, "True once the writer is closed.", NULL},
    {"segment", (getter)writer_segment, NULL, "The segment's name.", NULL},
    {"last_id", (getter)writer_last_id, NULL,
     "The id of the newest chunk committed to the segment (by this writer or\n"
     "an earlier one), 0 if none.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(
    writer_doc,
    "Writer(segment, *, capacity=0, mode=0o600, gc_dead_percent=0, gc_min_dead_bytes=0)\n"
    "--\n\n"
    "The writer of a segment, created when missing (and the segment\n"
    "directory, mode 0700). A segment has one live writer at a time:\n"
    "OSError(errno.EBUSY) while another live process holds the role; the\n"
    "role of a writer that died is taken over, its committed chunks kept.\n"
    "A context manager (close() on exit).\n\n"
    "capacity: size of a new segment file in bytes (0: 4 MiB); it grows\n"
    "  when live data needs more;\n"
    "mode: file mode of a new segment (0o640 lets the group read it);\n"
    "gc_dead_percent, gc_min_dead_bytes: collect at commit time once\n"
    "  obsoleted bytes exceed this percentage of the bytes used and this\n"
    "  many bytes (0: the defaults, 50 % and 1 MiB).\n\n"
    "    with speculo.Writer(\"sensor\") as w:\n"
    "        w.put(b\"21.5\", name=\"temperature\")\n\n"
    "Methods never block (they hold the GIL). A child process forked after\n"
    "the open holds no role: its writes fail with OSError(errno.EBUSY).");

PyTypeObject ext_writer_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "speculo.Writer",
    .tp_basicsize = sizeof(WriterObject),
    .tp_dealloc = (destructor)writer_dealloc,
    .tp_repr = (reprfunc)writer_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = writer_doc,
    .tp_methods = writer_methods,
    .tp_getset = writer_getset,
    .tp_init = (initproc)writer_init,
    .tp_new = writer_new,
};
