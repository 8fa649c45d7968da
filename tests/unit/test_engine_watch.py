"""paude.enginewatch: a plugin whose engine is gone exits instead of living on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from paude import enginewatch, forkserver

PLUGIN = ("from paude import enginewatch; enginewatch.exit_with_engine(); "
          "print('ready', flush=True); import time; time.sleep(60)")
# An engine: starts the plugin with its stdout on a pipe, reads it, prints the plugin's pid.
ENGINE = ("import subprocess, sys, time; "
          "p = subprocess.Popen([sys.executable, '-c', sys.argv[1]], stdout=subprocess.PIPE); "
          "print(p.pid, flush=True); p.stdout.readline(); print('up', flush=True); "
          "time.sleep(60)")


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def run_engine(plugin: str) -> tuple[subprocess.Popen[str], int]:
    engine = subprocess.Popen([sys.executable, "-c", ENGINE, plugin], stdout=subprocess.PIPE,
                              text=True)
    assert engine.stdout is not None
    pid = int(engine.stdout.readline())
    assert engine.stdout.readline().strip() == "up"
    return engine, pid


def test_a_plugin_exits_when_its_engine_is_killed() -> None:
    engine, plugin = run_engine(PLUGIN)
    engine.send_signal(signal.SIGKILL)
    engine.wait()
    deadline = time.monotonic() + 5
    while not gone(plugin):
        assert time.monotonic() < deadline, "the plugin outlived its engine"
        time.sleep(0.05)


def test_a_plugin_lives_as_long_as_its_engine() -> None:
    # The control: with the engine alive the plugin keeps serving.
    engine, plugin = run_engine(PLUGIN)
    try:
        time.sleep(1.5)
        assert not gone(plugin)
    finally:
        os.kill(plugin, signal.SIGKILL)
        engine.kill()
        engine.wait()


def test_without_a_pipe_there_is_nothing_to_watch() -> None:
    # Run by hand (stdout a file or a terminal), the plugin never exits on its own.
    probe = subprocess.run([sys.executable, "-c",
                            "import sys; from paude import enginewatch; "
                            "enginewatch.exit_with_engine(); "
                            "sys.stderr.write(str(enginewatch._started.is_set()))"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           check=True)
    assert probe.stderr == "False"


def test_the_interpreter_script_runs_only_dynamic_providers_under_the_watch(
        tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nprintf '%s|' \"$@\"\n")
    fake.chmod(0o755)
    script = tmp_path / "launcher"
    script.write_text(enginewatch.interpreter_script(str(fake)))
    script.chmod(0o755)

    def args(*argv: str, served: str = "") -> str:
        env = {k: v for k, v in os.environ.items() if k != "PAUDE_FORKSERVER"}
        if served:
            env["PAUDE_FORKSERVER"] = served
        return subprocess.run([str(script), *argv], capture_output=True, text=True,
                              check=True, env=env).stdout

    assert args("-u", "-m", "pulumi.dynamic", "127.0.0.1:4000") == (
        "-u|-m|paude.enginewatch|-m|pulumi.dynamic|127.0.0.1:4000|")
    assert args("-m", "pip", "--version") == "-m|pip|--version|"
    # With a fork server, the same command line is handed to the shim (paude.forkserver).
    assert args("-u", "-m", "pulumi.dynamic", "127.0.0.1:4000", served="/run/x") == (
        f"-I|-S|{forkserver.SHIM}|{fake}|-u|-m|paude.enginewatch|-m|pulumi.dynamic|"
        "127.0.0.1:4000|")
    assert args("-m", "pip", "--version", served="/run/x") == "-m|pip|--version|"


def test_main_runs_the_module_with_its_arguments(tmp_path: Path) -> None:
    data = tmp_path / "data.json"
    data.write_text('{"b": 1, "a": [2]}')
    result = subprocess.run([sys.executable, "-m", "paude.enginewatch", "-m", "json.tool",
                             "--sort-keys", str(data)], capture_output=True, text=True,
                            check=True)
    assert json.loads(result.stdout) == {"a": [2], "b": 1}
    assert result.stdout.startswith('{\n    "a"')
    bad = subprocess.run([sys.executable, "-m", "paude.enginewatch", "json.tool"],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "usage" in bad.stderr


def test_one_script_per_interpreter(tmp_path: Path) -> None:
    path = enginewatch.interpreter(tmp_path)
    assert path == enginewatch.interpreter(tmp_path)
    assert path.parent == tmp_path / "plugins" and os.access(path, os.X_OK)
    assert f"exec {sys.executable} -u -m paude.enginewatch" in path.read_text()


def test_a_dynamic_provider_serves_more_than_four_requests_at_once(tmp_path: Path) -> None:
    """The SDK's provider server takes 4 workers; under the watch, the provider module gets
    PROVIDER_WORKERS. A module of that name stands in, reporting the pool it built."""
    fake = tmp_path / "pulumi_standin" / "dynamic.py"
    fake.parent.mkdir()
    (fake.parent / "__init__.py").write_text("")
    fake.write_text("from concurrent import futures\n"
                    "print(futures.ThreadPoolExecutor(max_workers=4)._max_workers)\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

    def workers(module: str) -> int:
        out = subprocess.run([sys.executable, "-m", "paude.enginewatch", "-m", module],
                             capture_output=True, text=True, env=env, check=True).stdout
        return int(out)

    # Keyed on the module name the engine asks for: other modules keep their pools.
    assert workers("pulumi_standin.dynamic") == 4
    code = ("import runpy, sys; from paude import enginewatch; "
            "enginewatch._wider_pool(); runpy.run_module('pulumi_standin.dynamic', "
            "run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout
    assert int(out) == enginewatch.PROVIDER_WORKERS


def test_the_sdk_provider_still_builds_its_pool_the_way_the_widening_expects() -> None:
    # If an SDK release makes the pool configurable (or builds it otherwise), this says so.
    import pulumi.dynamic

    source = (Path(pulumi.dynamic.__file__).parent / "__main__.py").read_text()
    assert "futures.ThreadPoolExecutor(max_workers=4)" in source
