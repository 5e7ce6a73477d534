"""Where the ``nfs_selfservice`` ext_pillar finds the data repo: git_pillar's own checkout machinery.

The ext_pillar's settings (``ext_pillar: [{nfs_selfservice: {...}}]`` in the master config):

``repo``, ``branch``
    The data repo (a URL, or a local path) and its branch. Default: ``repo`` and ``branch`` of the
    ``nfs_selfservice`` runner config, so the pillar reads what the runner writes.
``root``
    The pillar directory inside the repo (default ``pillar``).
``update_interval``
    Fetch the remote when the last fetch is older than this many seconds (default: the master's
    ``git_pillar_update_interval``, 60). ``salt-run nfs.update_pillar`` fetches at once.
``path``
    Instead of ``repo``: a checkout that something else keeps up to date (its ``root`` is read).
``env``
    The pillar environment this data belongs to, as git_pillar's per-remote ``env``: a render
    for another ``pillarenv`` gets nothing from this entry (e.g. one entry per environment's
    data repo, each with its own ``repo`` and ``env``). Default: none, every environment gets it.
any other key
    A git_pillar per-remote option (``privkey``, ``pubkey``, ``user``, ``password``,
    ``ssl_verify``, ``refspecs``, ...); the global ``git_pillar_*`` options apply as for git_pillar.

``repo`` goes through :class:`salt.utils.gitfs.GitPillar`, the class behind git_pillar: the same
provider (``git_pillar_provider``), cache (``<cachedir>/git_pillar``), locks, credentials and
checkout of the fetched branch on each render. The master's maintenance loop fetches only
``git`` ext_pillars, so a render fetches itself once ``update_interval`` has passed (under
git_pillar's update lock; a render that finds it held skips the fetch).

Takes opts explicitly; it imports Salt but reads no loader dunders.
"""
from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from nfskit.errors import InvalidInput, StoreError
from nfskit.gitstore import redact

CONFIG_KEY = "nfs_selfservice"
DEFAULT_ROOT = "pillar"
_OWN = ("repo", "branch", "root", "path", "update_interval", "env")
_FETCH_MARK = "nfs_selfservice_fetched"
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_MATCHERS: dict[str, Callable[..., bool]] = {}

log = logging.getLogger(__name__)


def pillar_root(opts: Mapping[str, Any], config: Mapping[str, Any]) -> Path:
    """The pillar root to read for one render: a checked-out, recently fetched tree."""
    root = _root(config)
    if config.get("path"):
        path = Path(config["path"]) / root
        if not path.is_dir():  # serving nothing would look like a release of every mount
            raise StoreError(f"the data repo checkout has no {path}; check ext_pillar nfs_selfservice path and root")
        return path
    git_pillar = _git_pillar(opts, config)
    (remote,) = git_pillar.remotes
    interval = float(config.get("update_interval", opts.get("git_pillar_update_interval", 60)))
    if opts.get("__role") == "minion" or _stale(remote, interval):  # masterless: as git_pillar, every render
        _fetch(remote)
    current = _current_root(remote)
    if current is not None:
        return current
    git_pillar.checkout()
    dirs = [d for d in git_pillar.pillar_dirs if d not in git_pillar.pillar_linked_dirs]
    if not dirs:
        raise StoreError(f"no checkout of branch {_branch(opts, config)!r} of the data repo (see the master log for git_pillar errors)")
    return Path(dirs[0])


def serves(opts: Mapping[str, Any], config: Mapping[str, Any]) -> bool:
    """Whether this entry's data belongs in a render for ``opts``' ``pillarenv`` (see ``env``)."""
    env = config.get("env")
    if env is None:
        return True
    if not isinstance(env, str) or not env.strip():
        raise InvalidInput("ext_pillar.nfs_selfservice.env", env, "must be the name of a pillar environment, such as prod")
    pillarenv = opts.get("pillarenv")
    return not pillarenv or pillarenv == env


def compound_matcher(opts: Mapping[str, Any]) -> Callable[..., bool]:
    """Salt's compound matcher (``compound_match.match``), its loader built once per process.

    A loader costs milliseconds to build (two of them: compound_match builds one for the engines
    it calls), as much as the rest of a render. Sharing it between minions is safe because every
    call passes the minion's ``opts`` and ``minion_id``, which compound_match hands on to each
    engine (grain, glob, list, pillar, ...); the loader's own opts are never read.
    """
    if "compound" not in _MATCHERS:
        import salt.loader  # pylint: disable=import-outside-toplevel

        _MATCHERS["compound"] = salt.loader.matchers(dict(opts))["compound_match.match"]
    return _MATCHERS["compound"]


