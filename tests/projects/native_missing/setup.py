from setuptools import Extension, setup

# libmpfr comes with the compiler in the builder. Its own Dockerfile leaves it out of the final
# stage; the generated one would install it there (libmpfr6, found from what the module links).
setup(
    packages=["mpver"],
    ext_modules=[Extension("mpver._mpfr", ["mpver/_mpfr.c"], libraries=[":libmpfr.so.6"])],
)
