"""README.md's Python quick start, run as written against a real broker
(CurveZMQ, keys found in ./var/sluice), so the README cannot drift."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_readme_python_example(secure_broker, tmp_path):
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- readme-python:begin.*?```python\n(.*?)```\n<!-- readme-python:end -->",
                      text, re.S)
    assert block, "README.md lost its readme-python markers"
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "sluice").symlink_to(secure_broker.dir)
    (tmp_path / "quickstart.py").write_text(block.group(1))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "adapters" / "python"))
    out = subprocess.run([sys.executable, "quickstart.py"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["stored at offset 0", "0 hello from Python"]
