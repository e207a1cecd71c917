"""The grammar ships inside a built wheel and is found from there."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation",
                    "--outdir", str(out), str(ROOT)], check=True, capture_output=True)
    return next(out.glob("lossdsl-*.whl"))


def test_wheel_contains_the_grammar(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "lossdsl/language/grammar.lark" in names
    grammar = zipfile.ZipFile(wheel).read("lossdsl/language/grammar.lark").decode()
    assert grammar == (ROOT / "grammar" / "lossdsl.lark").read_text()


def test_installed_wheel_finds_its_grammar(wheel, tmp_path):
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import lossdsl, lossdsl.language.parse as p; "
            "assert lossdsl.__file__.startswith(sys.argv[1]), lossdsl.__file__; "
            "print(p.grammar_path()); print(lossdsl.parse_source('mean(y_pred^2)'))")
    # Run from an empty directory so the source checkout is not importable.
    out = subprocess.run([sys.executable, "-I", "-c", code, str(tmp_path / "site")],
                         capture_output=True, text=True, check=True, cwd=tmp_path)
    grammar_line, program_line = out.stdout.splitlines()
    assert grammar_line == str(tmp_path / "site" / "lossdsl" / "language" / "grammar.lark")
    assert program_line == "mean(y_pred^2)"


def test_wheel_version_is_lossdsl_version(wheel):
    """The version has one home, lossdsl/version.py; the wheel's metadata reads it from there."""
    from lossdsl.version import __version__

    assert wheel.name.startswith(f"lossdsl-{__version__}-")
    archive = zipfile.ZipFile(wheel)
    metadata = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
    assert f"\nVersion: {__version__}\n" in archive.read(metadata).decode()


def test_wheel_carries_the_packaged_grammar_byte_for_byte(wheel):
    grammar = zipfile.ZipFile(wheel).read("lossdsl/language/grammar.lark")
    assert grammar == (ROOT / "lossdsl" / "language" / "grammar.lark").read_bytes()
