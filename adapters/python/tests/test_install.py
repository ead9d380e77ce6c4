"""`pip install adapters/python` the way docs/python.md says, offline, with
Debian's packages only: a venv with the system site packages (for
python3-cffi) and pip building with Debian's setuptools. Then the
installed package loads libsluice and talks to a broker."""
import os
import shutil
import subprocess
from pathlib import Path

PKG = Path(__file__).resolve().parents[1]


def test_pip_install_into_a_venv_offline(tmp_path, broker):
    src = tmp_path / "src"
    # A copy: pip builds in place and would leave build/ in the tree.
    shutil.copytree(PKG, src, ignore=shutil.ignore_patterns(
        "tests", "build", "*.egg-info", "__pycache__"))
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PIP_NO_INDEX"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, env=env, capture_output=True)
    r = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-build-isolation",
                        "--no-index", str(src)], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    code = ("import sluice, sys; "
            f"c = sluice.Client(broker={broker.endpoint!r}, insecure_plaintext=True); "
            "print(sluice.__file__); print(c.publish_sync('inst.a', b'x')); c.close()")
    r = subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=tmp_path,
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    where, offset = r.stdout.split()
    assert where.startswith(str(venv)) and offset == "0"
