"""The README's library example runs as printed (a stale example is a bug a reader hits first)."""

from __future__ import annotations

import re
import subprocess

from ipctest import NODE, PYTHON, ROOT, TIMEOUT, needs_node


def readme_python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@needs_node
def test_the_readme_library_example_prints_what_it_promises() -> None:
    assert NODE is not None
    example = next(block for block in readme_python_blocks() if "ipc.fork(" in block)
    proc = subprocess.run(
        [PYTHON, "-c", example],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 3,
    )
    assert proc.returncode == 0, proc.stderr
    assert "sum: 50005000" in proc.stdout
    assert "exit code: 0" in proc.stdout
    assert "closed 0 None" in proc.stdout
    assert "child.js — seed 001" in proc.stdout  # exec's buffered output
