from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class optional_build_ext(build_ext):
    """As speedup modules often do: when the extension does not compile, the pure-Python code
    runs instead, and the build succeeds."""

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            print(f"quickcount: {ext.name} not built ({exc}); the pure-Python code is used")


setup(
    ext_modules=[Extension("quickcount._speedups", ["src/quickcount/_speedups.c"])],
    cmdclass={"build_ext": optional_build_ext},
)
