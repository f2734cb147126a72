from setuptools import setup

MINIMUM = "2.0"

setup(
    name="oldlib",
    version="1.2.3",
    packages=["oldlib"],
    python_requires=">=3.8",
    # Computed, as many real setup.py files do: only building the project tells.
    install_requires=[f"iniconfig>={MINIMUM}"],
)
