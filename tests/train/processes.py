"""Helper of the two-process trainer tests."""


def one_and_two_processes(args: list[str], tmp_path):
    """Run ``mro <args>`` in one process (``--out tmp/one``) and under a two-process ``accelerate
    launch`` (``--out tmp/two``); return the two run folders."""
    import subprocess
    import sys

    from tests.eval.test_accelerate import accelerate_launch, clean_env

    env = clean_env(tmp_path)
    for name, launcher in (("one", [sys.executable]), ("two", accelerate_launch())):
        done = subprocess.run([*launcher, "-m", "mro", *args, "--out", str(tmp_path / name)],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    return tmp_path / "one", tmp_path / "two"
