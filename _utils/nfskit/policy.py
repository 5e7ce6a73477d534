"""Who may ask for what: teams, roles, servers and hostgroups from the master config.

The systems team writes the policy under ``nfs_selfservice`` in the master config:

.. code-block:: yaml

    nfs_selfservice:
      mount_roots: [/mnt, /srv, /data]          # mount points must lie below one of these
      servers:
        nfs1.example.com: {backend: kernel, capacity_gb: 10000, root: /srv/nfs, address: nfs1.example.com}
      hostgroups:
        web-prod: 'G@role:web and G@env:prod'   # named compound targets
      teams:
        team-a:
          members: [alice, bob]                 # eauth user names (salt-run: the OS user)
          quota_gb: 1000                        # omit for no quota
          backends: [kernel, ganesha]
          servers: [nfs1.example.com]
          client_networks: [10.1.0.0/16, '*.team-a.example.com', '@team-a']
          hosts: ['*.team-a.example.com']       # minion id globs the team may mount on
          hostgroups: [web-prod]
        storage:
          members: [root]
          admin: true                           # unsafe options, any team (team=...), no limits but capacity

The policy itself is plain data: the checks that need the data repo (quota used, capacity used,
ownership) take the numbers and records from the caller.
"""
from __future__ import annotations

import fnmatch
import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional

from nfskit.errors import InvalidInput, NotFound, PermissionDenied
from nfskit.model import ClientRule, check_safety
from nfskit.request import BACKENDS, ExportRequest, MountRequest, Target, check_minion_id, check_safe_path, check_slug

CONFIG_KEY = "nfs_selfservice"
DEFAULT_MOUNT_ROOTS = ("/mnt", "/srv", "/data")
DEFAULT_SERVER_ROOT = "/srv/nfs"
# A hostgroup target lands in the pillar top file (a Jinja template): nothing that Jinja, YAML or
# the compound matcher's quoting could read as syntax.
_TARGET = re.compile(r"[A-Za-z0-9@:._*?\[\]/, -]+")


@dataclass(frozen=True)
class Team:
    name: str
    members: frozenset[str]
    quota_gb: Optional[int]
    backends: frozenset[str]
    servers: frozenset[str]
    client_networks: tuple[str, ...]
    hosts: tuple[str, ...]
    hostgroups: frozenset[str]
    admin: bool = False


@dataclass(frozen=True)
class Server:
    name: str
    backend: str
    capacity_gb: Optional[int]
    root: str
    address: str


