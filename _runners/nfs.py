"""
Self-service NFS: request exports and mounts; the desired state lands in the storage data repo.

Dev teams call these functions with ``salt-run`` or through salt-api (``client: runner``) with
eauth; the systems team sets the policy in the master config. Each request is validated (fields,
policy, quota, capacity, ownership), written to the data repo as pillar data (read by git_pillar)
and Puppet hiera data (treydock/puppet-nfs), committed with the requester as author and pushed.
Events ``salt/nfs/<request id>/<step>`` follow each request on the master event bus.

The requester is the authenticated user the master hands the runner (``__user__``: the eauth
user through salt-api, the OS user for ``salt-run``); no request field can change it.

Master config (full reference: docs/nfs_runner.md):

.. code-block:: yaml

    nfs_selfservice:
      repo: https://git.example.com/storage/nfs-data.git
      branch: main
      workdir: /var/cache/salt/master/nfs_selfservice   # default: <cachedir>/nfs_selfservice
      email_domain: example.com                         # commit author: <user>@<email_domain>
      servers:
        nfs1.example.com: {backend: kernel, capacity_gb: 10000, root: /srv/nfs}
      hostgroups:
        web-prod: 'G@role:web and G@env:prod'
      teams:
        team-a:
          members: [alice]
          quota_gb: 1000
          backends: [kernel]
          servers: [nfs1.example.com]
          client_networks: [10.1.0.0/16]
          hosts: ['*.team-a.example.com']
          hostgroups: [web-prod]

Every function returns a mapping with ``result`` (True/False), ``request_id`` (for
``nfs.status``) and either what was done or ``error``: ``{type, message}`` plus ``field`` and
``problem`` for bad input. Errors are returned, not raised, because salt-api turns a runner
exception into a traceback string; the job's ``success``/``retcode`` still say it failed.
"""
import logging
import os

import salt.utils.event
import salt.utils.user

try:
    from nfskit import changes, datarepo, pillar_source
    from nfskit.datarepo import Tree
    from nfskit.errors import InvalidInput, NfsKitError
    from nfskit.gitstore import GitStore, error_info
    from nfskit.policy import CONFIG_KEY, policy_from_config
    from nfskit.timeline import Timeline, check_request_id, new_request_id

    HAS_NFSKIT = True
    IMPORT_ERROR = ""
except ImportError as exc:  # the library is synced from _utils or pip-installed
    HAS_NFSKIT = False
    IMPORT_ERROR = str(exc)

log = logging.getLogger(__name__)

__virtualname__ = "nfs"
__func_alias__ = {"list_": "list"}  # the user-facing name is nfs.list; list_ keeps the builtin usable here

EVENT_PREFIX = "salt/nfs"
MAX_BULK = 500


def __virtual__():
    if not HAS_NFSKIT:
        return (
            False,
            f"nfs runner: the nfskit library cannot be imported ({IMPORT_ERROR}); "
            "run salt-run saltutil.sync_all (it ships in _utils) or pip install saltext-nfskit",
        )
    return __virtualname__


# ---------------------------------------------------------------------------------------------
# plumbing


def _config():
    config = __opts__.get(CONFIG_KEY)
    if not isinstance(config, dict) or not config.get("repo"):
        raise InvalidInput(CONFIG_KEY, None, "is not set up in the master config: at least repo (and branch) are needed")
    return config


def _workdir(config):
    return config.get("workdir") or os.path.join(__opts__["cachedir"], "nfs_selfservice")


def _requester():
    """The authenticated user: ``__user__`` as the master injects it, else the local OS user.

    ``__user__`` is absent only when the runner is called in-process without the master's
    client (e.g. from a test or a script using the loader); "UNKNOWN" is the master's value for a
    job without a user, which is nobody.
    """
    user = globals().get("__user__")
    if user is None:
        return salt.utils.user.get_user()
    if user == "UNKNOWN":
        return None
    return user


