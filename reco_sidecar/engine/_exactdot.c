/* The exact score kernel of reco_sidecar/engine/exactdot.py in C: the same operations in the
 * same order, so the same bits.
 *
 * Why C: numpy's form gathers both vectors of every pair into float64 temporaries and then
 * halves them log2(d) times, each step a pass over memory; for a ranked call's 170-odd
 * candidates that is most of what a deeper retrieval costs. Here a pair is d products and
 * d - 1 additions in a buffer of its own.
 *
 * For each pair: the d products of two float32 numbers in float64 (exact: 24 + 24 bits < 53),
 * the width padded with +0.0 to a power of two, then halves added elementwise
 * (buf[j] = buf[j] + buf[j + width]) until one is left, rounded once to float32. Compiled
 * without contraction into fused multiply-adds (setup.py), so each operation rounds as
 * numpy's does.
 *
 * No Python object is touched between Py_BEGIN_ALLOW_THREADS and its end.
 */
#include "../common/pybuffer.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void
run(const float *vectors, const float *items, Py_ssize_t d, const int64_t *pair_vector, const int64_t *pair_item,
    Py_ssize_t m, float *out, double *buf, Py_ssize_t width)
{
    for (Py_ssize_t i = 0; i < m; i++) {
        const float *u = vectors + (size_t)pair_vector[i] * (size_t)d;
        const float *v = items + (size_t)pair_item[i] * (size_t)d;
        Py_ssize_t j = 0;
        for (; j < d; j++)
            buf[j] = (double)u[j] * (double)v[j];
        for (; j < width; j++)
            buf[j] = 0.0;
        for (Py_ssize_t w = width; w > 1;) {
            w /= 2;
            for (Py_ssize_t k = 0; k < w; k++)
                buf[k] = buf[k] + buf[k + w];
        }
        out[i] = (float)buf[0];
    }
}

static PyObject *
exactdot_scores(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *vectors_o, *items_o, *pv_o, *pi_o, *out_o;
    if (!PyArg_ParseTuple(args, "OOOOO", &vectors_o, &items_o, &pv_o, &pi_o, &out_o))
        return NULL;
    Py_buffer vectors = {0}, items = {0}, pv = {0}, pi = {0}, out = {0};
    PyObject *result = NULL;
    if (get_buffer(vectors_o, &vectors, 2, 4, "f", "vectors", 0) < 0)
        return NULL;
    if (get_buffer(items_o, &items, 2, 4, "f", "items", 0) < 0)
        goto release;
    if (get_buffer(pv_o, &pv, 1, 8, "lq", "pair_vector", 0) < 0)
        goto release;
    if (get_buffer(pi_o, &pi, 1, 8, "lq", "pair_item", 0) < 0)
        goto release;
    if (get_buffer(out_o, &out, 1, 4, "f", "out", 1) < 0)
        goto release;
    Py_ssize_t d = vectors.shape[1], m = pv.shape[0];
    if (items.shape[1] != d || pi.shape[0] != m || out.shape[0] != m) {
        PyErr_SetString(PyExc_ValueError, "vectors and items must have the same width; the pairs and out one length");
        goto release;
    }
    const int64_t *pvd = pv.buf, *pid = pi.buf;
    for (Py_ssize_t i = 0; i < m; i++)
        if (pvd[i] < 0 || pvd[i] >= vectors.shape[0] || pid[i] < 0 || pid[i] >= items.shape[0]) {
            PyErr_SetString(PyExc_IndexError, "a pair names a row outside vectors or items");
            goto release;
        }
    Py_ssize_t width = 1;
    while (width < d)
        width *= 2;
    double *buf = malloc(sizeof(double) * (size_t)width);
    if (buf == NULL) {
        PyErr_NoMemory();
        goto release;
    }
    Py_BEGIN_ALLOW_THREADS
    run(vectors.buf, items.buf, d, pvd, pid, m, out.buf, buf, width);
    Py_END_ALLOW_THREADS
    free(buf);
    Py_INCREF(Py_None);
    result = Py_None;
release:
    PyBuffer_Release(&vectors);
    if (items.obj) PyBuffer_Release(&items);
    if (pv.obj) PyBuffer_Release(&pv);
    if (pi.obj) PyBuffer_Release(&pi);
    if (out.obj) PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"scores", exactdot_scores, METH_VARARGS,
     "scores(vectors, items, pair_vector, pair_item, out): out[i] = the exact score of the pair "
     "(vectors[pair_vector[i]], items[pair_item[i]]); see exactdot.py"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_exactdot", "exactdot's kernel (see exactdot.py).", -1,
                                    methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC
PyInit__exactdot(void)
{
    return PyModule_Create(&module);
}