@dataclass(frozen=True)
class Policy:
    teams: Mapping[str, Team]
    servers: Mapping[str, Server]
    hostgroups: Mapping[str, str]
    mount_roots: tuple[str, ...]

    # -- identity ------------------------------------------------------------------------------

    def team_for(self, user: Optional[str], team: object = None) -> Team:
        """The team a request acts for.

        A user in one team acts for it; a user in several names one with ``team``; a member of an
        admin team may act for any team.
        """
        if not user:
            raise PermissionDenied("the request carries no authenticated user")
        mine = sorted((t for t in self.teams.values() if user in t.members), key=lambda t: t.name)
        if not mine:
            raise PermissionDenied(f"user {user!r} is not a member of any team in {CONFIG_KEY}:teams")
        if team is None:
            if len(mine) > 1:
                raise InvalidInput("team", None, "is required: you are a member of " + ", ".join(t.name for t in mine))
            return mine[0]
        check_slug(team, "team", "team name")
        if any(t.name == team for t in mine):
            return self.teams[team]  # type: ignore[index]
        if any(t.admin for t in mine) and team in self.teams:
            return self.teams[team]  # type: ignore[index]
        raise InvalidInput("team", team, "is not a team you are a member of")

    def is_admin(self, user: str) -> bool:
        return any(t.admin and user in t.members for t in self.teams.values())

    # -- exports -------------------------------------------------------------------------------

    def check_export(self, request: ExportRequest, team: Team, admin: bool) -> Optional[Server]:
        """Static checks of an export request: backend, server, path, client rules. Returns the server."""
        if request.backend not in team.backends and not admin:
            raise InvalidInput("backend", request.backend, _allowed(f"is not a backend team {team.name} may use", team.backends))
        server = None
        if request.server is not None:
            server = self.servers.get(request.server)
            if server is None or (request.server not in team.servers and not admin):
                raise InvalidInput("server", request.server, _allowed(f"is not a server team {team.name} may use", team.servers))
            if server.backend != request.backend:
                raise InvalidInput("backend", request.backend, f"does not match server {server.name}, which runs {server.backend}")
        if request.path is not None and server is not None and not admin:
            own = f"{server.root}/{team.name}/"
            if not request.path.startswith(own):
                raise InvalidInput("path", request.path, f"is outside {own}, the part of {server.name} that team {team.name} may use")
        for rule, field in zip(request.rules, request.rule_fields):
            self.check_rule(rule, team, admin, field)
        return server

    def check_rule(self, rule: ClientRule, team: Team, admin: bool, field: str) -> None:
        """Unsafe options only for admins; clients only from the team's networks."""
        if admin:
            return
        try:
            check_safety(rule, allow_unsafe=False, field_name=field)
        except InvalidInput as exc:
            problem = exc.problem.partition("; pass allow_unsafe")[0]
            raise InvalidInput(exc.field, exc.value, f"{problem}; only an admin team may request it") from None
        if not client_allowed(rule.host, team.client_networks):
            raise InvalidInput(field, rule.host, _allowed(f"is not in the client networks of team {team.name}", team.client_networks))

    def export_path(self, request: ExportRequest, team: Team, server: Optional[Server]) -> str:
        """The path on the server: as requested, or ``<server root>/<team>/<name>``."""
        if request.path is not None:
            return request.path
        root = server.root if server else DEFAULT_SERVER_ROOT
        return f"{root}/{team.name}/{request.name}"

    @staticmethod
    def check_quota(team: Team, used_gb: int, size_gb: int) -> None:
        if team.quota_gb is not None and used_gb + size_gb > team.quota_gb:
            raise InvalidInput(
                "size_gb", size_gb, f"exceeds the quota of team {team.name}: {used_gb} of {team.quota_gb} GB in use, {max(team.quota_gb - used_gb, 0)} GB left"
            )

    @staticmethod
    def check_capacity(server: Server, allocated_gb: int, size_gb: int) -> None:
        if server.capacity_gb is not None and allocated_gb + size_gb > server.capacity_gb:
            raise InvalidInput(
                "size_gb", size_gb, f"does not fit on {server.name}: {max(server.capacity_gb - allocated_gb, 0)} of {server.capacity_gb} GB free"
            )

    # -- mounts --------------------------------------------------------------------------------

    def check_target(self, target: Target, team: Team, admin: bool) -> Optional[str]:
        """The team may mount on this host or hostgroup. Returns the hostgroup's compound target."""
        if target.kind == "hostgroup":
            compound = self.hostgroups.get(target.name)
            if compound is None or (target.name not in team.hostgroups and not admin):
                raise InvalidInput("hostgroup", target.name, _allowed(f"is not a hostgroup team {team.name} may use", team.hostgroups))
            return compound
        if not admin and not any(fnmatch.fnmatchcase(target.name, pattern) for pattern in team.hosts):
            raise InvalidInput("host", target.name, _allowed(f"is not a host team {team.name} may mount on", team.hosts))
        return None

    def check_mount_point(self, mount_point: str, field: str = "mount_point") -> None:
        if not any(mount_point.startswith(root + "/") for root in self.mount_roots):
            raise InvalidInput(field, mount_point, "is not below an allowed mount root (" + ", ".join(self.mount_roots) + ")")

    def check_mount(self, request: MountRequest, team: Team, admin: bool) -> Optional[str]:
        self.check_mount_point(request.mount_point)
        return self.check_target(request.target, team, admin)

    def device(self, record: Mapping[str, Any]) -> Optional[str]:
        """``server:/path`` for a kernel or ganesha export; None for efs (known after provisioning)."""
        server = self.servers.get(record.get("server") or "")
        if server is None:
            return None
        return f"{server.address}:{record['path']}"


def owned(record: Optional[Mapping[str, Any]], team: Team, what: str) -> Mapping[str, Any]:
    """The record if it belongs to ``team``; otherwise the same NotFound as for a missing one."""
    if record is None or record.get("team") != team.name:
        raise NotFound(f"{what} does not exist")
    return record


def client_allowed(host: str, networks: Iterable[str]) -> bool:
    """Whether an exports(5) client spec lies within the team's networks.

    Addresses and CIDRs must be inside one of the CIDRs; names and wildcards must match one of
    the name patterns as text (a pattern ``*.team-a.example.com`` covers ``web?.team-a.example.com``
    but not ``*.example.com``); a netgroup must be listed as itself.
    """
    address = _network(host)
    for allowed in networks:
        if address is not None:
            net = _network(allowed)
            if net is not None and net.version == address.version and address.subnet_of(net):  # type: ignore[arg-type]
                return True
        elif host.startswith("@") or allowed.startswith("@"):
            if host == allowed:
                return True
        elif _network(allowed) is None and fnmatch.fnmatchcase(host, allowed):
            return True
    return False


