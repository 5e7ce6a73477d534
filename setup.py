"""Packaging: ``pip install .`` makes the modules available to Salt through the ``salt.loader``
entry point; the classic way (these dirs in file_roots, ``saltutil.sync_all``) needs no install."""
from pathlib import Path

from setuptools import setup

# Salt loader dirs shipped as nfskit_salt.<kind>; a kind without a directory yet is left out
# (git keeps no empty dirs, so a clean clone has only the ones that hold modules).
LOADER_DIRS = {"modules": "_modules", "states": "_states", "runners": "_runners", "pillar": "_pillar"}
loader_packages = {f"nfskit_salt.{kind}": folder for kind, folder in LOADER_DIRS.items() if Path(folder).is_dir()}

setup(
    name="saltext-nfskit",
    version="0.1.0",
    description="Self-service NFS for SaltStack: exports (kernel nfsd, NFS-Ganesha), mounts, git-backed requests",
    python_requires=">=3.9",
    package_dir={
        "nfskit": "_utils/nfskit",
        "nfskit.backends": "_utils/nfskit/backends",
        "nfskit_salt": "packaging/nfskit_salt",
        **loader_packages,
    },
    packages=["nfskit", "nfskit.backends", "nfskit_salt", *loader_packages],
    install_requires=["salt>=3006", "jeepney>=0.8"],
    extras_require={
        "tests": [line.strip() for line in open("requirements/tests.txt") if line.strip() and not line.startswith("#")],
    },
    entry_points={"salt.loader": ["nfskit = nfskit.saltloader:loader_dirs"]},
)
