"""The oldest Linux the Managed Flink zip must load on, and a check of shared objects against it.

The service installs nothing: every native extension in the zip's ``dep/`` is loaded by the
runtime's dynamic linker as it is. A shared object built against a newer glibc names the symbol
versions it was linked with (``powf@GLIBC_2.27``, ``statx@GLIBC_2.28``, …) in its ELF
``.gnu.version_r`` section, and ``ld.so`` refuses to load it ("version `GLIBC_2.28' not found")
on an older glibc. The floor is ``manylinux2014`` (PEP 599: glibc 2.17, x86_64): the platform
AWS' own Managed Flink Python samples install dependencies for (``pip install --platform
manylinux2014_x86_64 --only-binary=:all: --target dep/``) and the oldest one a current wheel can
target. :data:`MANYLINUX2014` holds its limits as auditwheel checks them: the newest version of
each versioned interface (glibc, libstdc++, its C++ ABI, libgcc_s, zlib) and the system
libraries a wheel may link without shipping them.

Pure Python (no pyelftools, no binutils): :func:`needs` reads ``DT_NEEDED`` from ``.dynamic`` and
the version needs from ``.gnu.version_r``; :func:`violations` compares them with a policy.

>>> parse_version("GLIBC_2.3.4"), parse_version("GLIBC_PRIVATE")
(('GLIBC', (2, 3, 4)), None)
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

SHT_DYNAMIC = 6
SHT_GNU_VERNEED = 0x6FFFFFFE
DT_NULL = 0
DT_NEEDED = 1
VERSION = re.compile(r"(?P<name>[A-Z]+)_(?P<number>\d+(?:\.\d+)*)")


@dataclass(frozen=True)
class Policy:
    """A platform tag's limits: newest version per interface, libraries allowed unshipped."""

    name: str
    newest: dict[str, tuple[int, ...]]
    system_libraries: frozenset[str]


#: manylinux2014 on x86_64 as auditwheel 6.8 checks it (its policy ``manylinux_2_17``, PEP 599's
#: list of libraries plus zlib, expat, libanl and libatomic, which every glibc system has).
MANYLINUX2014 = Policy(
    name="manylinux2014_x86_64 (glibc 2.17)",
    newest={
        "GLIBC": (2, 17),
        "GLIBCXX": (3, 4, 19),
        "CXXABI": (1, 3, 7),
        "GCC": (4, 8, 0),
        "ZLIB": (1, 2, 5, 2),
    },
    system_libraries=frozenset(
        {
            "libgcc_s.so.1", "libstdc++.so.6", "libm.so.6", "libdl.so.2", "librt.so.1",
            "libc.so.6", "libnsl.so.1", "libutil.so.1", "libpthread.so.0", "libresolv.so.2",
            "libX11.so.6", "libXext.so.6", "libXrender.so.1", "libICE.so.6", "libSM.so.6",
            "libGL.so.1", "libgobject-2.0.so.0", "libgthread-2.0.so.0", "libglib-2.0.so.0",
            "libanl.so.1", "libatomic.so.1", "libexpat.so.1", "libz.so.1",
            # the dynamic linker itself
            "ld-linux-x86-64.so.2",
        }
    ),
)


@dataclass(frozen=True)
class Needs:
    """What a shared object needs from the system it is loaded on."""

    libraries: tuple[str, ...]
    #: (library, version name), e.g. ("libc.so.6", "GLIBC_2.14"), in file order
    versions: tuple[tuple[str, str], ...] = field(default=())

    def newest(self, interface: str = "GLIBC") -> str | None:
        """The newest version of ``interface`` needed, e.g. ``GLIBC_2.14``; None if none."""
        found = [(parse_version(v), v) for _, v in self.versions]
        mine = [(p[1], v) for p, v in found if p is not None and p[0] == interface]
        return max(mine)[1] if mine else None


def parse_version(name: str) -> tuple[str, tuple[int, ...]] | None:
    """``"GLIBC_2.3.4"`` → ``("GLIBC", (2, 3, 4))``; None for unnumbered ones (GLIBC_PRIVATE)."""
    match = VERSION.fullmatch(name)
    if match is None:
        return None
    return match["name"], tuple(int(n) for n in match["number"].split("."))


