/* The user solve of reco_sidecar/engine/foldin.py in C: for each user, the normal equations
 * (YtY + reg I + sum_e gram_e y_e y_e^T) x = sum_e rhs_e y_e built in float64 and solved by
 * Cholesky, the vector rounded once to float32.
 *
 * Why C: the learner solves one such 64 x 64 system per user an event touches, and numpy
 * builds them as stacked matmuls and solves them with one LU per matrix, about half of the
 * learner's CPU (docs/online.md). The matrix is symmetric positive definite whenever YtY +
 * reg I outweighs the negative terms (implicit's c - 1 < 0 for small values), so Cholesky,
 * half of LU's arithmetic, solves it; a user whose matrix is not positive definite is flagged
 * and foldin.py solves that user with numpy's LU, as before.
 *
 * A user's arithmetic is its own (one buffer per call, users one after another), so a vector
 * does not depend on which other users share the call. Every inner loop is an element-wise
 * update of one row by another (no reduction is reordered), so vectorising it (-O3,
 * setup.py) changes no rounding; nor does contraction into fused multiply-adds, which is off.
 *
 * No Python object is touched between Py_BEGIN_ALLOW_THREADS and its end.
 */
#include "../common/pybuffer.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* One user; the matrix's upper triangle in `a` (k x k), the right side then the solution in
 * `b`, a factor row in `y`. Returns 0, or 1 when the matrix is not positive definite.
 *
 * Compiled twice where the compiler can (GCC's target clones; elsewhere the one baseline
 * form): for AVX2 and for the baseline, the CPU choosing at load. numpy's form runs on
 * OpenBLAS, which picks AVX2 kernels at run time; with the baseline's two-wide vectors alone
 * this was 1.5 x faster than numpy, with AVX2 2-2.5 x. Element-wise updates round alike at
 * any width. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
__attribute__((target_clones("avx2", "default")))
#endif
static int
one(const float *items, Py_ssize_t k, const double *yty, const int64_t *rows, const double *gram,
    const double *rhs, int64_t len, double reg, double *restrict a, double *restrict b, double *restrict y,
    float *out)
{
    memcpy(a, yty, sizeof(double) * (size_t)(k * k));
    for (Py_ssize_t i = 0; i < k; i++) {
        a[i * k + i] += reg;
        b[i] = 0.0;
    }
    for (int64_t e = 0; e < len; e++) {
        const float *v = items + (size_t)rows[e] * (size_t)k;
        for (Py_ssize_t i = 0; i < k; i++)
            y[i] = (double)v[i];
        const double g = gram[e], r = rhs[e];
        for (Py_ssize_t i = 0; i < k; i++) {
            const double gy = g * y[i];
            double *restrict row = a + i * k;
            for (Py_ssize_t l = i; l < k; l++)
                row[l] += gy * y[l];
            b[i] += r * y[i];
        }
    }
    /* a = U^T U, U upper triangular, row by row in place */
    for (Py_ssize_t j = 0; j < k; j++) {
        double *restrict rj = a + j * k;
        if (!(rj[j] > 0.0) || !isfinite(rj[j]))
            return 1;
        const double d = sqrt(rj[j]);
        rj[j] = d;
        for (Py_ssize_t i = j + 1; i < k; i++)
            rj[i] /= d;
        for (Py_ssize_t i = j + 1; i < k; i++) {
            const double f = rj[i];
            double *restrict ri = a + i * k;
            for (Py_ssize_t l = i; l < k; l++)
                ri[l] -= f * rj[l];
        }
    }
    for (Py_ssize_t j = 0; j < k; j++) { /* U^T z = b */
        const double *rj = a + j * k;
        b[j] /= rj[j];
        const double z = b[j];
        for (Py_ssize_t i = j + 1; i < k; i++)
            b[i] -= rj[i] * z;
    }
    for (Py_ssize_t i = k - 1; i >= 0; i--) { /* U x = z */
        const double *ri = a + i * k;
        double s = b[i];
        for (Py_ssize_t l = i + 1; l < k; l++)
            s -= ri[l] * b[l];
        b[i] = s / ri[i];
    }
    for (Py_ssize_t i = 0; i < k; i++)
        out[i] = (float)b[i];
    return 0;
}

