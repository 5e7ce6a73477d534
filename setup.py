"""Packaging: ``pip install .`` makes the modules available to Salt through the ``salt.loader``
entry point; the classic way (these dirs in file_roots, ``saltutil.sync_all``) needs no install."""
from setuptools import setup

setup(
    name="saltext-nfskit",
    version="0.1.0",
    description="Self-service NFS for SaltStack: exports (kernel nfsd, NFS-Ganesha), mounts, git-backed requests",
    python_requires=">=3.9",
    package_dir={
        "nfskit": "_utils/nfskit",
        "nfskit.backends": "_utils/nfskit/backends",
        "nfskit_salt": "packaging/nfskit_salt",
        "nfskit_salt.modules": "_modules",
        "nfskit_salt.states": "_states",
        "nfskit_salt.runners": "_runners",
    },
    packages=["nfskit", "nfskit.backends", "nfskit_salt", "nfskit_salt.modules", "nfskit_salt.states", "nfskit_salt.runners"],
    install_requires=["salt>=3006", "jeepney>=0.8"],
    extras_require={
        "tests": [line.strip() for line in open("requirements/tests.txt") if line.strip() and not line.startswith("#")],
    },
    entry_points={"salt.loader": ["nfskit = nfskit.saltloader:loader_dirs"]},
)
