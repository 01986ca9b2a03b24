/* Maximal marginal relevance over one candidate pool: the ranking stage's per-position loop
 * (reco_sidecar/ranking/mmr.py) in C.
 *
 * Why C: each of a page's positions is a handful of steps over about 170 candidates. In numpy
 * every step is a call of a microsecond or two whatever the array's size, so ten positions
 * cost about 0.1 ms, most of the ranking stage's CPU (docs/ranking.md, "Cost"). Here a
 * position costs the cosines of the pool's items to the item placed last, and nothing else:
 * a candidate's largest cosine to the window is brought up to date only when it is in a pool.
 *
 * It computes exactly what the numpy form in mmr.py computes: the same pool, the same cap
 * window, ties to the first, and every value as (1 - lambda) * adjusted + (-lambda) * (largest
 * cosine), in that order of float64 operations. A cosine is the float64 sum of the float64
 * products of two float32 unit vectors (every product is exact); numpy's BLAS adds the same
 * products in another order, so the two forms can differ in the last bits of a cosine, which
 * decides a pick only between candidates within about 1e-15 of each other.
 *
 * No Python object is touched between Py_BEGIN_ALLOW_THREADS and its end.
 */
#include "../common/pybuffer.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

static double
cosine(const float *a, const float *b, Py_ssize_t dims)
{
    /* Four partial sums: a fixed order, and four times fewer dependent additions. */
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    Py_ssize_t k = 0;
    for (; k + 4 <= dims; k += 4) {
        s0 += (double)a[k] * (double)b[k];
        s1 += (double)a[k + 1] * (double)b[k + 1];
        s2 += (double)a[k + 2] * (double)b[k + 2];
        s3 += (double)a[k + 3] * (double)b[k + 3];
    }
    for (; k < dims; k++)
        s0 += (double)a[k] * (double)b[k];
    return (s0 + s1) + (s2 + s3);
}

typedef struct {
    /* inputs */
    const float *units; /* items x dims */
    Py_ssize_t dims;
    const int64_t *rows; /* n: the candidates' item rows, best adjusted score first */
    const double *adjusted;
    const int32_t *codes; /* n, or NULL without a cap */
    Py_ssize_t n;
    const int64_t *pin_rows; /* per position 1..want: the pinned item row, or -1 */
    const int32_t *pin_codes; /* per position: the pin's cap code, or -1 */
    double lam;
    Py_ssize_t pool_size, want, window, cap, cap_values;
    double bound;
    int exhausted;
    /* outputs */
    int64_t *out; /* want: a pin's item row, or an organic item's place in `rows` */
    char *pinned;
    Py_ssize_t placed_count;
    int exact;
} Job;

