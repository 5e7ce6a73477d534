"""The git store: a private work clone of the data repo that applies queued changes and pushes.

How a burst of requests becomes few commits and pushes without losing one (flat combining):

1. :meth:`GitStore.submit` writes each change as a JSON file into ``<workdir>/queue/`` and then
   waits for the clone's lock (``fcntl.flock`` on ``<workdir>/lock``).
2. Whoever holds the lock drains the whole queue: it brings the clone to the last known remote
   state (a reset, unless the previous drain provably left it there; this also recovers a dirty
   clone), applies every queued change in turn, commits each run of consecutive changes by one
   requester as one commit (that requester as author, a message with each change's what, why
   and request id; one ``git fast-import`` writes them all), and pushes once.
3. A rejected push means the remote moved: fetch, ``reset --hard`` to it, apply the same changes
   again at the data level (each one re-checked against the new state) and push again, at most
   ``push_retries`` times.
4. The results go to ``<workdir>/done/<id>.json``; a waiting submitter sees its result there and
   returns without taking the lock or touching git.

So N concurrent requests cost one push per lock hand-over instead of N, a requester's burst is
one commit, every commit has its requester as author, and nothing is committed that was not
re-validated on the tree it lands on.

A missing or broken clone (no ``.git``, failing ``rev-parse``) is removed and cloned again.
Credentials in the repo URL (``https://user:token@host/...``) never reach a log line, an exception
or a return value: everything git prints passes :func:`redact` first.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import random
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

from nfskit.errors import InvalidInput, NfsKitError, StoreError

log = logging.getLogger(__name__)

_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")
MAX_BATCH = 500
STALE_RESULT_S = 3600
BOOTSTRAP_README = """# Storage data repo (nfs self-service)

