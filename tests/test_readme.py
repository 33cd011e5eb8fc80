"""The README's example runs, and CI runs the README's two commands."""
import doctest
import pathlib
from importlib.metadata import PackageNotFoundError, metadata

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def readme_text():
    """The README beside tests/, else the one the installed package carries as its long description."""
    readme = ROOT / "README.md"
    if readme.exists():
        return readme.read_text(encoding="utf-8")
    try:
        text = metadata("fastsoftmax").get_payload()
    except PackageNotFoundError:
        text = None
    if not text:
        pytest.skip(f"no README: neither {readme} nor a long description in the installed metadata")
    return text


def test_readme_example_runs():
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(parser.get_doctest(readme_text(), {"__name__": "__main__"}, "README.md", None, 0))
    result = runner.summarize(verbose=False)
    assert result.attempted >= 5 and result.failed == 0, result


def test_ci_runs_the_readme_commands():
    readme, ci = ROOT / "README.md", ROOT / ".ci" / "run"
    if not (readme.exists() and ci.exists()):
        pytest.skip(f"needs {readme} and {ci} (a source checkout)")
    commands = [line.strip() for line in readme.read_text().splitlines()[1:5] if line.startswith("    ")]
    assert len(commands) == 2
    assert "python -m fastsoftmax" in commands[0] and "pytest" in commands[1]
    for command in commands:
        assert command in ci.read_text()
