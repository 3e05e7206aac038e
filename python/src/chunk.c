/*
 * speculo.Chunk: a chunk a reader returned, its bytes left in the shared
 * mapping. The Chunk holds a reference on the mapping of the file the
 * chunk came from (speculo_reader_hold()) and exports the bytes through
 * the buffer protocol, read-only: `chunk.data`, `memoryview(chunk)`,
 * `numpy.frombuffer(chunk.data)` and `bytes(chunk)` all see them in place.
 * A view keeps its Chunk alive, the Chunk keeps the mapping: the file is
 * unmapped when the last of them goes, whatever the reader did meanwhile
 * (collection switches, its close). Chunks are immutable and take part in
 * no reference cycle, so the release is immediate, not left to the
 * garbage collector.
 */
#include "ext.h"

#include <errno.h>
#include <string.h>

#include <structmember.h>

typedef struct {
    PyObject_HEAD
    speculo_mapping *map; /* keeps data mapped */
    const void *data;
    Py_ssize_t size;
    uint64_t id;
    uint64_t replaces;
    int64_t committed_ns;
    int64_t expires_ns;
    PyObject *name; /* str, or NULL for an unnamed chunk */
} ChunkObject;

PyObject *ext_chunk_new(speculo_reader *r, const speculo_chunk *c, PyObject *segment)
{
    PyObject *name = NULL;
    if (c->size > (size_t)PY_SSIZE_T_MAX)
        return ext_raise(-EFBIG, segment);
    if (c->name) {
        /* names are ASCII by the library's rules; a file breaking them is corrupt */
        name = PyUnicode_DecodeASCII(c->name, (Py_ssize_t)strlen(c->name), NULL);
        if (!name) {
            PyErr_Clear();
            return ext_raise(-EBADMSG, segment);
        }
    }
    ChunkObject *self = PyObject_New(ChunkObject, &ext_chunk_type);
    if (!self) {
        Py_XDECREF(name);
        return NULL;
    }
    self->map = NULL;
    self->name = name;
    int rc = speculo_reader_hold(r, &self->map);
    if (rc < 0) {
        Py_DECREF(self);
        return ext_raise(rc, segment);
    }
    self->data = c->data;
    self->size = (Py_ssize_t)c->size;
    self->id = c->id;
    self->replaces = speculo_chunk_replaces(c);
    self->committed_ns = c->committed_ns;
    self->expires_ns = c->expires_ns;
    return (PyObject *)self;
}

static void chunk_dealloc(ChunkObject *self)
{
    Py_XDECREF(self->name);
    speculo_mapping_release(self->map);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int chunk_getbuffer(ChunkObject *self, Py_buffer *view, int flags)
{
    /* read-only: a request for a writable buffer is a BufferError, a write
     * into the memoryview a TypeError */
    return PyBuffer_FillInfo(view, (PyObject *)self, (void *)self->data, self->size, 1, flags);
}

static PyBufferProcs chunk_as_buffer = {
    .bf_getbuffer = (getbufferproc)chunk_getbuffer,
};

PyDoc_STRVAR(data_doc,
             "The chunk's bytes: a read-only memoryview of the shared mapping (no\n"
             "copy). Valid for as long as it is referenced, also after the reader\n"
             "moved on, the segment was collected, or the reader was closed. Each\n"
             "access makes a new view of the same bytes.");

static PyObject *chunk_data(ChunkObject *self, void *closure)
{
    (void)closure;
    return PyMemoryView_FromObject((PyObject *)self);
}

static PyGetSetDef chunk_getset[] = {
    {"data", (getter)chunk_data, NULL, data_doc, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef chunk_members[] = {
    {"id", T_ULONGLONG, offsetof(ChunkObject, id), READONLY,
     "The chunk's id: >= 1, strictly increasing in commit order, never reused."},
    {"name", T_OBJECT, offsetof(ChunkObject, name), READONLY,
     "The chunk's name (str), or None for an unnamed chunk."},
    {"size", T_PYSSIZET, offsetof(ChunkObject, size), READONLY, "The number of bytes."},
    {"committed_ns", T_LONGLONG, offsetof(ChunkObject, committed_ns), READONLY,
     "When it was committed: wall clock, ns since the epoch (as time.time_ns())."},
    {"expires_ns", T_LONGLONG, offsetof(ChunkObject, expires_ns), READONLY,
     "When it expires: wall clock, ns since the epoch; 0 = never."},
    {"replaces", T_ULONGLONG, offsetof(ChunkObject, replaces), READONLY,
     "The id of the chunk it obsoleted when committed (its replaces= option,\n"
     "or the previous version of its name); 0 if none."},
    {NULL, 0, 0, 0, NULL},
};

static PyObject *chunk_repr(ChunkObject *self)
{
    return PyUnicode_FromFormat("<speculo.Chunk id=%llu name=%R size=%zd>",
                                (unsigned long long)self->id, self->name ? self->name : Py_None,
                                self->size);
}

PyDoc_STRVAR(
    chunk_doc,
    "A chunk returned by a Reader, its bytes in place in the shared memory.\n\n"
    "Attributes: id, name, data, size, committed_ns, expires_ns, replaces.\n\n"
    "The bytes are not copied: .data is a read-only memoryview of the shared\n"
    "mapping, and a Chunk exports the same bytes itself (bytes(chunk),\n"
    "memoryview(chunk), numpy.frombuffer(chunk.data, dtype)). Committed data\n"
    "never changes. The mapping stays valid while the Chunk or any view of it\n"
    "is referenced: after the reader moved on, after the segment was\n"
    "collected into a new file, after the reader was closed. The file is\n"
    "unmapped as soon as the last of them is gone.\n\n"
    "A Chunk is not created directly: Reader.next(), get(), get_id(),\n"
    "iteration and follow() return them.");

PyTypeObject ext_chunk_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "speculo.Chunk",
    .tp_basicsize = sizeof(ChunkObject),
    .tp_dealloc = (destructor)chunk_dealloc,
    .tp_repr = (reprfunc)chunk_repr,
    .tp_as_buffer = &chunk_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = chunk_doc,
    .tp_members = chunk_members,
    .tp_getset = chunk_getset,
};