Written by the Salt runner `nfs` (salt-run nfs.*): desired NFS exports and mounts, one small file
each. `pillar/` is read by Salt's git_pillar, `hiera/` by Puppet (treydock/puppet-nfs keys),
`index/` is the runner's own bookkeeping. Change it through the runner; see docs/nfs_runner.md.
"""

Apply = Callable[[str, Mapping[str, Any]], Any]  # (clone root, change) -> Outcome with .tree, .message(change), .result
OnStep = Callable[[Mapping[str, Any], str, Mapping[str, Any]], None]


def redact(text: str) -> str:
    """Hide the user:password part of every URL in ``text``."""
    return _CREDENTIALS.sub("***@", text)


def error_info(exc: BaseException) -> dict[str, Any]:
    """An exception as plain data for a result: type, message and, for bad input, field and problem."""
    if isinstance(exc, NfsKitError):
        public = next(c for c in type(exc).__mro__ if c.__module__ == NfsKitError.__module__)
        kind = re.sub(r"(?<!^)(?=[A-Z])", "_", public.__name__).lower()
    else:
        kind = "internal_error"
    info: dict[str, Any] = {"type": kind, "message": redact(str(exc))}
    if isinstance(exc, InvalidInput):
        info.update(field=exc.field, problem=exc.problem)
    return info


def _ident(name: str, email: str) -> str:
    """``Name <email>`` for fast-import: git allows no ``<``, ``>`` or newline in either part."""

    def clean(text: str) -> str:
        return "".join(c for c in str(text) if c not in "<>\n\r\0").strip()

    return f"{clean(name) or 'unknown'} <{clean(email)}>"


def _quote(path: str) -> str:
    """A path as a fast-import C-style quoted string (any byte of a path stays itself)."""
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _data(stream: bytearray, payload: bytes) -> None:
    stream += b"data %d\n" % len(payload) + payload + b"\n"


Commit = tuple[list[tuple[str, Optional[str]]], str, tuple[str, str]]  # (edits, message, author)


def _by_requester(commits: list[tuple[Mapping[str, Any], Commit]]) -> list[tuple[list[Mapping[str, Any]], Commit]]:
    """Join each run of consecutive changes by one requester (``(change, commit)`` in drain
    order) into one commit: ``(changes, commit)``.

    A burst from one requester (a bulk call, a pipeline's parallel requests) becomes one commit,
    and every commit still has its requester as author. Only neighbours join: each change's edits
    were made on the state its predecessor left, so a commit holds the state after its last change.
    The message keeps every change's own message (what, why, ``Request-Id``) below one subject.
    """
    runs: list[tuple[list[Mapping[str, Any]], dict[str, Optional[str]], list[str], tuple[str, str]]] = []
    for change, (edits, message, author) in commits:
        if not runs or runs[-1][3] != author:
            runs.append(([], {}, [], author))
        changes, paths, messages, _ = runs[-1]
        changes.append(change)
        paths.update(edits)  # a later change's text of a path replaces an earlier one's
        messages.append(message)
    return [
        (changes, (list(paths.items()), messages[0] if len(messages) == 1 else f"nfs: {len(messages)} changes by {author[0]}\n\n" + "\n".join(messages), author))
        for changes, paths, messages, author in runs
    ]


class _RemoteRefused(StoreError):
    """The remote would not take the push; the work clone itself is fine."""


class GitStore:
    """One work clone of ``url`` (branch ``branch``) in ``workdir``.

    ``apply`` turns a queued change into an outcome on the clone (see :mod:`nfskit.changes`);
    ``committer`` is ``(name, email)`` of the service; ``author`` maps a change to ``(name, email)``.
    """

    def __init__(
        self,
        url: str,
        workdir: os.PathLike | str,
        apply: Apply,
        author: Callable[[Mapping[str, Any]], tuple[str, str]],
        branch: str = "main",
        committer: tuple[str, str] = ("nfs self-service", "nfs-selfservice@localhost"),
        push_retries: int = 10,
        lock_timeout: float = 120.0,
        git_timeout: float = 120.0,
        trust_clean_s: float = 300.0,
    ):
        self.url = url
        self.branch = branch
        self.workdir = Path(workdir)
        self.clone_dir = self.workdir / "clone"
        self.apply = apply
        self.author = author
        self.committer = committer
        self.push_retries = push_retries
        self.lock_timeout = lock_timeout
        self.git_timeout = git_timeout
        self.trust_clean_s = trust_clean_s
        self._tip = ""  # the commit the worktree is at, kept while the lock is held
        self.queue_dir = self.workdir / "queue"
        self.done_dir = self.workdir / "done"

    # -- public --------------------------------------------------------------------------------

    def submit(self, changes: Sequence[Mapping[str, Any]], on_step: Optional[OnStep] = None) -> list[dict[str, Any]]:
        """Queue ``changes`` and return one result per change, in order, once they are pushed or failed.

        A result is ``{"id", "ok", "commit", "pushed", "result"}`` or ``{"id", "ok": False, "error"}``.
        """
        for directory in (self.queue_dir, self.done_dir):
            directory.mkdir(parents=True, exist_ok=True)
        for change in changes:
            self._enqueue(change)
        ids = [c["id"] for c in changes]
        # Usually another submitter's drain takes our changes while we wait: then the results are
        # there and we return without queueing for the lock behind the others only to read them.
        with self._lock(fcntl.LOCK_EX, unless=lambda: self._all_done(ids)) as locked:
            if locked and not self._all_done(ids):
                self._drain(on_step)
            return [self._take_result(i) for i in ids]

    @contextlib.contextmanager
    def reading(self) -> Iterator[Path]:
        """The clone's tree for reading, under a shared lock (writers wait); cloned on first use."""
        if not self._clone_ok():
            with self._lock(fcntl.LOCK_EX):
                self._ensure_clone()
        with self._lock(fcntl.LOCK_SH):
            yield self.clone_dir

    def refresh(self) -> None:
        """Fetch and move the clone to the remote's tip (for reads that must see others' pushes)."""
        with self._lock(fcntl.LOCK_EX):
            self._ensure_clone()
            self._fetch_reset()

    # -- queue ---------------------------------------------------------------------------------

    def _enqueue(self, change: Mapping[str, Any]) -> None:
        name = f"{time.time_ns():020d}-{change['id']}.json"
        tmp = self.queue_dir / f".{name}.{uuid.uuid4().hex}"
        tmp.write_text(json.dumps(change, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.queue_dir / name)

    def _queued(self) -> list[tuple[Path, dict[str, Any]]]:
        items = []
        for name in sorted(os.listdir(self.queue_dir))[:MAX_BATCH]:
            if name.startswith("."):
                continue
            path = self.queue_dir / name
            try:
                items.append((path, json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError) as exc:  # a torn file cannot come from _enqueue; drop it loudly
                log.error("nfs store: dropping unreadable queue entry %s: %s", name, exc)
                path.unlink(missing_ok=True)
        return items

    def _all_done(self, ids: Sequence[str]) -> bool:
        return all((self.done_dir / f"{i}.json").exists() for i in ids)

    def _take_result(self, change_id: str) -> dict[str, Any]:
        path = self.done_dir / f"{change_id}.json"
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            # Only when the queue held more than MAX_BATCH changes ahead of this one.
            return {"id": change_id, "ok": False, "error": {"type": "store_error", "message": "the change is still queued; check nfs.status later"}}
        path.unlink()
        return result

    def _finish(self, items: list[tuple[Path, dict[str, Any]]], results: Mapping[str, dict[str, Any]]) -> None:
        for path, change in items:
            result = results[change["id"]]
            tmp = self.done_dir / f".{change['id']}.{uuid.uuid4().hex}"
            tmp.write_text(json.dumps(result, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.done_dir / f"{change['id']}.json")
            path.unlink(missing_ok=True)
        cutoff = time.time() - STALE_RESULT_S
        for name in os.listdir(self.done_dir):  # results whose submitter died before reading them
            path = self.done_dir / name
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()

    # -- the drain -----------------------------------------------------------------------------

    def _drain(self, on_step: Optional[OnStep]) -> None:
        items = self._queued()
        if not items:
            return
        changes = [change for _, change in items]
        try:
            trusted = self._prepare_clone()
            try:
                results = self._commit_and_push(changes, on_step)
            except _RemoteRefused:
                raise
            except StoreError as exc:
                if not trusted:
                    raise
                # the fast path trusted a clone that turned out damaged (e.g. its index): once more from a reset
                log.warning("nfs store: work clone failed (%s); resetting it and trying again", exc)
                self._prepare_clone(full=True)
                results = self._commit_and_push(changes, on_step)
            self._mark_clean()
        except StoreError as exc:
            results = {c["id"]: {"id": c["id"], "ok": False, "error": error_info(exc)} for c in changes}
            with contextlib.suppress(StoreError):
                self._reset(f"origin/{self.branch}")
                self._mark_clean()
        for change in changes:
            if not results[change["id"]]["ok"] and on_step:
                on_step(change, "failed", results[change["id"]]["error"])
        self._finish(items, results)

    def _prepare_clone(self, full: bool = False) -> bool:
        """Make the worktree exactly the last known remote state, cheaply when it provably is.

        A full ``reset --hard`` + ``clean`` stats every file (~0.1 s with 24,000 files), so it is
        skipped when the previous drain ended cleanly at the current tip: it leaves a marker with
        that commit, which is removed before any edit and so missing after a crash. A marker older
        than ``trust_clean_s`` is not trusted either, which bounds how long a hand edit in the work
        clone can survive. Returns whether the marker was trusted (no reset done).
        """
        self._ensure_clone()
        marker = self.workdir / "clean"
        trusted = None
        with contextlib.suppress(FileNotFoundError):
            if time.time() - marker.stat().st_mtime < self.trust_clean_s:
                trusted = marker.read_text(encoding="utf-8").strip()
        marker.unlink(missing_ok=True)
        if trusted and not full:
            heads = self._git("rev-parse", "HEAD", f"origin/{self.branch}", check=False).stdout.split()
            if heads == [trusted, trusted]:
                self._tip = trusted
                return True
        try:
            self._reset(f"origin/{self.branch}")
        except StoreError as exc:  # e.g. a corrupt index or object: start from a fresh clone
            log.warning("nfs store: cannot reset the work clone (%s); cloning again", exc)
            self._ensure_clone(force=True)
            self._reset(f"origin/{self.branch}")
        return False

    def _mark_clean(self) -> None:
        marker = self.workdir / "clean"
        tmp = self.workdir / f".clean.{uuid.uuid4().hex}"
        tmp.write_text(self._tip, encoding="utf-8")
        os.replace(tmp, marker)

    def _commit_and_push(self, changes: list[dict[str, Any]], on_step: Optional[OnStep]) -> dict[str, dict[str, Any]]:
        suspect_reset = False
        attempt = 0
        while True:
            results: dict[str, dict[str, Any]] = {}
            commits = []
            for change in changes:
                try:
                    outcome = self.apply(str(self.clone_dir), change)
                except NfsKitError as exc:
                    results[change["id"]] = {"id": change["id"], "ok": False, "error": error_info(exc)}
                    continue
                except Exception as exc:  # pylint: disable=broad-except
                    # Unreadable data (a damaged file in the clone): start again once from the remote
                    # state; if the remote itself holds it, only this change fails.
                    if not suspect_reset:
                        log.warning("nfs store: change %s failed on the work clone (%s); resetting it", change["id"], exc)
                        suspect_reset = True
                        self._reset(f"origin/{self.branch}")
                        break
                    log.exception("nfs store: change %s cannot be applied", change["id"])
                    results[change["id"]] = {"id": change["id"], "ok": False, "error": error_info(exc)}
                    continue
                # written now, so that the next change of this drain sees it; committed all at once below
                edits = [(rel, outcome.tree.pending[rel]) for rel in outcome.tree.write()]
                results[change["id"]] = {"id": change["id"], "ok": True, "commit": None, "pushed": not edits, "result": outcome.result}
                if edits:
                    commits.append((change, (edits, outcome.message(change), self.author(change))))
            else:
                if not commits:
                    return results
                grouped = _by_requester(commits)
                committed = [change for group, _ in grouped for change in group]
                for (group, _), sha in zip(grouped, self._commit([commit for _, commit in grouped])):
                    for change in group:
                        results[change["id"]]["commit"] = sha
                if self._push():
                    for change in committed:
                        results[change["id"]]["pushed"] = True
                    if on_step:
                        for change in committed:
                            on_step(change, "committed", {"commit": results[change["id"]]["commit"]})
                            on_step(change, "pushed", {"commit": results[change["id"]]["commit"], "branch": self.branch})
                    self._git("gc", "--auto", "--quiet", check=False)
                    return results
                attempt += 1
                if attempt > self.push_retries:
                    break
                log.info("nfs store: push rejected (attempt %d of %d); re-applying on the remote state", attempt, self.push_retries + 1)
                # Random, growing back-off: clones that keep racing each other (several masters) spread out.
                time.sleep(random.uniform(0, min(2.0, 0.05 * 2**attempt)))
                self._fetch_reset()
        raise _RemoteRefused(f"the push to {redact(self.url)} was rejected {self.push_retries + 1} times; nothing was applied")

    def _commit(self, commits: list[Commit]) -> list[str]:
        """Make each commit (``([(path, text or None)], message, author)``), in order, on top of the
        tip; returns the commit ids.

        One ``git fast-import`` for the whole drain instead of four processes per commit
        (``update-index``, ``write-tree``, ``commit-tree``, ``update-ref``): it builds each tree
        from its parent's and the changed paths only, chains the commits and moves the branch.
        Then one ``update-index`` of the paths they touched keeps the index at the new tip (the
        files are already in the worktree). Objects stay loose below ``fastimport.unpackLimit``
        (100), as from ``commit-tree``, so ``gc --auto`` sees them as before.
        """
        when = f"{int(time.time())} +0000"
        stream = bytearray()
        for n, (edits, message, author) in enumerate(commits, 1):
            stream += f"commit refs/heads/{self.branch}\nmark :{n}\n".encode()
            stream += f"author {_ident(*author)} {when}\ncommitter {_ident(*self.committer)} {when}\n".encode()
            _data(stream, message.encode("utf-8"))
            stream += f"from {self._tip if n == 1 else f':{n - 1}'}\n".encode()
            for rel, text in edits:
                if text is None:
                    stream += f"D {_quote(rel)}\n".encode()
                else:
                    stream += f"M 100644 inline {_quote(rel)}\n".encode()
                    _data(stream, text.encode("utf-8"))
            stream += b"\n"
        stream += "".join(f"get-mark :{n}\n" for n in range(1, len(commits) + 1)).encode() + b"done\n"
        shas = self._git("fast-import", "--quiet", "--done", stdin=bytes(stream)).split()
        if len(shas) != len(commits):
            raise StoreError(f"git fast-import made {len(shas)} commits of {len(commits)}")
        touched = sorted({rel for edits, _, _ in commits for rel, _ in edits})
        self._git("update-index", "--add", "--remove", "-z", "--stdin", stdin="\0".join(touched) + "\0")
        self._tip = shas[-1]
        return shas

    def _push(self) -> bool:
        """True when pushed; False when the remote refused because it moved on. Other failures raise."""
        proc = self._git("push", "--porcelain", "origin", f"HEAD:refs/heads/{self.branch}", check=False)
        if proc.returncode == 0:
            return True
        output = proc.stdout + proc.stderr
        # The remote moved on (or another push held its ref lock): worth a fetch and a retry.
        if any(marker in output for marker in ("[rejected]", "non-fast-forward", "fetch first", "cannot lock ref", "failed to update ref")):
            return False
        raise _RemoteRefused(f"git push to {redact(self.url)} failed: {redact(output.strip())[-2000:]}")

    # -- the clone -----------------------------------------------------------------------------

    def _clone_ok(self) -> bool:
        if not (self.clone_dir / ".git").is_dir():
            return False
        proc = self._git("rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{self.branch}", check=False)
        return proc.returncode == 0

    def _ensure_clone(self, force: bool = False) -> None:
        """A clone whose ``origin/<branch>`` is known; a missing, broken or half-made one is made again.

        A clone made here is at ``origin/<branch>`` with a clean worktree.

        ``init`` + ``fetch`` rather than ``clone`` so that an empty remote can be bootstrapped.
        """
        if not force and self._clone_ok():
            return
        if self.clone_dir.exists():
            log.warning("nfs store: work clone %s is broken or incomplete; cloning again", self.clone_dir)
            shutil.rmtree(self.clone_dir)
        self.clone_dir.mkdir(parents=True)
        self._git("init", "--quiet")
        self._git("config", "gc.autoDetach", "false")  # gc finishes under our lock, never beside a commit
        # A data repo has tens of thousands of files: a split index rewrites only the changed entries.
        self._git("config", "core.splitIndex", "true")
        self._git("config", "index.version", "4")
        self._git("remote", "add", "origin", self.url)
        proc = self._git("fetch", "--quiet", "--no-tags", "origin", self._refspec(), check=False)
        if proc.returncode != 0:
            output = redact(proc.stderr.strip())
            if "couldn't find remote ref" not in output:
                raise StoreError(f"git fetch from {redact(self.url)} failed: {output[-2000:]}")
            self._bootstrap()
            return
        self._git("checkout", "--quiet", "-B", self.branch, f"origin/{self.branch}")

    def _bootstrap(self) -> None:
        """First use of an empty remote branch: push a commit that explains the repo."""
        self._git("symbolic-ref", "HEAD", f"refs/heads/{self.branch}")
        (self.clone_dir / "README.md").write_text(BOOTSTRAP_README, encoding="utf-8")
        self._git("add", "README.md")
        env = {
            "GIT_AUTHOR_NAME": self.committer[0],
            "GIT_AUTHOR_EMAIL": self.committer[1],
            "GIT_COMMITTER_NAME": self.committer[0],
            "GIT_COMMITTER_EMAIL": self.committer[1],
        }
        self._git("commit", "--quiet", "--no-verify", "-m", "nfs: start the storage data repo", env=env)
        if not self._push():  # someone else bootstrapped first: use theirs
            self._fetch_reset()
            self._git("checkout", "--quiet", "-B", self.branch, f"origin/{self.branch}")

    def _refspec(self) -> str:
        return f"+refs/heads/{self.branch}:refs/remotes/origin/{self.branch}"

    def _fetch_reset(self) -> None:
        self._git("fetch", "--quiet", "--no-tags", "origin", self._refspec())
        self._reset(f"origin/{self.branch}")

    def _reset(self, ref: str) -> None:
        """Make the worktree exactly ``ref``: drops unpushed commits, edits and stray files."""
        self._git("reset", "--quiet", "--hard", ref)
        self._git("clean", "-qfdx")
        self._tip = self._git("rev-parse", "HEAD").strip()

    # -- running git ---------------------------------------------------------------------------

    def _git(self, *args: str, check: bool = True, env: Optional[Mapping[str, str]] = None, stdin: Optional[str | bytes] = None) -> Any:
        proc = self._run(["git", *args], cwd=self.clone_dir, check=check, env=env, stdin=stdin)
        return proc.stdout if check else proc

    def _run(self, argv: list[str], cwd: Path, check: bool = True, env: Optional[Mapping[str, str]] = None, stdin: Optional[str | bytes] = None):
        full_env = dict(os.environ, GIT_TERMINAL_PROMPT="0", LC_ALL="C", **(env or {}))
        binary = isinstance(stdin, bytes)  # file contents go in as bytes, exactly
        try:
            proc = subprocess.run(argv, cwd=cwd, env=full_env, input=stdin, capture_output=True, text=not binary, timeout=self.git_timeout)
        except subprocess.TimeoutExpired:
            raise StoreError(f"git {argv[1]} did not finish within {self.git_timeout:.0f} s") from None
        except OSError as exc:
            raise StoreError(f"cannot run git: {exc.strerror}") from None
        if binary:
            proc.stdout, proc.stderr = proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")
        if check and proc.returncode != 0:
            message = redact((proc.stderr or proc.stdout).strip())
            raise StoreError(f"git {argv[1]} failed: {message[-2000:]}")
        return proc

    @contextlib.contextmanager
    def _lock(self, mode: int, unless: Optional[Callable[[], bool]] = None) -> Iterator[bool]:
        """Hold the clone's lock; yields True. With ``unless``, stop waiting (yield False, no lock)
        as soon as it returns True."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.workdir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + self.lock_timeout
            pause = 0.002
            while True:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                if unless is not None and unless():
                    yield False
                    return
                if time.monotonic() > deadline:
                    raise StoreError(f"timed out after {self.lock_timeout:.0f} s waiting for the data repo lock") from None
                # tens of waiters polling every few ms cost CPU the drain needs; a wait of up to 20 ms is a
                # small part of a drain (~0.1-1 s)
                time.sleep(pause)
                pause = min(pause * 2, 0.02)
            yield True
        finally:
            os.close(fd)
