"""`pip install .` makes the modules reachable through the salt.loader entry point alone."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.functional]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(REPO)],
        check=True,
        capture_output=True,
    )
    return target


def test_wheel_carries_library_and_loader_dirs(installed):
    assert (installed / "nfskit" / "model.py").is_file()
    assert (installed / "nfskit" / "backends" / "base.py").is_file()
    assert (installed / "nfskit_salt" / "modules" / "nfs_server.py").is_file()
    assert (installed / "nfskit_salt" / "states" / "nfs_server.py").is_file()


def test_salt_call_finds_module_through_entry_point(installed, tmp_path):
    root = tmp_path / "root"
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "minion").write_text(
        f"id: packaging-test\nroot_dir: {root}\nfile_client: local\nfile_roots: {{base: [{tmp_path / 'srv'}]}}\n"
    )
    exports = tmp_path / "exports"
    exports.write_text("/srv/www -sync,rw server @trusted @external(ro)   # comment\n")
    env = dict(os.environ, PYTHONPATH=str(installed))
    salt_call = Path(sys.executable).with_name("salt-call")
    proc = subprocess.run(
        [str(salt_call), "--local", "--config-dir", str(conf), "--out=json", "nfs_server.list_exports", f"exports={exports}", "exports_d=False"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["local"] == {
        "/srv/www": [
            {"hosts": "server", "options": ["sync", "rw"]},
            {"hosts": "@trusted", "options": ["sync", "rw"]},
            {"hosts": "@external", "options": ["sync", "ro"]},
        ]
    }
