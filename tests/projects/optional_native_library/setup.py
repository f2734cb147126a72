from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class optional_build_ext(build_ext):
    """As PyYAML does: without libyaml's header the extension is skipped and the pure-Python
    code runs instead; the build succeeds either way."""

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            print(f"yamlver: {ext.name} not built ({exc}); the pure-Python code is used")


setup(
    ext_modules=[
        Extension("yamlver._libyaml", ["src/yamlver/_libyaml.c"], libraries=["yaml"])
    ],
    cmdclass={"build_ext": optional_build_ext},
)