def _author(config):
    domain = config.get("email_domain", "nfs-selfservice.invalid")

    def author(change):
        # git refuses '<', '>' and newlines in identities; user names come from eauth
        name = "".join(c for c in str(change["user"]) if c not in "<>\n\r") or "unknown"
        return name, f"{name.replace(' ', '.')}@{domain}"

    return author


def _store(config, policy):
    committer = config.get("committer") or {}
    return GitStore(
        url=config["repo"],
        workdir=os.path.join(_workdir(config), "store"),
        apply=lambda root, change: changes.apply_change(root, policy, change),
        author=_author(config),
        branch=config.get("branch", "main"),
        committer=(committer.get("name", "nfs self-service"), committer.get("email", "nfs-selfservice@localhost")),
        push_retries=int(config.get("push_retries", 10)),
        lock_timeout=float(config.get("lock_timeout", 120)),
    )


def _timeline(config):
    return Timeline(os.path.join(_workdir(config), "requests"))


def _bus_up():
    if __opts__.get("ipc_mode") == "tcp":
        return True
    return os.path.exists(os.path.join(__opts__["sock_dir"], "master_event_pull.ipc"))


class _Steps:
    """Record a step in the timeline and fire it on the master event bus."""

    def __init__(self, config):
        self.timeline = _timeline(config)
        # Without a running master (salt-run on a host with the master stopped, tests) an event
        # would wait for a socket nobody listens on; the timeline still has every step.
        self.event = salt.utils.event.get_master_event(__opts__, __opts__["sock_dir"], listen=False) if _bus_up() else None

    def __call__(self, change, step, data):
        data = dict(data)
        if step == "validated":
            data.update(user=change["user"], team=change["team"], kind=change["kind"])
        self.timeline.record(change["id"], step, **data)
        if self.event is not None:
            payload = {"request_id": change["id"], "step": step, "kind": change["kind"], "user": change["user"], "team": change["team"], **data}
            if not self.event.fire_event(payload, f"{EVENT_PREFIX}/{change['id']}/{step}", timeout=500):
                log.warning("nfs runner: could not fire %s/%s/%s", EVENT_PREFIX, change["id"], step)

    def close(self):
        if self.event is not None:
            self.event.destroy()


def _fail(request_id, exc):
    __context__["retcode"] = 1
    return {"result": False, "request_id": request_id, "error": error_info(exc)}


def _fields(kwargs):
    # Salt adds __pub_* and other dunder keys to runner kwargs; they are the caller's words, never identity.
    return {k: v for k, v in kwargs.items() if not k.startswith("__")}


def _prepare(kind, fields, policy, request_id, user):
    """Edge validation and the static policy checks. Returns the change to queue."""
    team = policy.team_for(user, fields.get("team"))
    admin = policy.is_admin(user)
    request = changes.parse(kind, fields, admin)
    changes.check_static(policy, team, admin, kind, request)
    return {"id": request_id, "kind": kind, "user": user, "team": team.name, "fields": fields}


def _submit(kind, kwargs, refresh=False):
    request_id = new_request_id()
    try:
        config = _config()
        policy = policy_from_config(config)
        user = _requester()
        fields = _fields(kwargs)
        try:
            change = _prepare(kind, fields, policy, request_id, user)
        except InvalidInput as exc:
            _record_refusal(config, policy, user, fields, kind, request_id, exc)
            raise
        steps = _Steps(config)
        try:
            steps(change, "validated", {})
            store = _store(config, policy)
            if refresh:  # a change that may edit nothing must be judged on the remote's tip, not the clone's
                store.refresh()
            (outcome,) = store.submit([change], on_step=steps)
        finally:
            steps.close()
    except NfsKitError as exc:
        return _fail(request_id, exc)
    return _answer(change, outcome)


def _record_refusal(config, policy, user, fields, kind, request_id, exc):
    """A refused request of a known team still gets a timeline, so nfs.status can explain it."""
    try:
        team = policy.team_for(user, fields.get("team")).name
    except NfsKitError:
        return
    _timeline(config).record(request_id, "validated", user=user, team=team, kind=kind)
    _timeline(config).record(request_id, "failed", **error_info(exc))


