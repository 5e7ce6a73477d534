"""
Self-service NFS pillar: a minion's mounts, exports and records from the storage data repo, fast.

The same data that git_pillar compiles from the data repo's ``pillar/`` (``nfs:client:mounts``,
``nfs:server:...``, ``nfs:selfservice:...``), but read from only the minion's own files: its host
file, its server file (with its exports) and the files of the hostgroups it matches. Hostgroup
membership is decided by Salt's compound matcher, for the few hostgroups whose mandatory grain term
the minion has (the repo's hostgroup index). At 10,000 hosts and 1,000 hostgroups git_pillar takes
seconds per minion; this takes milliseconds.

Master config (full reference: docs/nfs_runner.md):

.. code-block:: yaml

    ext_pillar:
      - nfs_selfservice: {}          # repo and branch from the nfs_selfservice runner config

    ext_pillar:
      - nfs_selfservice:
          repo: https://git.example.com/storage/nfs-data.git
          branch: main
          root: pillar               # default
          update_interval: 60        # default: git_pillar_update_interval
          env: prod                  # default: none (every pillarenv gets this data)

The repo is checked out through git_pillar's machinery (``salt.utils.gitfs.GitPillar``: its
provider, cache, credentials options and locks). ``salt-run nfs.update_pillar`` fetches at once.
"""
import functools
import logging

import salt.utils.dictupdate

try:
    from nfskit import pillar_source, selfservice_pillar

    HAS_NFSKIT = True
    IMPORT_ERROR = ""
except ImportError as exc:  # the library is synced from _utils or pip-installed
    HAS_NFSKIT = False
    IMPORT_ERROR = str(exc)

log = logging.getLogger(__name__)

__virtualname__ = "nfs_selfservice"


def __virtual__():
    if not HAS_NFSKIT:
        return (
            False,
            f"nfs_selfservice ext_pillar: the nfskit library cannot be imported ({IMPORT_ERROR}); "
            "run salt-run saltutil.sync_all (it ships in _utils) or pip install saltext-nfskit",
        )
    return __virtualname__


def ext_pillar(minion_id, pillar, **kwargs):  # pylint: disable=unused-argument
    """
    The self-service pillar of ``minion_id`` (see the module docs for the settings in ``kwargs``).
    """
    if not selfservice_pillar.valid_minion_id(minion_id):
        return {}  # before any git work: such an id has no files in the data repo
    if not pillar_source.serves(__opts__, kwargs):
        return {}  # this entry's data is for another pillarenv
    root = pillar_source.pillar_root(__opts__, kwargs)
    # A plain dict for the matchers: Salt 3008's OptsDict makes each compound match cost
    # milliseconds (its __len__ in the matchers' "if not opts").
    opts = dict(__opts__)
    opts["id"] = minion_id
    opts["grains"] = dict(__grains__)
    opts["pillar"] = pillar
    compound = pillar_source.compound_matcher(opts)

    def matches(target):
        return bool(compound(target, opts=opts, minion_id=minion_id))

    merge = functools.partial(
        salt.utils.dictupdate.merge,
        strategy=__opts__.get("pillar_source_merging_strategy", "smart"),
        renderer=__opts__.get("renderer", "yaml"),
        merge_lists=__opts__.get("pillar_merge_lists", False),
    )
    return selfservice_pillar.minion_pillar(root, minion_id, opts["grains"], matches, merge)
