/* Needs libyaml's header to compile and libyaml at run time. */
#include <Python.h>
#include <yaml.h>

static PyObject *backend(PyObject *self, PyObject *args) {
    return PyUnicode_FromFormat("libyaml %s", yaml_get_version_string());
}

static PyMethodDef methods[] = {
    {"backend", backend, METH_NOARGS, "The backend in use."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_libyaml", NULL, -1, methods};

PyMODINIT_FUNC PyInit__libyaml(void) { return PyModule_Create(&module); }