def _answer(change, outcome):
    if not outcome["ok"]:
        __context__["retcode"] = 1
        return {"result": False, "request_id": change["id"], "error": outcome["error"]}
    answer = {"result": True, "request_id": change["id"], "kind": change["kind"], "team": change["team"], **outcome["result"]}
    answer["commit"] = outcome["commit"]
    answer["changed"] = outcome["commit"] is not None
    answer["comment"] = f"{change['kind']} request committed as {outcome['commit'][:12]} and pushed" if outcome["commit"] else "already in place; nothing to commit"
    return answer


# ---------------------------------------------------------------------------------------------
# the API


def request_export(**kwargs):
    """
    Request a new export for your team.

    name
        Export name: lower-case letters, digits and ``-``; unique within the team.

    backend
        ``kernel`` (Linux nfsd), ``ganesha`` (NFS-Ganesha) or ``efs`` (AWS EFS).

    server
        Minion id of the NFS server (kernel and ganesha). Must be one of the team's servers.

    size_gb
        Size in GB; counts against the team's quota and the server's capacity.

    clients
        Client rules, as for ``nfs_server.managed``: a list like
        ``[{hosts: 10.1.0.0/24, access: rw}, {hosts: '@backup', access: ro, squash: all}]``.
        Hosts must lie in the team's client networks; ``no_root_squash``, ``insecure`` and
        ``*`` with ``rw`` are for admin teams only.

    path
        Path on the server. Default: ``<server root>/<team>/<name>``; if given it must be below
        ``<server root>/<team>/``.

    owner, group, mode
        Owner, group and mode (e.g. ``'0770'``) of the exported directory.

    team
        The team to act for, when you are in several (admins: any team).

    reason
        Why; goes into the commit message.

    CLI Example:

    .. code-block:: bash

        salt-run nfs.request_export name=build-cache backend=kernel server=nfs1.example.com \\
            size_gb=200 clients='[{hosts: 10.1.0.0/24, access: rw}]' reason='CI cache for team A'
    """
    return _submit("export", kwargs)


def request_mount(**kwargs):
    """
    Request a mount of one of your team's exports on a host or a hostgroup.

    export
        Name of the team's export.

    host
        Minion id to mount on (one of the team's hosts), or

    hostgroup
        A hostgroup (named compound target from the master config) the team may use.

    mount_point
        Absolute path below one of the allowed mount roots (default ``/mnt``, ``/srv``, ``/data``).

    options
        NFS mount options, a list or a comma-separated string (``[hard, vers=4.2]``).
        ``suid`` and ``dev`` are for admin teams only.

    owner, group, mode
        Owner, group and mode of the mount point directory.

    team, reason
        As for ``request_export``.

    A mount point already used on that host or hostgroup is refused; a host can have any number
    of mounts.

    CLI Example:

    .. code-block:: bash

        salt-run nfs.request_mount export=build-cache host=ci01.team-a.example.com mount_point=/mnt/cache options='[hard, vers=4.2]'
        salt-run nfs.request_mount export=build-cache hostgroup=web-prod mount_point=/srv/cache
    """
    return _submit("mount", kwargs)


def release_mount(**kwargs):
    """
    Remove one of your team's mounts from a host or a hostgroup.

    host / hostgroup
        Where the mount is.

    mount_point
        The mount point to release.

    team, reason
        As for ``request_export``.

    CLI Example:

    .. code-block:: bash

        salt-run nfs.release_mount host=ci01.team-a.example.com mount_point=/mnt/cache
    """
    return _submit("release", kwargs)


def delete_export(**kwargs):
    """
    Delete one of your team's exports. Refused while it is still mounted anywhere.

    name
        The export's name.

    team, reason
        As for ``request_export``.

    CLI Example:

    .. code-block:: bash

        salt-run nfs.delete_export name=build-cache reason='project ended'
    """
    return _submit("delete", kwargs)