def _network(spec: str):
    try:
        return ipaddress.ip_network(spec, strict=False)
    except ValueError:
        return None


def _allowed(problem: str, allowed: Iterable[str]) -> str:
    allowed = sorted(allowed)
    return f"{problem}; allowed: {', '.join(allowed)}" if allowed else f"{problem} (none are allowed)"


# ---------------------------------------------------------------------------------------------
# config


def policy_from_config(config: object) -> Policy:
    """Build the policy from ``__opts__["nfs_selfservice"]``; config errors name the config key."""
    base = CONFIG_KEY
    if not isinstance(config, Mapping):
        raise InvalidInput(base, config, "must be a mapping (see docs/nfs_runner.md)")
    servers = {}
    for name, data in _mapping(config.get("servers"), f"{base}.servers").items():
        where = f"{base}.servers.{name}"
        check_minion_id(name, where)
        data = _mapping(data, where)
        _known(data, where, ("backend", "capacity_gb", "root", "address"))
        backend = data.get("backend", "kernel")
        if backend not in BACKENDS[:2]:
            raise InvalidInput(f"{where}.backend", backend, "must be kernel or ganesha")
        root = check_safe_path(data.get("root", DEFAULT_SERVER_ROOT), f"{where}.root")
        address = data.get("address", name)
        check_minion_id(address, f"{where}.address")
        servers[name] = Server(name, backend, _optional_int(data.get("capacity_gb"), f"{where}.capacity_gb"), root, address)
    hostgroups = {}
    for name, target in _mapping(config.get("hostgroups"), f"{base}.hostgroups").items():
        check_slug(name, f"{base}.hostgroups", "hostgroup name")
        if not isinstance(target, str) or not target.strip() or not _TARGET.fullmatch(target):
            raise InvalidInput(f"{base}.hostgroups.{name}", target, "must be a compound target (letters, digits, @ : . _ * ? [ ] / , - and spaces)")
        hostgroups[name] = target
    teams = {}
    for name, data in _mapping(config.get("teams"), f"{base}.teams").items():
        where = f"{base}.teams.{name}"
        check_slug(name, f"{base}.teams", "team name")
        data = _mapping(data, where)
        _known(data, where, ("members", "quota_gb", "backends", "servers", "client_networks", "hosts", "hostgroups", "admin"))
        backends = _strings(data.get("backends", ["kernel", "ganesha"]), f"{where}.backends")
        for backend in backends:
            if backend not in BACKENDS:
                raise InvalidInput(f"{where}.backends", backend, "is not a backend (" + ", ".join(BACKENDS) + ")")
        for group in _strings(data.get("hostgroups", []), f"{where}.hostgroups"):
            if group not in hostgroups:
                raise InvalidInput(f"{where}.hostgroups", group, f"is not defined in {base}.hostgroups")
        admin = data.get("admin", False)
        if not isinstance(admin, bool):
            raise InvalidInput(f"{where}.admin", admin, "must be true or false")
        teams[name] = Team(
            name=name,
            members=frozenset(_strings(data.get("members", []), f"{where}.members")),
            quota_gb=_optional_int(data.get("quota_gb"), f"{where}.quota_gb"),
            backends=frozenset(backends),
            servers=frozenset(_strings(data.get("servers", []), f"{where}.servers")),
            client_networks=tuple(_strings(data.get("client_networks", []), f"{where}.client_networks")),
            hosts=tuple(_strings(data.get("hosts", []), f"{where}.hosts")),
            hostgroups=frozenset(_strings(data.get("hostgroups", []), f"{where}.hostgroups")),
            admin=admin,
        )
    roots = tuple(check_safe_path(r, f"{base}.mount_roots") for r in _strings(config.get("mount_roots", list(DEFAULT_MOUNT_ROOTS)), f"{base}.mount_roots"))
    return Policy(teams=teams, servers=servers, hostgroups=hostgroups, mount_roots=roots)


def _mapping(value: object, field: str) -> Mapping:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput(field, value, "must be a mapping")
    return value


def _known(data: Mapping, field: str, keys: tuple[str, ...]) -> None:
    unknown = sorted(set(map(str, data)) - set(keys))
    if unknown:
        raise InvalidInput(f"{field}.{unknown[0]}", data[unknown[0]], "is not a known setting; known: " + ", ".join(keys))


def _strings(value: object, field: str) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(field, value, "must be a list of strings")
    return list(value)


def _optional_int(value: object, field: str) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(field, value, "must be a whole number of GB (or absent for no limit)")
    return value
