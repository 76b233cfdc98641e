"""What a user installs: the wheel carries every asset the tasks and the C MuJoCo worlds load,
it builds without setuptools' "would be ignored" warnings, and ``python -m postconv`` is the CLI.

The wheel is built from a copy of the tracked files, so the checkout gets no build/ folder."""

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSETS = "postconv/tasks/assets"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[zipfile.ZipFile, str]:
    src = tmp_path_factory.mktemp("src")
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, text=True
    ).stdout.split("\0")
    for name in filter(None, tracked):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(src),
            "--no-deps",
            "--no-build-isolation",
            "-v",
            "-w",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (path,) = out.glob("postconv-*.whl")
    return zipfile.ZipFile(path), build.stdout + build.stderr


def test_the_wheel_builds_without_packages_setuptools_would_ignore(wheel):
    _, log = wheel
    assert "would be ignored" not in log, re.findall(r"Package '[^']+' is absent[^\n]*", log)


def test_the_wheel_carries_the_usd_the_mjcf_and_every_mesh_the_mjcf_names(wheel):
    archive, _ = wheel
    names = set(archive.namelist())
    assert {f"{ASSETS}/g1/g1_29dof.usd", f"{ASSETS}/ground_plane.usda", f"{ASSETS}/g1/mjcf/g1.xml"} <= names
    meshes = re.findall(r'file="([^"]+)"', archive.read(f"{ASSETS}/g1/mjcf/g1.xml").decode())
    assert len(meshes) > 20
    missing = [m for m in meshes if f"{ASSETS}/g1/mjcf/assets/{m}" not in names]
    assert not missing, f"meshes g1.xml loads that the wheel lacks: {missing}"


def test_python_dash_m_postconv_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "postconv", "--version"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    from postconv import __version__

    assert __version__ in done.stdout


def test_the_wheel_carries_every_module_of_the_source_folders(wheel):
    archive, _ = wheel
    names = set(archive.namelist())
    folders = {"extension": "postconv", "selection": "postconv/selection", "tasks": "postconv/tasks",
               "sim2sim": "postconv/sim2sim", "cputrain": "postconv/cputrain", "study": "postconv/study"}  # fmt: skip
    tracked = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    missing = []
    for path in tracked.stdout.split():
        folder, _, rest = path.partition("/")
        if folder in folders and "assets/" not in rest and f"{folders[folder]}/{rest}" not in names:
            missing.append(path)
    assert not missing, f"modules the wheel lacks (add their packages to pyproject.toml): {missing}"
