"""Real salt-master, salt-minion and salt-api (pytest-salt-factories), loading our modules the
classic way: the repo's _modules/_states/_runners/_utils sit in file_roots and reach the minion
through ``saltutil.sync_all`` (the project is not installed in the venv)."""
import shutil
import time
from pathlib import Path

import pytest
from passlib.apache import HtpasswdFile
from pytestshellutils.utils import ports

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration]


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def state_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("state-tree")
    for name in ("_modules", "_states", "_runners", "_utils"):
        if (REPO / name).is_dir():  # a clean clone has no empty loader dirs
            shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "salt", root, dirs_exist_ok=True)
    return root


@pytest.fixture(scope="session")
def pillar_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("pillar-tree")
    (root / "top.sls").write_text("base:\n  '*':\n    - nfs\n")
    (root / "nfs.sls").write_text("nfs: {}\n")
    return root


@pytest.fixture(scope="session")
def api_port():
    return ports.get_unused_localhost_port()


@pytest.fixture(scope="session")
def htpasswd(tmp_path_factory):
    path = tmp_path_factory.mktemp("auth") / "htpasswd"
    table = HtpasswdFile(str(path), new=True)
    table.set_password("storage-admin", "s3cret-pass")
    table.save()
    return path


@pytest.fixture(scope="session")
def master(salt_factories, state_tree, pillar_tree, api_port, htpasswd):
    perms = [".*", "@runner", "@wheel", "@jobs"]
    overrides = {
        "file_roots": {"base": [str(state_tree)]},
        "pillar_roots": {"base": [str(pillar_tree)]},
        "rest_cherrypy": {"port": api_port, "host": "127.0.0.1", "disable_ssl": True},
        "netapi_enable_clients": ["local", "local_async", "runner", "runner_async", "wheel"],
        "external_auth": {"file": {"^filename": str(htpasswd), "^filetype": "htpasswd", "storage-admin": perms}},
    }
    factory = salt_factories.salt_master_daemon("nfskit-master", overrides=overrides)
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture(scope="session")
def salt_api(master):
    factory = master.salt_api_daemon()
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture(scope="session")
def api_url(salt_api, api_port):
    return f"http://127.0.0.1:{api_port}"


@pytest.fixture(scope="session")
def start_minion(master):
    """Factory: start a minion with ``config`` merged in and sync our modules to it the classic way."""
    started = []

    def start(minion_id, config):
        factory = _start_minion(master, minion_id, config)
        started.append(factory)
        return factory

    yield start
    for factory in started:
        factory.terminate()


def _start_minion(master, minion_id, config):
    factory = master.salt_minion_daemon(minion_id, overrides=dict({"multiprocessing": False}, **config))
    factory.start(start_timeout=120)
    started = time.monotonic()
    ret = master.salt_cli(timeout=120).run("saltutil.sync_all", minion_tgt=minion_id)
    assert ret.returncode == 0, ret
    synced = ret.data
    assert "modules.nfs_server" in synced["modules"], synced
    assert "states.nfs_server" in synced["states"], synced
    assert any(name.startswith("utils.nfskit") for name in synced["utils"]), synced
    print(f"minion {minion_id} synced in {time.monotonic() - started:.1f}s")
    return factory
