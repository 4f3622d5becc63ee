"""The CPU description the benchmarks print beside their numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.triage.classifier.precision import cpu_flags, cpu_summary

SAPPHIRE = (
    "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\n"
    "flags\t\t: fpu avx512f avx512_bf16 avx512_vnni amx_bf16 amx_int8 amx_tile\n"
)
ZEN4 = (
    "processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu avx512f avx512_bf16 avx512_vnni\n"
)
AVX2 = "processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 fma\n"


@pytest.mark.parametrize(
    ("cpuinfo", "expected"),
    [
        (SAPPHIRE, "Intel(R) Xeon(R) Processor; bf16: AMX; int8: AMX"),
        (ZEN4, "AMD EPYC 9R14; bf16: AVX512-BF16; int8: AVX512-VNNI"),
        (AVX2, "Some CPU; bf16: none; int8: none"),
    ],
)
def test_the_summary_names_the_cpu_and_its_matrix_units(
    tmp_path: Path, cpuinfo: str, expected: str
) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    assert cpu_summary(path) == expected


def test_an_unreadable_cpuinfo_says_so_rather_than_failing(tmp_path: Path) -> None:
    assert cpu_summary(tmp_path / "absent") == "unknown CPU; bf16: none; int8: none"
    assert cpu_flags(tmp_path / "absent") == frozenset()