static PyObject *
foldin_solve(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *items_o, *yty_o, *rows_o, *gram_o, *rhs_o, *lengths_o, *reg_o, *out_o, *failed_o;
    if (!PyArg_ParseTuple(args, "OOOOOOOOO", &items_o, &yty_o, &rows_o, &gram_o, &rhs_o, &lengths_o, &reg_o,
                          &out_o, &failed_o))
        return NULL;
    Py_buffer items = {0}, yty = {0}, rows = {0}, gram = {0}, rhs = {0}, lengths = {0}, reg = {0}, out = {0},
              failed = {0};
    PyObject *result = NULL;
    if (get_buffer(items_o, &items, 2, 4, "f", "item_factors", 0) < 0)
        return NULL;
    if (get_buffer(yty_o, &yty, 2, 8, "d", "yty", 0) < 0 || get_buffer(rows_o, &rows, 1, 8, "lq", "rows", 0) < 0
        || get_buffer(gram_o, &gram, 1, 8, "d", "gram", 0) < 0 || get_buffer(rhs_o, &rhs, 1, 8, "d", "rhs", 0) < 0
        || get_buffer(lengths_o, &lengths, 1, 8, "lq", "lengths", 0) < 0
        || get_buffer(reg_o, &reg, 1, 8, "d", "regularization", 0) < 0
        || get_buffer(out_o, &out, 2, 4, "f", "out", 1) < 0 || get_buffer(failed_o, &failed, 1, 1, "?B", "failed", 1) < 0)
        goto release;
    const Py_ssize_t k = items.shape[1], n = lengths.shape[0], t = rows.shape[0];
    if (yty.shape[0] != k || yty.shape[1] != k || out.shape[0] != n || out.shape[1] != k || reg.shape[0] != n
        || failed.shape[0] != n || gram.shape[0] != t || rhs.shape[0] != t) {
        PyErr_SetString(PyExc_ValueError, "yty must be k x k, out n x k, regularization and failed n long, and "
                                          "gram and rhs as long as rows");
        goto release;
    }
    const int64_t *ln = lengths.buf, *rw = rows.buf;
    Py_ssize_t total = 0;
    for (Py_ssize_t u = 0; u < n; u++) {
        if (ln[u] < 0 || ln[u] > t - total) {
            PyErr_SetString(PyExc_ValueError, "lengths must be non-negative and add up to the length of rows");
            goto release;
        }
        total += ln[u];
    }
    if (total != t) {
        PyErr_SetString(PyExc_ValueError, "lengths must be non-negative and add up to the length of rows");
        goto release;
    }
    for (Py_ssize_t i = 0; i < t; i++)
        if (rw[i] < 0 || rw[i] >= items.shape[0]) {
            PyErr_SetString(PyExc_IndexError, "a row outside item_factors");
            goto release;
        }
    double *work = malloc(sizeof(double) * (size_t)(k * k + 2 * k + 1));
    if (work == NULL) {
        PyErr_NoMemory();
        goto release;
    }
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t at = 0;
    float *o = out.buf;
    unsigned char *f = failed.buf;
    for (Py_ssize_t u = 0; u < n; u++) {
        if (ln[u] == 0) { /* no items: the zero vector, as implicit gives */
            memset(o + u * k, 0, sizeof(float) * (size_t)k);
            f[u] = 0;
            continue;
        }
        f[u] = (unsigned char)one(items.buf, k, yty.buf, rw + at, (const double *)gram.buf + at,
                                  (const double *)rhs.buf + at, ln[u], ((const double *)reg.buf)[u], work,
                                  work + k * k, work + k * k + k, o + u * k);
        at += ln[u];
    }
    Py_END_ALLOW_THREADS
    free(work);
    Py_INCREF(Py_None);
    result = Py_None;
release:
    PyBuffer_Release(&items);
    if (yty.obj) PyBuffer_Release(&yty);
    if (rows.obj) PyBuffer_Release(&rows);
    if (gram.obj) PyBuffer_Release(&gram);
    if (rhs.obj) PyBuffer_Release(&rhs);
    if (lengths.obj) PyBuffer_Release(&lengths);
    if (reg.obj) PyBuffer_Release(&reg);
    if (out.obj) PyBuffer_Release(&out);
    if (failed.obj) PyBuffer_Release(&failed);
    return result;
}

static PyMethodDef methods[] = {
    {"solve", foldin_solve, METH_VARARGS,
     "solve(item_factors, yty, rows, gram, rhs, lengths, regularization, out, failed): each user's vector "
     "into out, by Cholesky; failed[u] set where the matrix was not positive definite (see foldin.py)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_foldin", "foldin's kernel (see foldin.py).", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC
PyInit__foldin(void)
{
    return PyModule_Create(&module);
}
