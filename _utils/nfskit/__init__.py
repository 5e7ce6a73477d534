"""nfskit: the plain-Python library behind the nfs_server/nfs_client Salt modules and the nfs runner.

No Salt dunders live here. Salt reaches this package by name: ``saltutil.sync_all`` copies it from
``_utils/`` and the loader puts the utils dirs on ``sys.path``; ``pip install`` installs it as a
normal package.
"""
__version__ = "0.1.0"