def reindex(**kwargs):
    """
    Regenerate the data repo's pillar top file and hostgroup index from the configured hostgroups.

    Every write does this too; this is for a change of the ``hostgroups`` config with no request
    to carry it, and for a repo written before the hostgroup index existed (the
    ``nfs_selfservice`` ext_pillar refuses to serve hostgroup data without it). Admin teams only;
    nothing is committed when both files are already current.

    team, reason
        As for ``request_export``.

    CLI Example:

    .. code-block:: bash

        salt-run nfs.reindex reason='hostgroup web-prod now targets G@role:web and G@env:prod'
    """
    return _submit("reindex", kwargs, refresh=True)


def request_bulk(requests=None, **kwargs):
    """
    Submit many requests in one call: one validation pass, one commit and one push for all.

    The way past salt-api's fixed cost per call. Each request gets its own request id and result
    (and its own block, with its request id, in the commit message); one bad request does not
    stop the others.

    requests
        A list of mappings, each with ``kind`` (``export``, ``mount``, ``release``, ``delete``)
        and the fields of that kind's function.

    CLI Example:

    .. code-block:: bash

        salt-run nfs.request_bulk requests='[{kind: mount, export: build-cache, host: ci01.team-a.example.com, mount_point: /mnt/cache},
                                            {kind: mount, export: build-cache, host: ci02.team-a.example.com, mount_point: /mnt/cache}]'
    """
    try:
        if _fields(kwargs):
            name = sorted(_fields(kwargs))[0]
            raise InvalidInput(name, kwargs[name], "is not a known field; request_bulk takes only requests")
        if not isinstance(requests, (list, tuple)) or not requests:
            raise InvalidInput("requests", requests, "must be a non-empty list of requests, each with a kind")
        if len(requests) > MAX_BULK:
            raise InvalidInput("requests", f"<{len(requests)} requests>", f"has more than {MAX_BULK} requests")
        config = _config()
        policy = policy_from_config(config)
        user = _requester()
    except NfsKitError as exc:
        return _fail(None, exc)
    answers = [None] * len(requests)
    queued = []
    for index, request in enumerate(requests):
        request_id = new_request_id()
        try:
            if not isinstance(request, dict) or request.get("kind") not in changes.KINDS:
                raise InvalidInput(f"requests[{index}].kind", request.get("kind") if isinstance(request, dict) else request, "must be one of " + ", ".join(changes.KINDS))
            fields = {k: v for k, v in request.items() if k != "kind"}
            try:
                queued.append((index, _prepare(request["kind"], fields, policy, request_id, user)))
            except InvalidInput as exc:
                _record_refusal(config, policy, user, fields, request["kind"], request_id, exc)
                raise InvalidInput(f"requests[{index}].{exc.field}", exc.value, exc.problem) from None
        except NfsKitError as exc:
            answers[index] = {"result": False, "request_id": request_id, "error": error_info(exc)}
    if queued:
        steps = _Steps(config)
        try:
            for _, change in queued:
                steps(change, "validated", {})
            outcomes = _store(config, policy).submit([change for _, change in queued], on_step=steps)
        except NfsKitError as exc:
            outcomes = [{"ok": False, "error": error_info(exc)}] * len(queued)
        finally:
            steps.close()
        for (index, change), outcome in zip(queued, outcomes):
            answers[index] = _answer(change, outcome)
    failed = sum(1 for a in answers if not a["result"])
    if failed:
        __context__["retcode"] = 1
    return {"result": failed == 0, "requests": answers, "comment": f"{len(answers) - failed} of {len(answers)} requests done"}


def list_(team=None, **kwargs):
    """
    List your team's exports and where each is mounted.

    team
        The team, when you are in several (admins: any team).

    CLI Example:

    .. code-block:: bash

        salt-run nfs.list
    """
    try:
        if _fields(kwargs):
            name = sorted(_fields(kwargs))[0]
            raise InvalidInput(name, kwargs[name], "is not a known field; nfs.list takes only team")
        config = _config()
        policy = policy_from_config(config)
        owner = policy.team_for(_requester(), team)
        store = _store(config, policy)
        with store.reading() as root:
            tree = Tree(root)
            exports = {}
            for record in datarepo.team_exports(tree, owner.name):
                exports[record["name"]] = {
                    "backend": record["backend"],
                    "server": record.get("server"),
                    "path": record["path"],
                    "size_gb": record["size_gb"],
                    "device": policy.device(record),
                    "mounts": datarepo.export_uses(tree, owner.name, record["name"]),
                }
    except NfsKitError as exc:
        return _fail(None, exc)
    used = sum(e["size_gb"] for e in exports.values())
    return {"result": True, "request_id": None, "team": owner.name, "quota_gb": owner.quota_gb, "used_gb": used, "exports": exports}


