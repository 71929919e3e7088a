"""The `tejido` command stays cheap to start: what a command does not need, it does not import.

Each case runs the CLI in a fresh interpreter (a subprocess: `sys.modules` of the test
process already holds everything), then reports which modules got imported. No timing:
the guard is the module list, which does not depend on the machine's load.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

# Modules no light command may pull in: third-party heavyweights, and tejido's runtime,
# simulator (its scenario registry imports every protocol), store client and benchmarks.
HEAVY = (
    "asyncio",
    "grpc",
    "google.protobuf",
    "matplotlib",
    "numpy",
    "mpi4py",
    "msgspec",
    "uvloop",
    "cryptography",
    "tejido.bench",
    "tejido.sim",
    "tejido.sim.registry",
    "tejido.kv",
    "tejido.store",
    "tejido.recipes",
    "tejido.raft",
    "tejido.net",
    "tejido.rpc",
    "tejido.mvcc",
    "tejido.viz",
    "tejido.check",
)

_PROBE = """
import json, sys
sys.argv = ["tejido", *json.loads(sys.argv[1])]
from tejido.cli.main import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
sys.stdout.flush()
print("\\nMODULES " + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _run_cli(*args: str) -> tuple[str, int, set[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(list(args))],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "TERM": "dumb"},
    )
    assert proc.returncode == 0, proc.stderr
    output, _, report = proc.stdout.rpartition("\nMODULES ")
    record = json.loads(report)
    return output, record["code"], set(record["modules"])


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.mark.parametrize(
    "args",
    [
        ("version",),
        ("--help",),
        ("lock", "--help"),
        ("semaphore", "--help"),
        ("elect", "--help"),
        ("node", "--help"),
        ("node", "run", "--help"),
        ("sim", "--help"),
        ("bench", "--help"),
        ("kv", "put", "--help"),
    ],
    ids=" ".join,
)
def test_light_commands_import_nothing_heavy(args: tuple[str, ...]) -> None:
    output, code, modules = _run_cli(*args)
    assert code in (0, None), output
    assert "tejido.cli.main" in modules  # the probe really ran the CLI
    assert _heavy(modules) == []


@pytest.mark.parametrize(
    "args", [("version",), ("--help",), ("lock", "--help"), ("node", "--help")], ids=" ".join
)
def test_an_absent_help_flag_does_not_load_pydantic(args: tuple[str, ...]) -> None:
    # typer coerces values through pydantic adapters; the top-level group and `version`
    # read their absent --help as False, so these lines never need one
    _, code, modules = _run_cli(*args)
    assert code in (0, None)
    assert "typer" in modules
    assert "pydantic" not in modules


def test_version_prints_the_version() -> None:
    from tejido import __version__

    output, code, _ = _run_cli("version")
    assert code in (0, None)
    assert output.strip() == __version__


def test_help_still_lists_every_command_with_its_help() -> None:
    output, code, _ = _run_cli("--help")
    assert code in (0, None)
    for command in ("sim", "run", "viz", "mpirun", "check", "bench", "node", "rpc", "certs"):
        assert command in output
    for command in ("up", "status", "demo", "kv", "lease", "member", "leader"):
        assert command in output
    for command in ("lock", "semaphore", "elect", "version"):
        assert command in output
    assert "holding the lock NAME" in output  # lock's help text, from its docstring


def test_a_sim_command_does_load_the_simulator() -> None:
    # the counter-check: the probe does see imports when a command needs them
    output, code, modules = _run_cli("sim", "--list")
    assert code in (0, None), output
    assert "tejido.sim.registry" in modules
    assert "raft" in output.split()


def test_library_top_level_imports_stay_light() -> None:
    probe = (
        "import json, sys, tejido, tejido.core, tejido.core.errors;"
        "print(json.dumps(sorted(sys.modules)))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    modules = set(json.loads(proc.stdout))
    assert "tejido.core.errors" in modules
    assert _heavy(modules) == []
    assert "tejido.core.protocol" not in modules  # tejido.core's names load on first use


@pytest.mark.parametrize(
    "args",
    [
        ("lock", "--help"),
        ("node", "--help"),
        ("node", "start", "--help"),
        ("kv", "get", "--help"),
        ("lock",),
        ("sim", "--nodes", "x"),
    ],
    ids=" ".join,
)
def test_the_cut_down_app_says_what_the_whole_app_says(args: tuple[str, ...]) -> None:
    from typer.testing import CliRunner

    from tejido.cli.main import _only, app

    single = _only(args[0])
    assert single is not None
    runner = CliRunner()
    whole = runner.invoke(app, list(args), prog_name="tejido", terminal_width=100)
    cut = runner.invoke(single, list(args), prog_name="tejido", terminal_width=100)
    assert (cut.exit_code, cut.output) == (whole.exit_code, whole.output)
    assert whole.output  # help or an error message, not silence


def test_a_name_that_is_no_command_gets_the_whole_app() -> None:
    from tejido.cli.main import _only

    assert _only("nosuch") is None
    _, code, _ = _run_cli("nosuch")
    assert code == 2


def test_lazy_package_names_are_the_objects_their_modules_define() -> None:
    # A package whose names load on first use must still hand out the function, never a
    # same-named submodule (tejido.rpc.service is both), whatever was imported before.
    probe = """
import importlib, json, pkgutil, sys
wrong = []
for name in ("tejido.core", "tejido.rpc", "tejido.net", "tejido.mvcc", "tejido.raft"):
    package = importlib.import_module(name)
    for sub in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{name}.{sub.name}")
    for attr in package.__all__:
        value = getattr(package, attr)
        home = sys.modules.get(getattr(value, "__module__", "") or "")
        shadowed = home is not None and getattr(home, attr, value) is not value
        if type(value).__name__ == "module" or shadowed:
            wrong.append(f"{name}.{attr}")
print(json.dumps(wrong))
"""
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(proc.stdout) == []
