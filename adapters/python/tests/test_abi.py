"""The cffi declarations (ABI mode: nothing checks them at build time)
against adapters/sdk/sluice.h, compiled by the C compiler: every struct's
size and every field's offset, and every function's prototype (a
mismatch is a "conflicting types" error). Needs cc; meson's test run has
it."""
import os
import re
import shutil
import subprocess

import pytest

from sluice import _ffi
from sluice._ffi import ffi, lib

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
CC = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _cdef_functions() -> list[str]:
    """The function declarations of the cdef, as C statements."""
    src = _ffi.CDEF
    src = re.sub(r"typedef[^;]*?\{.*?\}[^;]*;", "", src, flags=re.S)
    stmts = [s.strip() for s in src.split(";")]
    return [s + ";" for s in stmts
            if "(" in s and not s.startswith("typedef") and not s.startswith("void free")]


def _compile_and_run(tmp_path, body: str, headers: str = "") -> str:
    c = tmp_path / "abi.c"
    c.write_text('#include <stddef.h>\n#include <stdio.h>\n#include "sluice.h"\n'
                 + headers + "\nint main(void) {\n" + body + "\nreturn 0;\n}\n")
    exe = tmp_path / "abi"
    r = subprocess.run([CC, "-std=c11", "-Werror", "-I", f"{ROOT}/adapters/sdk",
                        "-I", f"{ROOT}/proto", str(c), "-o", str(exe)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout


@pytest.mark.skipif(not CC, reason="no C compiler")
def test_struct_layouts_match_the_header(tmp_path):
    lines = []
    want = []
    for name in _ffi.CHECKED_STRUCTS:
        t = ffi.typeof(name)
        lines.append(f'printf("{name} %zu\\n", sizeof({name}));')
        want.append(f"{name} {ffi.sizeof(t)}")
        for field, _ in t.fields:
            lines.append(f'printf("{name}.{field} %zu\\n", offsetof({name}, {field}));')
            want.append(f"{name}.{field} {ffi.offsetof(t, field)}")
    got = _compile_and_run(tmp_path, "\n".join(lines)).split("\n")[:-1]
    assert got == want


@pytest.mark.skipif(not CC, reason="no C compiler")
def test_function_prototypes_match_the_header(tmp_path):
    decls = _cdef_functions()
    assert len(decls) > 40
    # Redeclaring a function with another type does not compile.
    _compile_and_run(tmp_path, "", "\n".join(decls))


def test_every_declared_function_is_exported():
    for d in _cdef_functions():
        name = re.search(r"(\w+)\s*\(", d).group(1)
        assert getattr(lib, name) is not None, name