def update(opts: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """Fetch the data repo now; ``{remote id: True (new commits) | None (none) | False (failed)}``."""
    if config.get("path"):
        return {}
    (remote,) = _git_pillar(opts, config).remotes
    return {redact(str(remote.id)): _fetch(remote)}


def configs(opts: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The settings of every ``nfs_selfservice`` entry in the master's ``ext_pillar``."""
    found = []
    for entry in opts.get("ext_pillar") or []:
        if isinstance(entry, Mapping) and CONFIG_KEY in entry:
            config = entry[CONFIG_KEY]
            found.append(dict(config) if isinstance(config, Mapping) else {})
    return found


def _root(config: Mapping[str, Any]) -> str:
    root = str(config.get("root", DEFAULT_ROOT)).strip("/")
    if not root or ".." in root.split("/"):
        raise InvalidInput("ext_pillar.nfs_selfservice.root", config.get("root"), "must be a directory inside the data repo, such as pillar")
    return root


def _branch(opts: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    runner = opts.get(CONFIG_KEY) if isinstance(opts.get(CONFIG_KEY), Mapping) else {}
    return str(config.get("branch") or runner.get("branch") or "main")


def _git_pillar(opts: Mapping[str, Any], config: Mapping[str, Any]):
    import salt.pillar.git_pillar  # pylint: disable=import-outside-toplevel
    import salt.utils.gitfs  # pylint: disable=import-outside-toplevel

    runner = opts.get(CONFIG_KEY) if isinstance(opts.get(CONFIG_KEY), Mapping) else {}
    url = config.get("repo") or runner.get("repo")
    if not url or not isinstance(url, str):
        raise InvalidInput("ext_pillar.nfs_selfservice.repo", url, "is not set: give repo (or path), or set nfs_selfservice:repo for the runner")
    if url.startswith("/"):  # git takes a path, git_pillar only a URL
        url = Path(url).as_uri()
    per_remote = [{"root": _root(config)}] + [{k: v} for k, v in sorted(config.items()) if k not in _OWN]
    git_opts = dict(opts, pillar_roots={}, __git_pillar=True)
    try:
        return salt.utils.gitfs.GitPillar(
            git_opts,
            [{f"{_branch(opts, config)} {url}": per_remote}],
            per_remote_overrides=salt.pillar.git_pillar.PER_REMOTE_OVERRIDES,
            per_remote_only=salt.pillar.git_pillar.PER_REMOTE_ONLY,
            global_only=salt.pillar.git_pillar.GLOBAL_ONLY,
        )
    except (SystemExit, Exception) as exc:  # pylint: disable=broad-except  # GitPillar exits or raises on a bad configuration
        raise StoreError(f"git_pillar cannot use the data repo {redact(url)} ({type(exc).__name__}: {redact(str(exc))}); see the master log") from None


def _current_root(remote: Any) -> Optional[Path]:
    """The pillar root when the worktree is at the fetched tip already, else None (then: checkout()).

    The comparison git_pillar's checkout starts with, read from the ref files: GitPython answers
    it through ``git cat-file`` child processes, a third of a render's own time. Git moves HEAD
    after writing the worktree, so a HEAD at the tip means a complete worktree.
    """
    if os.path.exists(os.path.join(remote.get_salt_working_dir(), "fetch_request")):
        return None  # someone asked for a fetch; checkout() does it
    gitdir = Path(remote.get_cachedir()) / ".git"
    try:
        head = (gitdir / "HEAD").read_text(encoding="ascii").strip()
        target = _ref(gitdir, f"refs/remotes/origin/{remote.get_checkout_target()}")
    except (OSError, UnicodeError):
        return None
    if not _SHA.fullmatch(head) or head != target:
        return None
    root = remote.check_root()
    return Path(root) if root else None


def _ref(gitdir: Path, name: str) -> Optional[str]:
    try:
        return (gitdir / name).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    try:
        packed = (gitdir / "packed-refs").read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    for line in packed.splitlines():
        sha, _, ref = line.partition(" ")
        if ref == name:
            return sha
    return None


def _stale(remote: Any, interval: float) -> bool:
    try:
        return time.time() - os.stat(os.path.join(remote.get_salt_working_dir(), _FETCH_MARK)).st_mtime >= interval
    except FileNotFoundError:
        return True


def _fetch(remote: Any) -> Any:
    """Fetch and note when; a failed fetch is noted too, so an outage does not slow every render."""
    mark = Path(remote.get_salt_working_dir()) / _FETCH_MARK
    mark.parent.mkdir(parents=True, exist_ok=True)
    mark.touch()
    try:
        return remote.fetch()
    except Exception as exc:  # pylint: disable=broad-except  # providers raise their own types; the last checkout still serves
        log.error("nfs_selfservice: fetching the data repo %s failed: %s", redact(str(remote.id)), redact(str(exc)))
        return False