/* Returns 0, or -1 when memory ran out. */
static int
run(Job *j)
{
    const Py_ssize_t n = j->n;
    const int capping = j->codes != NULL && j->cap > 0 && j->window > 1;
    double *relevance = malloc(sizeof(double) * (size_t)(n ? n : 1));
    double *maxsim = malloc(sizeof(double) * (size_t)(n ? n : 1));
    Py_ssize_t *upto = malloc(sizeof(Py_ssize_t) * (size_t)(n ? n : 1));
    Py_ssize_t *from = malloc(sizeof(Py_ssize_t) * (size_t)(n ? n : 1));
    char *available = malloc((size_t)(n ? n : 1));
    Py_ssize_t *pool = malloc(sizeof(Py_ssize_t) * (size_t)(j->pool_size ? j->pool_size : 1));
    int64_t *placed = malloc(sizeof(int64_t) * (size_t)(j->want ? j->want : 1)); /* item rows */
    int32_t *placed_codes = malloc(sizeof(int32_t) * (size_t)(j->want ? j->want : 1));
    Py_ssize_t *counts = calloc((size_t)(capping && j->cap_values ? j->cap_values : 1), sizeof(Py_ssize_t));
    int ok = relevance && maxsim && upto && from && available && pool && placed && placed_codes && counts;
    if (ok) {
        const double keep = 1.0 - j->lam, minus = -j->lam;
        for (Py_ssize_t i = 0; i < n; i++) {
            relevance[i] = keep * j->adjusted[i];
            maxsim[i] = -INFINITY;
            upto[i] = 0;
            from[i] = 0;
            available[i] = 1;
        }
        Py_ssize_t count = 0; /* items placed */
        j->exact = 1;
        for (Py_ssize_t position = 1; position <= j->want; position++) {
            int64_t pin = j->pin_rows[position - 1];
            int64_t row;
            int32_t code;
            if (pin >= 0) {
                j->out[count] = pin;
                j->pinned[count] = 1;
                row = pin;
                code = capping ? j->pin_codes[position - 1] : -1;
            } else {
                /* The pool: the first pool_size available items the cap allows (the window's
                   last window - 1 placed items hold fewer than cap of their value). */
                Py_ssize_t size = 0;
                for (Py_ssize_t i = 0; i < n && size < j->pool_size; i++) {
                    if (!available[i])
                        continue;
                    if (capping) {
                        Py_ssize_t seen = counts[j->codes[i]];
                        if (seen >= j->cap)
                            continue;
                    }
                    pool[size++] = i;
                }
                if (size < j->pool_size || j->adjusted[pool[size - 1]] <= j->bound) {
                    if (!j->exhausted) {
                        j->exact = 0;
                        j->placed_count = count;
                        goto done; /* the pool reaches past what was retrieved */
                    }
                    if (size == 0) { /* the whole catalogue is capped out: the cap gives way */
                        j->exact = 0;
                        for (Py_ssize_t i = 0; i < n && size < j->pool_size; i++)
                            if (available[i])
                                pool[size++] = i;
                        if (size == 0)
                            break;
                    }
                }
                /* The window of cosines: the last `window` placed items. */
                Py_ssize_t start = count > j->window ? count - j->window : 0;
                Py_ssize_t best = -1;
                double best_value = 0.0;
                for (Py_ssize_t p = 0; p < size; p++) {
                    Py_ssize_t i = pool[p];
                    double value;
                    if (count == 0) {
                        value = relevance[i];
                    } else {
                        const float *u = j->units + (size_t)j->rows[i] * (size_t)j->dims;
                        if (from[i] != start) { /* the window moved past what this maximum saw */
                            maxsim[i] = -INFINITY;
                            upto[i] = start;
                            from[i] = start;
                        }
                        for (Py_ssize_t q = upto[i]; q < count; q++) {
                            double s = cosine(u, j->units + (size_t)placed[q] * (size_t)j->dims, j->dims);
                            if (s > maxsim[i])
                                maxsim[i] = s;
                        }
                        upto[i] = count;
                        value = maxsim[i] * minus + relevance[i];
                    }
                    if (best < 0 || value > best_value) {
                        best = i;
                        best_value = value;
                    }
                }
                available[best] = 0;
                j->out[count] = best;
                j->pinned[count] = 0;
                row = j->rows[best];
                code = capping ? j->codes[best] : -1;
            }
            placed[count] = row;
            placed_codes[count] = code;
            count++;
            if (capping) {
                /* the cap's window: the last window - 1 placed items' codes */
                if (count > j->window - 1) {
                    int32_t left = placed_codes[count - j->window];
                    if (left >= 0)
                        counts[left]--;
                }
                if (code >= 0)
                    counts[code]++;
            }
        }
        j->placed_count = count;
    }
done:
    free(relevance);
    free(maxsim);
    free(upto);
    free(from);
    free(available);
    free(pool);
    free(placed);
    free(placed_codes);
    free(counts);
    return ok ? 0 : -1;
}

