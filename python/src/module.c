/*
 * The module `speculo.speculo`: its functions (segments, remove,
 * segment_dir), its constants, and what the types share: the mapping of
 * library errors to Python exceptions and the checks of names, ids and
 * durations given by the caller.
 */
#include "ext.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* ---- errors ---------------------------------------------------------- */

/* For -EPERM: which rule the segment directory breaks, as the library
 * checks it, or NULL when the directory is fine (the file is then the
 * unsafe one). */
static PyObject *unsafe_dir_message(void)
{
    char dir[PATH_MAX], why[256] = "";
    if (speculo_segment_dir(dir, sizeof dir) < 0)
        return NULL;
    for (unsigned flags = 0; flags <= SPECULO_DIR_WRITER; flags += SPECULO_DIR_WRITER) {
        if (speculo_dir_check(dir, flags, why, sizeof why) == -EPERM && why[0])
            return PyUnicode_FromFormat("unsafe segment directory %s: %s", dir, why);
    }
    return NULL;
}

PyObject *ext_raise(int rc, PyObject *what)
{
    int err = rc < 0 ? -rc : rc;
    if (err == EINVAL) { /* a bad argument, by the library's rules */
        if (what)
            return PyErr_Format(PyExc_ValueError, "%s: %R", speculo_strerror(err), what);
        return PyErr_Format(PyExc_ValueError, "%s", speculo_strerror(err));
    }
    PyObject *msg = err == EPERM ? unsafe_dir_message() : NULL;
    if (!msg) {
        PyErr_Clear();
        msg = PyUnicode_FromString(speculo_strerror(err));
    }
    if (!msg)
        return NULL;
    PyObject *exc = PyObject_CallFunction(PyExc_OSError, "iOO", err, msg, what ? what : Py_None);
    Py_DECREF(msg);
    if (exc) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

int ext_fail(int rc, PyObject *what)
{
    ext_raise(rc, what);
    return -1;
}

/* ---- conversions -------------------------------------------------------- */

/* The UTF-8 of a str without NUL bytes; NULL and an exception otherwise. */
static const char *name_utf8(PyObject *arg, const char *what)
{
    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "%s must be a str, not %.100s", what, Py_TYPE(arg)->tp_name);
        return NULL;
    }
    Py_ssize_t len;
    const char *s = PyUnicode_AsUTF8AndSize(arg, &len);
    if (s && (size_t)len != strlen(s)) {
        PyErr_Format(PyExc_ValueError, "invalid %s %R: it contains a NUL character", what, arg);
        return NULL;
    }
    return s;
}

PyObject *ext_segment_name(PyObject *arg, const char **utf8)
{
    const char *s = name_utf8(arg, "segment name");
    if (!s)
        return NULL;
    int rc = speculo_segment_name_check(s);
    if (rc == -ENAMETOOLONG)
        PyErr_Format(PyExc_ValueError, "segment name too long (%zu bytes, at most %d)", strlen(s),
                     SPECULO_SEGMENT_NAME_MAX);
    else if (rc < 0)
        PyErr_Format(PyExc_ValueError,
                     "invalid segment name %R: 1-%d bytes of [A-Za-z0-9_.-], not starting "
                     "with '.'",
                     arg, SPECULO_SEGMENT_NAME_MAX);
    if (rc < 0)
        return NULL;
    *utf8 = s;
    Py_INCREF(arg);
    return arg;
}

int ext_chunk_name(PyObject *arg, const char **utf8)
{
    if (arg == NULL || arg == Py_None) {
        *utf8 = NULL;
        return 0;
    }
    const char *s = name_utf8(arg, "chunk name");
    if (!s)
        return -1;
    int rc = speculo_chunk_name_check(s);
    if (rc == -ENAMETOOLONG)
        PyErr_Format(PyExc_ValueError, "chunk name too long (%zu bytes, at most %d)", strlen(s),
                     SPECULO_CHUNK_NAME_MAX);
    else if (rc < 0)
        PyErr_Format(PyExc_ValueError,
                     "invalid chunk name %R: 1-%d bytes of [A-Za-z0-9_.-], starting with a "
                     "letter or '_'",
                     arg, SPECULO_CHUNK_NAME_MAX);
    if (rc < 0)
        return -1;
    *utf8 = s;
    return 0;
}

int ext_chunk_id(PyObject *arg, bool none_ok, uint64_t *id)
{
    if (arg == NULL || (none_ok && arg == Py_None)) {
        *id = 0;
        return 0;
    }
    PyObject *index = PyNumber_Index(arg); /* ints, and numpy's */
    if (!index)
        return -1;
    unsigned long long v = PyLong_AsUnsignedLongLong(index);
    Py_DECREF(index);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "invalid chunk id %R: ids are 0 to 2**64-1", arg);
        }
        return -1;
    }
    *id = v;
    return 0;
}

int ext_seconds_ns(PyObject *arg, const char *what, int64_t *ns)
{
    if (arg == NULL || arg == Py_None) {
        *ns = -1;
        return 0;
    }
    double s = PyFloat_AsDouble(arg); /* int, float, and anything with __float__ */
    if (s == -1.0 && PyErr_Occurred())
        return -1;
    if (isnan(s) || s < 0) {
        PyErr_Format(PyExc_ValueError, "%s must be a number of seconds >= 0, not %R", what, arg);
        return -1;
    }
    double v = ceil(s * 1e9);
    if (v >= 9.2e18) {
        PyErr_Format(PyExc_ValueError, "%s too large: %R seconds", what, arg);
        return -1;
    }
    *ns = (int64_t)v;
    return 0;
}

int64_t ext_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- functions ------------------------------------------------------------ */