def is_elf(path: Path) -> bool:
    """Whether ``path`` starts with ELF's magic number."""
    with path.open("rb") as handle:
        return handle.read(4) == b"\x7fELF"


def _string(data: bytes, offset: int) -> str:
    return data[offset : data.index(b"\0", offset)].decode("utf-8", "replace")


def needs(path: Path) -> Needs:
    """Read ``DT_NEEDED`` and the ``.gnu.version_r`` version needs of the ELF file ``path``.

    Raises ValueError if the file is not ELF or has no section headers (nothing can be checked).
    """
    data = path.read_bytes()
    if data[:4] != b"\x7fELF":
        raise ValueError(f"{path}: not an ELF file")
    wide = {1: False, 2: True}[data[4]]
    order = {1: "<", 2: ">"}[data[5]]
    if wide:
        shoff, = struct.unpack_from(order + "Q", data, 0x28)
        shentsize, shnum = struct.unpack_from(order + "HH", data, 0x3A)
        section = order + "IIQQQQIIQQ"
        dyn, dynsize = order + "qQ", 16
    else:
        shoff, = struct.unpack_from(order + "I", data, 0x20)
        shentsize, shnum = struct.unpack_from(order + "HH", data, 0x2E)
        section = order + "IIIIIIIIII"
        dyn, dynsize = order + "iI", 8
    if shoff == 0 or shnum == 0:
        raise ValueError(f"{path}: no section headers")
    # (type, offset, size, link, info) of each section
    sections = []
    for index in range(shnum):
        fields = struct.unpack_from(section, data, shoff + index * shentsize)
        sections.append((fields[1], fields[4], fields[5], fields[6], fields[7]))

    libraries: list[str] = []
    versions: list[tuple[str, str]] = []
    for kind, offset, size, link, info in sections:
        if kind == SHT_DYNAMIC:
            strings = data[sections[link][1] : sections[link][1] + sections[link][2]]
            for at in range(offset, offset + size, dynsize):
                tag, value = struct.unpack_from(dyn, data, at)
                if tag == DT_NULL:
                    break
                if tag == DT_NEEDED:
                    libraries.append(_string(strings, value))
        elif kind == SHT_GNU_VERNEED:
            strings = data[sections[link][1] : sections[link][1] + sections[link][2]]
            entry = offset
            for _ in range(info):
                _, count, file_name, aux, following = struct.unpack_from(
                    order + "HHIII", data, entry
                )
                library = _string(strings, file_name)
                at = entry + aux
                for _ in range(count):
                    _, _, _, name, step = struct.unpack_from(order + "IHHII", data, at)
                    versions.append((library, _string(strings, name)))
                    at += step
                entry += following
    return Needs(tuple(libraries), tuple(versions))


def violations(
    path: Path, shipped: Iterable[str] = (), policy: Policy = MANYLINUX2014
) -> list[str]:
    """Why ``path`` would not load on ``policy``'s oldest system; empty if it would.

    ``shipped``: file names of libraries that come with it (a wheel's ``<package>.libs/``), which
    it may link besides the policy's system libraries.
    """
    found = needs(path)
    problems = []
    allowed = policy.system_libraries | set(shipped)
    for library in found.libraries:
        if library not in allowed:
            problems.append(f"links {library}, which is neither a system library nor shipped")
    for library, version in found.versions:
        parsed = parse_version(version)
        if parsed is None:
            if version.startswith("GLIBC"):
                problems.append(f"needs {version} from {library}")
            continue
        interface, number = parsed
        newest = policy.newest.get(interface)
        if newest is not None and number > newest:
            problems.append(f"needs {version} from {library} (newest allowed: "
                            f"{interface}_{'.'.join(map(str, newest))})")
    return problems


def problems_under(root: Path, policy: Policy = MANYLINUX2014) -> dict[str, list[str]]:
    """``{relative path: problems}`` of the ELF files under ``root`` that would not load.

    The ELF files under ``root`` count as shipped with each other (a wheel's ``.libs/``).
    """
    elves = sorted(p for p in root.rglob("*") if p.is_file() and is_elf(p))
    shipped = {p.name for p in elves}
    found = {p.relative_to(root).as_posix(): violations(p, shipped, policy) for p in elves}
    return {name: problems for name, problems in found.items() if problems}
