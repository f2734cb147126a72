"""The Debian development packages a project's native code needs to compile, from its build files.

Optional C extensions (speedups written in C or Cython) fall back to pure Python when a header is
missing, and the build succeeds anyway: the libraries they link must be in the builder before the
wheel is built. Read without running anything:

    setup.py / pyproject [tool.setuptools] ext-modules   Extension(..., libraries=[...])
    setup.py                                              pkg-config names, find_library("x")
    meson.build                                           dependency('x') (pkg-config names)
    the project's own name, its requirements              well-known sdists (psycopg2 -> libpq-dev)

Each need is a group of alternatives (`libfoo-dev|foo-dev`): the first one the builder's apt
metadata knows is installed, at build time (`install_script`). A library name with no entry in the
table tries `lib<name>-dev` then `<name>-dev`. The runtime libraries the built modules link are
found after the build (`runtime_packages_script`: `ldd`, then `dpkg -S`) and installed in the
runtime image, so the table never has to know them.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

# Debian package names (policy 5.6.7), and a bound on what one project may ask for.
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]{1,62}$")
MAX_NEEDS = 16
# Libraries the C library, the compiler or Python itself provide: nothing to install.
_BUILTIN_LIBRARIES = frozenset(
    {"c", "m", "dl", "rt", "pthread", "util", "stdc++", "gcc", "gcc_s", "crypt", "resolv"}
)
# Linker names (`libraries=["xml2"]`, `-lxml2`, find_library("xml2")) whose Debian package is not
# lib<name>-dev.
_LIBRARIES = {
    "z": "zlib1g-dev",
    "ssl": "libssl-dev",
    "crypto": "libssl-dev",
    "xslt": "libxslt1-dev",
    "exslt": "libxslt1-dev",
    "jpeg": "libjpeg-dev",
    "turbojpeg": "libturbojpeg0-dev",
    "curl": "libcurl4-openssl-dev",
    "ldap": "libldap-dev|libldap2-dev",
    "lber": "libldap-dev|libldap2-dev",
    "uuid": "uuid-dev",
    "ncurses": "libncurses-dev",
    "ncursesw": "libncurses-dev",
    "zmq": "libzmq3-dev",
    "pcre": "libpcre3-dev",
    "expat": "libexpat1-dev",
    "mysqlclient": "default-libmysqlclient-dev",
    "krb5": "libkrb5-dev",
    "gssapi_krb5": "libkrb5-dev",
    "cairo": "libcairo2-dev",
    "freetype": "libfreetype-dev|libfreetype6-dev",
    "usb-1.0": "libusb-1.0-0-dev",
    "portaudio": "portaudio19-dev",
    "odbc": "unixodbc-dev",
    "geos_c": "libgeos-dev",
    "uv": "libuv1-dev",
    "acl": "libacl1-dev",
    "attr": "libattr1-dev",
    "icuuc": "libicu-dev",
    "icui18n": "libicu-dev",
    "openjp2": "libopenjp2-7-dev",
    "cgraph": "libgraphviz-dev",
    "gvc": "libgraphviz-dev",
    "glib-2.0": "libglib2.0-dev",
    "db": "libdb-dev",
    "hdf5": "libhdf5-dev",
    "lzma": "liblzma-dev",
    "bz2": "libbz2-dev",
    "yaml": "libyaml-dev",
    "ffi": "libffi-dev",
    "pq": "libpq-dev",
    "xml2": "libxml2-dev",
    "gmp": "libgmp-dev",
    "mpfr": "libmpfr-dev",
    "mpc": "libmpc-dev",
}
# pkg-config module names whose package is not lib<name>-dev.
_PKG_CONFIG = {
    "libxml-2.0": "libxml2-dev",
    "libxslt": "libxslt1-dev",
    "libexslt": "libxslt1-dev",
    "yaml-0.1": "libyaml-dev",
    "libpq": "libpq-dev",
    "openssl": "libssl-dev",
    "libssl": "libssl-dev",
    "libcrypto": "libssl-dev",
    "libffi": "libffi-dev",
    "zlib": "zlib1g-dev",
    "mysqlclient": "default-libmysqlclient-dev",
    "libcurl": "libcurl4-openssl-dev",
    "glib-2.0": "libglib2.0-dev",
    "gobject-introspection-1.0": "libgirepository1.0-dev",
    "dbus-1": "libdbus-1-dev",
    "cairo": "libcairo2-dev",
    "xmlsec1": "libxmlsec1-dev",
    "libzmq": "libzmq3-dev",
    "krb5": "libkrb5-dev",
    "krb5-gssapi": "libkrb5-dev",
    "libsystemd": "libsystemd-dev",
    "hdf5": "libhdf5-dev",
    "libgvc": "libgraphviz-dev",
    "portaudio-2.0": "portaudio19-dev",
    "libusb-1.0": "libusb-1.0-0-dev",
}
# Well-known projects whose native code needs a library, by canonical name. The project's own
# name, and its requirements (an sdist dependency compiles in the builder too).
_PROJECTS = {
    "pyyaml": ("libyaml-dev",),
    "lxml": ("libxml2-dev", "libxslt1-dev"),
    "psycopg2": ("libpq-dev",),
    "mysqlclient": ("default-libmysqlclient-dev", "pkgconf|pkg-config"),
    "python-ldap": ("libldap-dev|libldap2-dev", "libsasl2-dev"),
    "pycurl": ("libcurl4-openssl-dev", "libssl-dev"),
    "gmpy2": ("libgmp-dev", "libmpfr-dev", "libmpc-dev"),
    "xmlsec": ("libxmlsec1-dev", "pkgconf|pkg-config"),
    "pygraphviz": ("libgraphviz-dev",),
    "dbus-python": ("libdbus-1-dev", "libglib2.0-dev", "pkgconf|pkg-config"),
    "pycairo": ("libcairo2-dev", "pkgconf|pkg-config"),
    "pygobject": ("libgirepository1.0-dev", "libcairo2-dev", "pkgconf|pkg-config"),
    "pyaudio": ("portaudio19-dev",),
    "python-snappy": ("libsnappy-dev",),
    "pyzmq": ("libzmq3-dev",),
    "gssapi": ("libkrb5-dev",),
    "pykerberos": ("libkrb5-dev",),
    "h5py": ("libhdf5-dev", "pkgconf|pkg-config"),
    "pillow": ("libjpeg-dev", "zlib1g-dev"),
    "cffi": ("libffi-dev",),
    "python-magic": ("libmagic1",),
}
_MESON_DEPENDENCY = re.compile(r"""\bdependency\(\s*['"]([A-Za-z0-9_.+-]+)['"]""")
_PKG_CONFIG_COMMAND = re.compile(r"\bpkg-?config\b[^'\"\n]*?\s([A-Za-z][A-Za-z0-9_.+-]*)\s*$")


@dataclass
class NativeNeeds:
    # Groups of alternatives, `a|b`: the first apt knows is installed.
    packages: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def add(self, group: str, why: str) -> None:
        if group in self.packages or len(self.packages) >= MAX_NEEDS:
            return
        if all(_PACKAGE.match(name) for name in group.split("|")):
            self.packages.append(group)
            self.reasons.append(f"system packages: {group.replace('|', ' or ')} ({why})")


def library_package(name: str) -> str | None:
    """The package group for a linker name (`yaml`, `:libmpfr.so.6`, `-lxml2`); None for the C
    library's own and names that cannot be a package."""
    name = name.strip().removeprefix("-l").removeprefix(":")
    name = re.sub(r"\.(so|a)(\.[0-9.]+)?$", "", name)
    if name.startswith("lib") and len(name) > 3 and name not in _LIBRARIES:
        name = name[3:]
    name = name.lower()
    if name in _BUILTIN_LIBRARIES or name.startswith("python"):
        return None
    if name in _LIBRARIES:
        return _LIBRARIES[name]
    if not re.fullmatch(r"[a-z0-9][a-z0-9+.-]*", name):
        return None
    base = re.sub(r"[-.]?[0-9.]+$", "", name) or name
    candidates = [f"lib{name}-dev", f"{name}-dev", f"lib{base}-dev"]
    return "|".join(dict.fromkeys(candidates))


def pkg_config_package(module: str) -> str | None:
    if module in _PKG_CONFIG:
        return _PKG_CONFIG[module]
    return library_package(re.sub(r"-[0-9.]+$", "", module))


def native_needs(
    root: Path,
    *,
    project_name: str | None,
    pyproject_tool: dict[str, Any],
    requirement_names: list[str],
    builds_native: bool,
) -> NativeNeeds:
    """What the project's native code needs installed in the builder, each with its reason."""
    needs = NativeNeeds()
    if builds_native and project_name is not None:
        for group in _PROJECTS.get(canonicalize_name(project_name), ()):
            needs.add(group, f"{project_name} links it")
    setup_py = root / "setup.py"
    if setup_py.is_file() and setup_py.stat().st_size < 1_000_000:
        _from_setup_py(setup_py.read_text(encoding="utf-8", errors="replace"), needs)
    setuptools = pyproject_tool.get("setuptools", {})
    modules = setuptools.get("ext-modules", []) if isinstance(setuptools, dict) else []
    for module in modules if isinstance(modules, list) else []:
        libraries = module.get("libraries", []) if isinstance(module, dict) else []
        for library in libraries if isinstance(libraries, list) else []:
            if isinstance(library, str) and (wanted := library_package(library)):
                needs.add(wanted, f"pyproject.toml ext-modules link library {library!r}")
    meson = root / "meson.build"
    if meson.is_file() and meson.stat().st_size < 1_000_000:
        for module in _MESON_DEPENDENCY.findall(
            meson.read_text(encoding="utf-8", errors="replace")
        ):
            if module.startswith("python") or module in ("threads", "openmp"):
                continue
            if dependency := pkg_config_package(module):
                needs.add("pkgconf|pkg-config", "meson.build finds dependencies with pkg-config")
                needs.add(dependency, f"meson.build dependency({module!r})")
    for name in requirement_names:
        for group in (
            _PROJECTS.get(canonicalize_name(name), ())
            if canonicalize_name(name) in _SDIST_ONLY
            else ()
        ):
            needs.add(group, f"the requirement {name} compiles against it")
    return needs


# Requirements that PyPI ships as source only (no Linux wheels): they compile in the builder.
_SDIST_ONLY = frozenset(
    {
        "psycopg2",
        "mysqlclient",
        "python-ldap",
        "pycurl",
        "xmlsec",
        "pygraphviz",
        "dbus-python",
        "pycairo",
        "pygobject",
        "pyaudio",
        "gssapi",
        "pykerberos",
    }
)


def _from_setup_py(text: str, needs: NativeNeeds) -> None:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return
    bindings: dict[str, ast.expr] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                bindings.setdefault(target.id, node.value)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            _from_call(node, bindings, needs)
        elif isinstance(node, ast.List | ast.Tuple):
            words = [e.value for e in node.elts if isinstance(e, ast.Constant)]
            if words and words[0] in ("pkg-config", "pkgconf"):
                for word in words[1:]:
                    if isinstance(word, str) and not word.startswith("-"):
                        _pkg_config(word, needs)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = _PKG_CONFIG_COMMAND.search(node.value)
            if match and "pkg" in node.value[:20]:
                _pkg_config(match.group(1), needs)


def _from_call(node: ast.Call, bindings: dict[str, ast.expr], needs: NativeNeeds) -> None:
    func = node.func
    called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    owner = (
        func.value.id
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
        else ""
    )
    if called in ("Extension", "Pybind11Extension", "CythonExtension"):
        for keyword in node.keywords:
            if keyword.arg == "libraries":
                for library in _strings(keyword.value, bindings):
                    if group := library_package(library):
                        needs.add(group, f"setup.py Extension links library {library!r}")
    elif called == "find_library":
        for library in _strings_of_args(node.args, bindings):
            if group := library_package(library):
                needs.add(group, f"setup.py find_library({library!r})")
    elif owner == "pkgconfig" and called in (
        "parse",
        "cflags",
        "libs",
        "exists",
        "configure_extension",
    ):
        for module in _strings_of_args(node.args, bindings):
            for word in module.split():
                _pkg_config(word, needs)


def _pkg_config(module: str, needs: NativeNeeds) -> None:
    if group := pkg_config_package(module):
        needs.add("pkgconf|pkg-config", "setup.py runs pkg-config")
        needs.add(group, f"setup.py asks pkg-config for {module!r}")


def _strings_of_args(args: list[ast.expr], bindings: dict[str, ast.expr]) -> list[str]:
    return [s for arg in args for s in _strings(arg, bindings)]


def _strings(node: ast.expr, bindings: dict[str, ast.expr], depth: int = 0) -> list[str]:
    """The string constants of a literal (a str, a list or tuple of them, a module-level name
    bound to one, `a + b` of those)."""
    if depth > 6:
        return []
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Name) and node.id in bindings:
        return _strings(bindings[node.id], bindings, depth + 1)
    if isinstance(node, ast.List | ast.Tuple):
        return [s for item in node.elts for s in _strings(item, bindings, depth + 1)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _strings(node.left, bindings, depth + 1) + _strings(node.right, bindings, depth + 1)
    return []


# apt trusts the CA bundle (a BuildKit secret) for https mirrors; the stock ones are http.
_APT_CA = (
    "ca=''; if [ -s /run/secrets/ca_bundle ]; then "
    "ca='-o Acquire::https::CAInfo=/run/secrets/ca_bundle'; fi; "
)


SYSTEM_RESULT = "/etc/imagebuilder-system-packages.txt"
# Where the runtime image keeps what its native libraries came from (read by the pipeline).
NATIVE_RECORD_DIR = "/usr/share/imagebuilder"


def install_script(groups: list[str]) -> str:
    """Shell: for each group, install the first alternative apt's metadata knows; record which
    (`installed <package>`), or that none exists (`none <group>`), in SYSTEM_RESULT and the log.
    Never fails the build itself: an extension that then does not compile fails it, or (an
    optional one) is reported not built."""
    quoted = " ".join(
        f"'{group}'" for group in groups if all(map(_PACKAGE.match, group.split("|")))
    )
    return (
        f"export DEBIAN_FRONTEND=noninteractive; out={SYSTEM_RESULT}; : > $out; "
        f"{_APT_CA}"
        "if apt-get $ca update -qq; then want=''; "
        f"for group in {quoted}; do found=''; "
        'for p in $(echo "$group" | tr "|" " "); do '
        'if apt-cache show "$p" 2>/dev/null | grep -q "^Package:"; then found=$p; break; fi; done; '
        'if [ -n "$found" ]; then want="$want $found"; echo "installed $found" >> $out; '
        'else echo "none $group" >> $out; fi; done; '
        'if [ -n "$want" ]; then '
        "apt-get $ca install -y -qq --no-install-recommends $want >/dev/null "
        '|| echo "failed apt-get install$want" >> $out; fi; '
        'else echo "failed apt-get update" >> $out; fi; '
        "rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin; "
        "sed 's/^/imagebuilder-system-packages: /' $out"
    )


# Writes /meta/runtime-packages.txt: the Debian packages owning the shared libraries that the
# compiled modules of the venv and of the built wheels link (what the runtime image needs).
RUNTIME_PACKAGES_SCRIPT = """\
import glob, os, re, shutil, subprocess, zipfile
objects = glob.glob('/opt/venv/lib/python3*/site-packages/**/*.so*', recursive=True)
for wheel in glob.glob('/wheels/*.whl'):
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if re.search(r'\\.so(\\.|$)', name):
                objects.append(archive.extract(name, '/tmp/native-check'))
libraries = set()
for path in objects:
    out = subprocess.run(['ldd', path], capture_output=True, text=True).stdout
    libraries |= set(re.findall(r'=> (/\\S+)', out))
packages = set()
for library in libraries:
    if library.startswith('/opt/venv/'):
        continue
    out = subprocess.run(['dpkg', '-S', '*/' + os.path.basename(library)],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        owners, sep, _ = line.partition(': ')
        if sep and not line.startswith('diversion'):
            packages |= {o.strip().split(':')[0] for o in owners.split(',')}
packages = sorted(p for p in packages if re.fullmatch(r'[a-z0-9][a-z0-9+.-]+', p)
                  and p != 'libc6' and not p.startswith('libpython'))
os.makedirs('/meta', exist_ok=True)
with open('/meta/runtime-packages.txt', 'w') as out:
    out.write(''.join(p + '\\n' for p in packages))
if os.path.exists('/etc/imagebuilder-system-packages.txt'):
    shutil.copy('/etc/imagebuilder-system-packages.txt', '/meta/system-packages.txt')
print('imagebuilder-runtime-packages', ' '.join(packages) or '-')
"""

# Shell for the runtime stage: installs the packages of /meta/runtime-packages.txt the base
# lacks (nothing, and no network, when it has them all).
RUNTIME_INSTALL = (
    f"mkdir -p {NATIVE_RECORD_DIR} && cp /meta/*.txt {NATIVE_RECORD_DIR}/; "
    "missing=''; for p in $(grep -E '^[a-z0-9][a-z0-9+.-]+$' /meta/runtime-packages.txt); do "
    'dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done; '
    'if [ -n "$missing" ]; then echo "imagebuilder-runtime-install$missing"; '
    "export DEBIAN_FRONTEND=noninteractive; "
    f"{_APT_CA}"
    "apt-get $ca update -qq && apt-get $ca install -y -qq --no-install-recommends $missing "
    ">/dev/null && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin; fi"
)
