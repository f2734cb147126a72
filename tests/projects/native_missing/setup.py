from setuptools import Extension, setup

# libmpfr comes with the compiler in the builder; the slim runtime image does not have it.
setup(
    packages=["mpver"],
    ext_modules=[Extension("mpver._mpfr", ["mpver/_mpfr.c"], libraries=[":libmpfr.so.6"])],
)
