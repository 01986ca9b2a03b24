/* The one way the C kernels (setup.py) read an array argument: through the buffer protocol,
 * C-contiguous, with the dimensions, item size and format asked for; otherwise a TypeError
 * naming the argument. Included by each kernel, so static. */
#ifndef RECO_PYBUFFER_H
#define RECO_PYBUFFER_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static int
get_buffer(PyObject *obj, Py_buffer *view, int ndim, Py_ssize_t itemsize, const char *kinds, const char *name,
           int writable)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0)
        return -1;
    const char *format = view->format ? view->format : "B";
    if (format[0] == '<' || format[0] == '=' || format[0] == '@')
        format++;
    if (view->ndim != ndim || view->itemsize != itemsize || format[0] == '\0' || format[1] != '\0'
        || strchr(kinds, format[0]) == NULL) {
        PyErr_Format(PyExc_TypeError, "%s: a C-contiguous %d-d array of %zd-byte items (%s) is needed",
                     name, ndim, itemsize, kinds);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

#endif
