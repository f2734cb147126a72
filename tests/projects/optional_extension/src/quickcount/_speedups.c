/* Needs a header no Debian package provides: it never compiles, on purpose. */
#include <Python.h>
#include <imagebuilder_absent_library.h>
