"""The wheel carries the Lua scripts and the tracker, and an installed package finds them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from realtime_visitors.storage import scripts


def test_wheel_ships_lua_and_finds_it(tmp_path: Path, repo_root: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path / "dist"), str(repo_root)],
        check=True,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("realtime_visitors-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in scripts.NAMES:
        assert f"realtime_visitors/lua/{name}.lua" in names
    assert "realtime_visitors/web/script.js" in names  # served at /script.js
    # pyproject.toml declares MIT: the license's text goes with the code.
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names), names

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--target", str(target), str(wheel)],
        check=True,
    )  # fmt: skip
    found = subprocess.run(
        [sys.executable, "-c", f"from {scripts.__name__} import lua_dir; print(lua_dir())"],
        env={"PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(found) == target / "realtime_visitors" / "lua"