def status(request_id=None, team=None, **kwargs):
    """
    The timeline of one of your team's requests: validated, committed, pushed, applied, verified, failed.

    request_id
        The id a request function returned.

    team
        The team, when you are in several.

    CLI Example:

    .. code-block:: bash

        salt-run nfs.status 3f1c0e8a9b7d4c2e8f6a5b4c3d2e1f0a
    """
    try:
        if _fields(kwargs):
            name = sorted(_fields(kwargs))[0]
            raise InvalidInput(name, kwargs[name], "is not a known field; nfs.status takes request_id and team")
        check_request_id(request_id)
        config = _config()
        policy = policy_from_config(config)
        user = _requester()
        teams = None if policy.is_admin(user) else policy.team_for(user, team).name
        steps = _timeline(config).read(request_id, teams)
    except NfsKitError as exc:
        return _fail(request_id if isinstance(request_id, str) else None, exc)
    last = steps[-1]["step"]
    return {"result": True, "request_id": request_id, "state": last, "kind": steps[0].get("kind"), "team": steps[0].get("team"), "steps": steps}


def record_step(request_id=None, step=None, **kwargs):
    """
    Add a step (``applied``, ``verified`` or ``failed``) to a request's timeline and fire its event.

    For the orchestration that applies and verifies requests; admin teams only.

    CLI Example:

    .. code-block:: bash

        salt-run nfs.record_step 3f1c0e8a9b7d4c2e8f6a5b4c3d2e1f0a verified minion=ci01.team-a.example.com
    """
    try:
        check_request_id(request_id)
        if step not in ("applied", "verified", "failed"):
            raise InvalidInput("step", step, "must be applied, verified or failed")
        config = _config()
        policy = policy_from_config(config)
        user = _requester()
        if not user or not policy.is_admin(user):
            raise InvalidInput("step", step, "may only be recorded by a member of an admin team")
        first = _timeline(config).read(request_id, None)[0]
        detail = {k: str(v)[:500] for k, v in _fields(kwargs).items()}
        change = {"id": request_id, "kind": first.get("kind"), "user": first.get("user"), "team": first.get("team")}
        steps = _Steps(config)
        try:
            steps(change, step, {"by": user, **detail})
        finally:
            steps.close()
    except NfsKitError as exc:
        return _fail(request_id if isinstance(request_id, str) else None, exc)
    return {"result": True, "request_id": request_id, "step": step}


def update_pillar(**kwargs):
    """
    Fetch the data repo for the ``nfs_selfservice`` ext_pillar now, as ``git_pillar.update`` does
    for git_pillar. Renders also fetch by themselves once ``update_interval`` (default
    ``git_pillar_update_interval``, 60 s) has passed; the next render checks out what was fetched.

    CLI Example:

    .. code-block:: bash

        salt-run nfs.update_pillar
        salt '*' saltutil.refresh_pillar
    """
    try:
        if _fields(kwargs):
            name = sorted(_fields(kwargs))[0]
            raise InvalidInput(name, kwargs[name], "is not a known field; nfs.update_pillar takes none")
        configs = pillar_source.configs(__opts__)
        if not configs:
            raise InvalidInput("ext_pillar", None, "has no nfs_selfservice entry in the master config")
        updated = {}
        for config in configs:
            updated.update(pillar_source.update(__opts__, config))
    except NfsKitError as exc:
        return _fail(None, exc)
    failed = [remote for remote, result in updated.items() if result is False]
    if failed:
        __context__["retcode"] = 1
    return {"result": not failed, "request_id": None, "updated": updated}