PyDoc_STRVAR(segment_dir_doc, "segment_dir($module, /)\n--\n\n"
                              "The segment directory: $SPECULO_DIR when set, else\n"
                              "/dev/shm/speculo-$UID (whether it exists or not).");

static PyObject *segment_dir(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    char dir[PATH_MAX];
    int rc = speculo_segment_dir(dir, sizeof dir);
    if (rc < 0)
        return ext_raise(rc, NULL);
    return PyUnicode_DecodeFSDefault(dir);
}

/* A segment: a regular file with a valid segment name (the library's dot
 * files and strays are not). */
static bool is_segment(DIR *d, const struct dirent *e)
{
    if (speculo_segment_name_check(e->d_name) < 0)
        return false;
    if (e->d_type == DT_REG)
        return true;
    struct stat st;
    return e->d_type == DT_UNKNOWN && fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
           S_ISREG(st.st_mode);
}

/* Append the segment names of an open directory to a list. 0, or -errno. */
static int read_segment_names(DIR *d, PyObject *list)
{
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d))) {
        if (!is_segment(d, e))
            continue;
        PyObject *name = PyUnicode_FromString(e->d_name);
        if (!name || PyList_Append(list, name) < 0) {
            Py_XDECREF(name);
            return -ENOMEM;
        }
        Py_DECREF(name);
        errno = 0;
    }
    return -errno;
}

PyDoc_STRVAR(segments_doc,
             "segments($module, /)\n--\n\n"
             "The names of the segments in the segment directory, sorted; [] when\n"
             "the directory does not exist. PermissionError when it is unsafe (a\n"
             "symbolic link, writable by others, not yours).");

static PyObject *segments(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    char dir[PATH_MAX];
    int rc = speculo_segment_dir(dir, sizeof dir);
    if (rc >= 0)
        rc = speculo_dir_check(dir, 0, NULL, 0);
    if (rc == -ENOENT)
        return PyList_New(0);
    if (rc < 0)
        return ext_raise(rc, NULL);
    DIR *d = opendir(dir);
    if (!d)
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, dir);
    PyObject *list = PyList_New(0);
    rc = list ? read_segment_names(d, list) : -ENOMEM;
    closedir(d);
    if (rc < 0 || PyList_Sort(list) < 0) {
        if (rc < 0 && !PyErr_Occurred()) {
            errno = -rc;
            PyErr_SetFromErrnoWithFilename(PyExc_OSError, dir);
        }
        Py_XDECREF(list);
        return NULL;
    }
    return list;
}

PyDoc_STRVAR(remove_doc,
             "remove($module, /, segment, *, force=False)\n--\n\n"
             "Remove a segment (and the temporary files its dead writers left).\n"
             "Readers that have it mapped keep the chunks they hold; their next()\n"
             "raises FileNotFoundError. While the segment's writer is alive this\n"
             "fails with OSError(errno.EBUSY), unless force is true.\n"
             "FileNotFoundError when there is no such segment.");

static PyObject *remove_segment(PyObject *mod, PyObject *args, PyObject *kw)
{
    (void)mod;
    static char *kwlist[] = {"segment", "force", NULL};
    PyObject *arg;
    int force = 0;
    const char *name;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$p:remove", kwlist, &arg, &force))
        return NULL;
    PyObject *seg = ext_segment_name(arg, &name);
    if (!seg)
        return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = speculo_segment_remove(name, force ? SPECULO_REMOVE_FORCE : 0);
    Py_END_ALLOW_THREADS
    PyObject *result = rc < 0 ? ext_raise(rc, seg) : Py_NewRef(Py_None);
    Py_DECREF(seg);
    return result;
}

static PyMethodDef module_methods[] = {
    {"segments", segments, METH_NOARGS, segments_doc},
    {"remove", EXT_KW_METHOD(remove_segment), METH_VARARGS | METH_KEYWORDS, remove_doc},
    {"segment_dir", segment_dir, METH_NOARGS, segment_dir_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(module_doc,
             "The C extension behind the speculo package (import speculo, not this).");

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "speculo.speculo",
    .m_doc = module_doc,
    .m_size = -1,
    .m_methods = module_methods,
};

static int add_type(PyObject *mod, PyTypeObject *type, const char *name)
{
    if (PyType_Ready(type) < 0)
        return -1;
    return name ? PyModule_AddObjectRef(mod, name, (PyObject *)type) : 0;
}

static int add_constants(PyObject *mod)
{
    if (PyModule_AddObject(mod, "END", PyLong_FromUnsignedLongLong(UINT64_MAX)) < 0 ||
        PyModule_AddStringConstant(mod, "VERSION", SPECULO_VERSION) < 0 ||
        PyModule_AddIntConstant(mod, "FORMAT_VERSION", SPECULO_FORMAT_VERSION) < 0 ||
        PyModule_AddObject(mod, "DEFAULT_CAPACITY",
                           PyLong_FromSize_t(SPECULO_DEFAULT_CAPACITY)) < 0)
        return -1;
    return 0;
}

PyMODINIT_FUNC PyInit_speculo(void);

PyMODINIT_FUNC PyInit_speculo(void)
{
    if (ext_writer_fork_init() < 0)
        return NULL;
    PyObject *mod = PyModule_Create(&module_def);
    if (!mod)
        return NULL;
    if (add_type(mod, &ext_chunk_type, "Chunk") < 0 ||
        add_type(mod, &ext_reader_type, "Reader") < 0 ||
        add_type(mod, &ext_follow_type, NULL) < 0 ||
        add_type(mod, &ext_writer_type, "Writer") < 0 ||
        add_type(mod, &ext_reservation_type, NULL) < 0 || add_constants(mod) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
