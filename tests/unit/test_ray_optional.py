"""Ray is an optional extra: the core never imports it, and fastsource.ray says what to install."""
import subprocess
import sys
import tempfile


def run(code: str) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter, outside the source tree (the installed package is imported)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=tempfile.gettempdir())


def test_import_fastsource_does_not_import_ray():
    done = run("import sys, fastsource, fastsource.source, fastsource.cli.main\n"
               "assert 'ray' not in sys.modules, 'fastsource imported ray'")
    assert done.returncode == 0, done.stderr


def test_fastsource_ray_without_ray_names_the_extra():
    done = run("import sys; sys.modules['ray'] = None\n"
               "try:\n    import fastsource.ray\nexcept ImportError as exc:\n    print(exc)\n")
    assert done.returncode == 0, done.stderr
    assert "pip install 'fastsource[ray]'" in done.stdout
