"""The README's example runs, and CI runs the README's two commands."""
import doctest
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_readme_example_runs():
    readme = ROOT / "README.md"
    if not readme.exists():  # tests run against an installed wheel, without the source tree
        return
    result = doctest.testfile(str(readme), module_relative=False, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 5 and result.failed == 0


def test_ci_runs_the_readme_commands():
    readme, ci = ROOT / "README.md", ROOT / ".ci" / "run"
    if not (readme.exists() and ci.exists()):
        return
    commands = [line.strip() for line in readme.read_text().splitlines()[1:5] if line.startswith("    ")]
    assert len(commands) == 2
    assert "python -m fastsoftmax" in commands[0] and "pytest" in commands[1]
    for command in commands:
        assert command in ci.read_text()
