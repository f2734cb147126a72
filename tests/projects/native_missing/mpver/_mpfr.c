#define PY_SSIZE_T_CLEAN
#include <Python.h>

extern const char *mpfr_get_version(void);

static PyObject *version(PyObject *self, PyObject *args) {
    return PyUnicode_FromString(mpfr_get_version());
}

static PyMethodDef methods[] = {{"version", version, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_mpfr", NULL, -1, methods};

PyMODINIT_FUNC PyInit__mpfr(void) { return PyModule_Create(&module); }
