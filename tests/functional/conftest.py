"""Salt loaders in-process (no daemons). Our modules arrive the classic way: the loader's
``saltutil.sync_all`` copies them from a file_roots tree that links to the repo's dirs."""
from pathlib import Path

import pytest
from saltfactories.utils.functional import Loaders

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="package")
def state_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("state-tree")
    for name in ("_modules", "_states", "_utils"):
        (root / name).symlink_to(REPO / name)
    (root / "nfs").symlink_to(REPO / "salt" / "nfs")
    return root


@pytest.fixture(scope="package")
def minion_opts(salt_factories, state_tree):
    factory = salt_factories.salt_minion_daemon(
        "functional-minion",
        overrides={"file_client": "local", "file_roots": {"base": [str(state_tree)]}},
    )
    return factory.config.copy()


def make_loaders(minion_opts, **config):
    """Loaders whose minion config carries ``config`` (e.g. nfs_server backend settings)."""
    opts = dict(minion_opts, **config)
    return Loaders(opts, loaded_base_name=f"nfskit.functional.{id(opts)}")
