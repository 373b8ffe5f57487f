"""Our CPU extensions load on every AVX2 CPU: no code that runs when a library loads (static initializers
and what they call) may use AVX-512, whatever CPU builds it and runs the suite.

The kernels carry AVX-512 bodies beside the AVX2 ones and choose at run time; but a constructor of a constant
in an AVX-512 namespace ran at load, compiled to zmm moves, and killed every process that loaded
`cpu_gguf_dot` on a Zen 3 with SIGILL (the whole engine, on a machine without AVX-512). A suite running on
an AVX-512 machine cannot see that by running the code, so this reads the machine code instead.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from vireo.kernels import cpu_extensions

EXTENSIONS = ("cpu_gguf_dot", "cpu_int8dot", "cpu_decode_ops", "cpu_paged_attention", "cpu_pool")
FUNCTION = re.compile(r"^[0-9a-f]+ <(?P<name>[^>]+)>:$")
# a call or tail jump to another function (not to an offset within one); a PLT stub's name is its target's
CALL = re.compile(r"\b(call|jmp)\s+[0-9a-f]+ <(?P<target>[^>@+]+)(@plt)?>")
# zmm registers, mask registers, the sixteen upper xmm/ymm registers, and EVEX-only mnemonics on any width
AVX512 = re.compile(
    r"%zmm|%k[0-7]\b|%[xy]mm(1[6-9]|2[0-9]|3[01])\b|\b(vmovdq[au](8|16|32|64)|vpternlog[dq]|vperm[it]2\w+"
    r"|vpdpbusds?|vpdpwssds?|vpermw|vpermb|vpmovm2\w+|vpmov[dq][bw])\b"
)


def functions(library: Path) -> dict[str, list[str]]:
    """Each function of the library's disassembly, by its (mangled) name: its instruction lines."""
    listing = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", str(library)], capture_output=True, text=True, check=True
    ).stdout
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in listing.splitlines():
        start = FUNCTION.match(line)
        if start:
            current = found.setdefault(start.group("name"), [])
        elif current is not None and line.strip():
            current.append(line)
    return found


def run_at_load(found: dict[str, list[str]]) -> set[str]:
    """The static initializers (`_GLOBAL__sub_I_*`) and every function of the library they call or jump to,
    through its PLT too (a constructor the library exports is called through its stub)."""
    todo = [name for name in found if name.startswith("_GLOBAL__sub_I")]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in found:
            continue
        seen.add(name)
        todo += [m.group("target") for line in found[name] for m in CALL.finditer(line)]
    return seen


def avx512_at_load(library: Path) -> list[str]:
    found = functions(library)
    loaded = sorted(run_at_load(found))
    return [f"{name}: {line.strip()}" for name in loaded for line in found[name] if AVX512.search(line)]


@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) is not installed")
@pytest.mark.parametrize("name", EXTENSIONS)
def test_nothing_that_runs_at_load_needs_avx512(name):
    module = cpu_extensions.load(name)
    if module is None:
        pytest.skip(f"{name} is not built here (no AVX2 or no compiler)")
    library = Path(module.__file__)
    assert run_at_load(functions(library)), "the reading found no static initializer: the check reads nothing"
    offending = avx512_at_load(library)
    assert not offending, f"{library.name} runs AVX-512 code when it loads:\n" + "\n".join(offending[:20])


def test_the_reading_sees_a_vectorized_avx512_constructor(tmp_path):
    """The check itself: a library whose constant is made at load by AVX-512 code is caught."""
    if shutil.which("objdump") is None or shutil.which("g++") is None:
        pytest.skip("objdump or g++ is not installed")
    source = tmp_path / "table.cpp"
    source.write_text(
        '#pragma GCC target("avx512f,avx512bw")\n'
        "struct Table { alignas(64) short v[256]; Table() { for (int i = 0; i < 256; ++i) v[i] = short(i / 8); } };\n"
        "Table table;\n"
        'extern "C" short at(int i) { return table.v[i]; }\n'
    )
    library = tmp_path / "table.so"
    subprocess.run(["g++", "-O3", "-shared", "-fPIC", str(source), "-o", str(library)], check=True)
    assert avx512_at_load(library)