static PyObject *
mmr_pick(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)self;
    static char *names[] = {"units", "rows", "adjusted", "codes", "pin_rows", "pin_codes", "cap_values",
                            "lam", "pool_size", "want", "window", "cap", "bound", "exhausted", NULL};
    PyObject *units_o, *rows_o, *adjusted_o, *codes_o, *pin_rows_o, *pin_codes_o;
    Py_ssize_t cap_values, pool_size, want, window, cap;
    double lam, bound;
    int exhausted;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOOndnnnndp", names, &units_o, &rows_o, &adjusted_o,
                                     &codes_o, &pin_rows_o, &pin_codes_o, &cap_values, &lam, &pool_size, &want,
                                     &window, &cap, &bound, &exhausted))
        return NULL;
    if (pool_size < 1 || want < 0 || window < 1 || cap < 0 || cap_values < 0) {
        PyErr_SetString(PyExc_ValueError, "pool_size >= 1, want >= 0, window >= 1, cap >= 0 are needed");
        return NULL;
    }
    Py_buffer units = {0}, rows = {0}, adjusted = {0}, codes = {0}, pin_rows = {0}, pin_codes = {0};
    PyObject *result = NULL;
    int has_codes = codes_o != Py_None;
    if (get_buffer(units_o, &units, 2, 4, "f", "units", 0) < 0)
        return NULL;
    if (get_buffer(rows_o, &rows, 1, 8, "lq", "rows", 0) < 0)
        goto release;
    if (get_buffer(adjusted_o, &adjusted, 1, 8, "d", "adjusted", 0) < 0)
        goto release;
    if (has_codes && get_buffer(codes_o, &codes, 1, 4, "i", "codes", 0) < 0)
        goto release;
    if (get_buffer(pin_rows_o, &pin_rows, 1, 8, "lq", "pin_rows", 0) < 0)
        goto release;
    if (get_buffer(pin_codes_o, &pin_codes, 1, 4, "i", "pin_codes", 0) < 0)
        goto release;
    Py_ssize_t n = rows.shape[0], items = units.shape[0];
    if (adjusted.shape[0] != n || (has_codes && codes.shape[0] != n) || pin_rows.shape[0] < want
        || pin_codes.shape[0] < want) {
        PyErr_SetString(PyExc_ValueError, "rows, adjusted and codes must be as long, the pins at least `want`");
        goto release;
    }
    const int64_t *row_data = rows.buf, *pin_data = pin_rows.buf;
    const int32_t *code_data = has_codes ? codes.buf : NULL, *pin_code_data = pin_codes.buf;
    for (Py_ssize_t i = 0; i < n; i++)
        if (row_data[i] < 0 || row_data[i] >= items) {
            PyErr_SetString(PyExc_IndexError, "a candidate row is outside the unit vectors");
            goto release;
        }
    for (Py_ssize_t i = 0; i < want; i++)
        if (pin_data[i] >= items || (pin_data[i] >= 0 && pin_code_data[i] >= cap_values && cap_values > 0)) {
            PyErr_SetString(PyExc_IndexError, "a pinned row or its code is out of range");
            goto release;
        }
    if (code_data != NULL && cap > 0)
        for (Py_ssize_t i = 0; i < n; i++)
            if (code_data[i] < 0 || code_data[i] >= cap_values) {
                PyErr_SetString(PyExc_IndexError, "a cap code is outside 0..cap_values - 1");
                goto release;
            }
    int64_t *out = PyMem_Malloc(sizeof(int64_t) * (size_t)(want ? want : 1));
    char *pinned = PyMem_Malloc((size_t)(want ? want : 1));
    if (out == NULL || pinned == NULL) {
        PyMem_Free(out);
        PyMem_Free(pinned);
        PyErr_NoMemory();
        goto release;
    }
    Job job = {units.buf, units.shape[1], row_data, adjusted.buf, code_data, n, pin_data, pin_code_data,
               lam, pool_size, want, window, cap, cap_values, bound, exhausted, out, pinned, 0, 1};
    int failed;
    Py_BEGIN_ALLOW_THREADS
    failed = run(&job);
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
    } else {
        PyObject *out_list = PyList_New(job.placed_count), *pinned_list = PyList_New(job.placed_count);
        if (out_list != NULL && pinned_list != NULL) {
            for (Py_ssize_t i = 0; i < job.placed_count; i++) {
                PyList_SET_ITEM(out_list, i, PyLong_FromLongLong(out[i]));
                PyList_SET_ITEM(pinned_list, i, PyBool_FromLong(pinned[i]));
            }
            result = Py_BuildValue("(NNO)", out_list, pinned_list, job.exact ? Py_True : Py_False);
        } else {
            Py_XDECREF(out_list);
            Py_XDECREF(pinned_list);
        }
    }
    PyMem_Free(out);
    PyMem_Free(pinned);
release:
    PyBuffer_Release(&units);
    if (rows.obj) PyBuffer_Release(&rows);
    if (adjusted.obj) PyBuffer_Release(&adjusted);
    if (codes.obj) PyBuffer_Release(&codes);
    if (pin_rows.obj) PyBuffer_Release(&pin_rows);
    if (pin_codes.obj) PyBuffer_Release(&pin_codes);
    return result;
}

static PyMethodDef methods[] = {
    {"pick", (PyCFunction)(void (*)(void))mmr_pick, METH_VARARGS | METH_KEYWORDS,
     "pick(units, rows, adjusted, codes, pin_rows, pin_codes, cap_values, lam, pool_size, want, window, cap, "
     "bound, exhausted) -> (out, pinned, exact): see reco_sidecar/ranking/mmr.py"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_mmr", "MMR's per-position loop (see mmr.py).", -1,
                                    methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC
PyInit__mmr(void)
{
    return PyModule_Create(&module);
}
