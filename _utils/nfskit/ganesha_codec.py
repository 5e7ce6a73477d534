"""Render one :class:`nfskit.model.Export` as an NFS-Ganesha ``EXPORT { ... }`` block and parse
such blocks back into the typed model.

The block denies by default (export-level ``Access_Type = None``) and gives each client rule its
own ``CLIENT`` block, in rule order (ganesha evaluates them as an ordered access list).

exports(5) options and their ganesha equivalent (checked against ganesha 4.3's own parser):

=====================  ==================================================================
exports(5)             ganesha
=====================  ==================================================================
rw / ro                ``CLIENT { Access_Type = RW | RO; }``
root/all/no_root_squash ``CLIENT { Squash = root_squash | all_squash | no_root_squash; }``
sec=a:b                ``CLIENT { SecType = a, b; }`` (sys, krb5, krb5i, krb5p, none)
anonuid= / anongid=    ``CLIENT { Anonymous_Uid = N; Anonymous_Gid = N; }``
secure (default)       ``CLIENT { PrivilegedPort = true; }`` (ganesha's own default is false)
insecure               ``CLIENT { PrivilegedPort = false; }``
no_acl                 ``EXPORT { Disable_ACL = true; }``: per export, so every rule must agree
security_label         ``EXPORT { Security_Label = true; }``: per export, every rule must agree
async, no_wdelay,      no ganesha equivalent and no effect on who may do what; accepted as
subtree_check          no-ops and recorded in a ``# nfskit-noop:`` comment so a read-back
                       compares equal
anything else          refused with :class:`InvalidInput` naming the option (fsid=, crossmnt,
                       refer=, replicas=, mountpoint, nohide, pnfs, insecure_locks, ...)
=====================  ==================================================================

Ganesha only accepts *unquoted* client specs (``Expected a client, got a double quoted string``),
so hosts are written bare after a strict character check; paths and pseudo paths are written as
double-quoted strings (ganesha does no escape processing and no ``$VAR`` expansion in them), and
anything that could end a string, a line or a comment is refused.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, NamedTuple, Tuple, Union

from nfskit.errors import BackendError, InvalidInput
from nfskit.model import SEC_FLAVORS, ClientRule, Export

HEADER_PREFIX = "# managed by nfskit (salt); path "
NOOP_MARK = "nfskit-noop:"

# exports(5) words ganesha has no equivalent for but that never widen access.
NOOP_OPTIONS = frozenset({"async", "no_wdelay", "subtree_check"})
# exports(5) words that map to an export-wide ganesha flag.
EXPORT_WIDE = {"no_acl": "Disable_ACL", "security_label": "Security_Label"}
SUPPORTED_OPTIONS = NOOP_OPTIONS | {"insecure"} | frozenset(EXPORT_WIDE)

_REFUSED_WHY = {
    "fsid": "ganesha derives file system ids itself (Filesystem_Id is export-wide and means something else)",
    "crossmnt": "ganesha has no crossmnt; export each file system on its own",
    "nohide": "ganesha has no nohide; export each file system on its own",
    "refer": "ganesha has no NFSv4 referrals in an export block",
    "replicas": "ganesha has no NFSv4 replica locations in an export block",
    "mountpoint": "ganesha has no mountpoint check",
    "pnfs": "pNFS is configured per FSAL in ganesha, not per client",
    "insecure_locks": "ganesha has no per-client NLM lock authentication switch",
    "nordirplus": "ganesha has no per-export READDIRPLUS switch",
    "xprtsec": "ganesha 4.3 has no RPC-with-TLS",
}

_ACCESS_OUT = {"rw": "RW", "ro": "RO"}
_SQUASH_OUT = {"root": "root_squash", "all": "all_squash", "none": "no_root_squash"}
_SQUASH_IN = {
    "root": "root", "root_squash": "root", "rootsquash": "root",
    "all": "all", "all_squash": "all", "allsquash": "all", "all_anonymous": "all", "allanonymous": "all",
    "no_root_squash": "none", "none": "none", "noidsquash": "none",
}
_BOOL_IN = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}
# What may appear bare in a Clients list: names, wildcards, addresses, CIDRs, @netgroups.
_SAFE_HOST = re.compile(r"[A-Za-z0-9*?\[\]_.:/@-]+")
MAX_EXPORT_ID = 65535


# --------------------------------------------------------------------------------------------
# rendering


def render_block(export: Export, export_id: int) -> str:
    """Render ``export`` as one ganesha EXPORT block with the given ``Export_Id``.

    Raises :class:`InvalidInput` for options ganesha cannot honour and for strings that cannot be
    written safely.
    """
    if isinstance(export_id, bool) or not isinstance(export_id, int) or not 1 <= export_id <= MAX_EXPORT_ID:
        raise InvalidInput("export_id", export_id, f"must be an integer from 1 to {MAX_EXPORT_ID} (0 is ganesha's pseudo root)")
    path = _safe_string(export.path, "path")
    pseudo = _safe_string(export.pseudo_path, "pseudo")
    export_flags = _export_wide_flags(export)
    lines = [
        HEADER_PREFIX + path,
        "EXPORT {",
        f"    Export_Id = {export_id};",
        f'    Path = "{path}";',
        f'    Pseudo = "{pseudo}";',
        "    FSAL { Name = VFS; }",
        "    Access_Type = None;",
        "    Squash = root_squash;",
        "    Protocols = 3, 4;",
    ]
    for word in sorted(export_flags):
        lines.append(f"    {EXPORT_WIDE[word]} = true;")
    for index, rule in enumerate(export.rules):
        lines += _render_client(rule, index, export.path)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _render_client(rule: ClientRule, index: int, path: str) -> list[str]:
    where = f"clients[{index}]"
    host = rule.host
    if not isinstance(host, str) or not _SAFE_HOST.fullmatch(host):
        raise InvalidInput(f"{where}.host", host, "cannot be written as a ganesha client (letters, digits and * ? [ ] _ . : / @ - only)")
    if rule.access not in _ACCESS_OUT:
        raise InvalidInput(f"{where}.access", rule.access, "must be rw or ro")
    if rule.squash not in _SQUASH_OUT:
        raise InvalidInput(f"{where}.squash", rule.squash, "must be root, all or none")
    if not rule.sec or any(flavor not in SEC_FLAVORS for flavor in rule.sec) or len(set(rule.sec)) != len(rule.sec):
        raise InvalidInput(f"{where}.sec", rule.sec, "must list distinct flavors from " + ", ".join(SEC_FLAVORS))
    for word in sorted(rule.options):
        if word not in SUPPORTED_OPTIONS:
            key = word.partition("=")[0]
            why = _REFUSED_WHY.get(key, "it has no NFS-Ganesha equivalent")
            raise InvalidInput(
                f"{where}.options", word,
                f"cannot be honoured by NFS-Ganesha ({why}); export {path}, client {host}",
            )
    out = [
        "    CLIENT {",
        f"        Clients = {host};",
        f"        Access_Type = {_ACCESS_OUT[rule.access]};",
        f"        Squash = {_SQUASH_OUT[rule.squash]};",
        f"        SecType = {', '.join(rule.sec)};",
        f"        PrivilegedPort = {'false' if 'insecure' in rule.options else 'true'};",
    ]
    for key, value in (("Anonymous_Uid", rule.anonuid), ("Anonymous_Gid", rule.anongid)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not -(2**31) <= value <= 2**32 - 1:
            raise InvalidInput(f"{where}.{key.lower()}", value, "must be a uid/gid number")
        out.append(f"        {key} = {value};")
    noops = sorted(rule.options & NOOP_OPTIONS)
    if noops:
        out.append(f"        # {NOOP_MARK} {' '.join(noops)} (exports(5) options without a ganesha equivalent)")
    out.append("    }")
    return out


def _export_wide_flags(export: Export) -> frozenset[str]:
    """no_acl / security_label are per export in ganesha: every rule must agree."""
    flags = set()
    for word in EXPORT_WIDE:
        having = [rule for rule in export.rules if word in rule.options]
        if having and len(having) != len(export.rules):
            lacking = next(index for index, rule in enumerate(export.rules) if word not in rule.options)
            raise InvalidInput(
                f"clients[{lacking}].options", export.rules[lacking].describe(),
                f"lacks {word}, which other rules of {export.path} have; NFS-Ganesha sets "
                f"{EXPORT_WIDE[word]} per export, so give {word} on every client rule or on none",
            )
        if having:
            flags.add(word)
    return frozenset(flags)


_UNSAFE_IN_STRING = re.compile(r'["\\#\x00-\x1f\x7f]')


def _safe_string(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise InvalidInput(name, value, "must be an absolute path")
    if _UNSAFE_IN_STRING.search(value):
        raise InvalidInput(name, value, "contains a quote, backslash, '#', newline or control character, which cannot be written into a ganesha block")
    return value


# --------------------------------------------------------------------------------------------
# tokenizer and parser for ganesha config syntax


class Token(NamedTuple):
    kind: str  # word, string, punct, comment, directive
    text: str
    line: int  # a character offset while parsing; see ParseError


@dataclass
class Param:
    name: str
    values: List[Token]
    line: int


@dataclass
class Block:
    name: str
    line: int
    items: List[Union["Block", Param]] = field(default_factory=list)
    comments: List[Token] = field(default_factory=list)

    def params(self) -> dict[str, Param]:
        out: dict[str, Param] = {}
        for item in self.items:
            if type(item) is Param:
                key = item.name.lower()
                if key in out:
                    raise _ParseError(f"parameter {item.name} given twice in {self.name}", item.line)
                out[key] = item
        return out

    def blocks(self, name: str) -> list["Block"]:
        name = name.lower()
        return [item for item in self.items if type(item) is Block and item.name.lower() == name]


class _ParseError(Exception):
    """``where`` is a character offset into the text; :func:`parse_config` turns it into a line."""

    def __init__(self, message: str, where: int):
        super().__init__(message)
        self.message = message
        self.where = where


class ConfigSyntaxError(ValueError):
    """Text that is not ganesha config syntax (or not a block nfskit can represent)."""

    def __init__(self, message: str, line: int):
        super().__init__(f"line {line}: {message}")
        self.line = line


# Whitespace (newlines included) is eaten as the prefix of each token.
_TOKEN_RE = re.compile(
    r"""\s*(?:\#([^\n]*)|([{}=;,])|"([^"\n]*)"|'([^'\n]*)'|([^\s{}=;,"'\#]+)|(\S)|$)"""
)
_KINDS = (None, "comment", "punct", "string", "string", "word", "bad")


def tokenize(text: str) -> List[Token]:
    """Split ganesha config text into tokens; comments are kept as ``comment`` tokens.

    A token's ``line`` holds its character offset (cheap); use ``text.count("\n", 0, offset) + 1``
    for the line number.
    """
    tokens: List[Token] = []
    append = tokens.append
    for match in _TOKEN_RE.finditer(text):
        index = match.lastindex
        if index is None:
            continue  # trailing whitespace
        kind = _KINDS[index]
        value = match.group(index)
        where = match.start(index)
        if kind == "word":
            append(Token("directive" if value[0] == "%" else "word", value, where))
        elif kind == "comment":
            append(Token("comment", value.strip(), where))
        elif kind == "bad":
            raise _ParseError("unterminated quoted string" if value in "\"'" else f"unexpected character {value!r}", where)
        else:
            append(Token(kind, value, where))
    return tokens


def parse_config(text: str) -> list[Block]:
    """Parse ganesha config text into top-level blocks. ``%include`` and friends are refused.

    Raises :class:`ConfigSyntaxError` with the line number.
    """
    try:
        return _parse_tokens(tokenize(text), len(text))
    except _ParseError as exc:
        raise ConfigSyntaxError(exc.message, text.count("\n", 0, exc.where) + 1) from None


def _parse_tokens(tokens: List[Token], end: int) -> list[Block]:
    count = len(tokens)
    pos = 0
    top: list[Block] = []

    def take() -> Token:
        nonlocal pos
        if pos >= count:
            raise _ParseError("unexpected end of text", end)
        token = tokens[pos]
        pos += 1
        return token

    def read_block(name: Token, pending: list) -> Block:
        nonlocal pos
        block = Block(name.text, name.line, [], pending)
        comments = block.comments
        opening = take()
        if opening.kind != "punct" or opening.text != "{":
            raise _ParseError(f"expected '{{' after {name.text}", opening.line)
        while True:
            token = take()
            while token.kind == "comment":
                comments.append(token)
                token = take()
            if token.kind == "punct" and token.text == "}":
                break
            if token.kind != "word":
                raise _ParseError(f"expected a parameter name, got {token.text!r}", token.line)
            after = take()
            while after.kind == "comment":
                comments.append(after)
                after = take()
            if after.kind == "punct" and after.text == "{":
                pos -= 1
                block.items.append(read_block(token, []))
                if pos < count and tokens[pos].kind == "punct" and tokens[pos].text == ";":
                    pos += 1
                continue
            if after.kind != "punct" or after.text != "=":
                raise _ParseError(f"expected '=' after {token.text}", after.line)
            values: list[Token] = []
            while True:
                value = take()
                while value.kind == "comment":
                    comments.append(value)
                    value = take()
                if value.kind != "word" and value.kind != "string":
                    raise _ParseError(f"expected a value for {token.text}, got {value.text!r}", value.line)
                values.append(value)
                sep = take()
                while sep.kind == "comment":
                    comments.append(sep)
                    sep = take()
                if sep.kind == "punct" and sep.text == ";":
                    break
                if sep.kind != "punct" or sep.text != ",":
                    raise _ParseError(f"expected ',' or ';' after a value of {token.text}", sep.line)
            block.items.append(Param(token.text, values, token.line))
        return block

    pending: list[Token] = []
    while pos < count:
        token = tokens[pos]
        pos += 1
        if token.kind == "comment":
            pending.append(token)
            continue
        if token.kind == "directive":
            raise _ParseError(f"{token.text} is not allowed here", token.line)
        if token.kind != "word":
            raise _ParseError(f"expected a block name, got {token.text!r}", token.line)
        top.append(read_block(token, pending))
        pending = []
        if pos < count and tokens[pos].kind == "punct" and tokens[pos].text == ";":
            pos += 1
    return top


def parse_block(text: str) -> Tuple[int, Export]:
    """Parse one EXPORT block (as written by :func:`render_block`) into ``(export_id, Export)``.

    Raises :class:`BackendError` when the text is not a single ganesha EXPORT block that the
    typed model can represent.
    """
    fast = _parse_canonical(text)
    if fast is not None:
        return fast
    try:
        blocks = _parse_tokens(tokenize(text), len(text))
        if len(blocks) != 1 or blocks[0].name.lower() != "export":
            raise _ParseError("expected exactly one EXPORT block", blocks[1].line if len(blocks) > 1 else 0)
        return _export_from_block(blocks[0])
    except _ParseError as exc:
        line = text.count("\n", 0, exc.where) + 1
        raise BackendError(f"cannot read ganesha export block: line {line}: {exc.message}") from None


_CANON_ACCESS = {"RW": "rw", "RO": "ro"}
_CANON_SQUASH = {"root_squash": "root", "all_squash": "all", "no_root_squash": "none"}
_CANON_WIDE = {f"    {key} = true;": word for word, key in EXPORT_WIDE.items()}


def _parse_canonical(text: str):
    """Fast path for text exactly as :func:`render_block` writes it (reading 10,000 files).

    Reads the fields line by line, then renders them again and accepts the result only if that
    reproduces ``text`` byte for byte; anything else (hand edits, other spellings) returns None
    and goes through the full parser. Correct by construction given the round trip
    ``parse_block(render_block(x)) == x``.
    """
    try:
        lines = text.split("\n")
        if len(lines) < 12 or lines[1] != "EXPORT {" or not lines[2].startswith("    Export_Id = "):
            return None
        export_id = int(lines[2][16:-1])
        path = lines[3][12:-2]
        pseudo = lines[4][14:-2]
        flags = set()
        index = 9
        while lines[index] in _CANON_WIDE:
            flags.add(_CANON_WIDE[lines[index]])
            index += 1
        rules = []
        while lines[index] == "    CLIENT {":
            host = lines[index + 1][18:-1]
            access = _CANON_ACCESS[lines[index + 2][22:-1]]
            squash = _CANON_SQUASH[lines[index + 3][17:-1]]
            sec = tuple(lines[index + 4][18:-1].split(", "))
            options = set(flags)
            if lines[index + 5] == "        PrivilegedPort = false;":
                options.add("insecure")
            index += 6
            anonuid = anongid = None
            if lines[index].startswith("        Anonymous_Uid = "):
                anonuid = int(lines[index][24:-1])
                index += 1
            if lines[index].startswith("        Anonymous_Gid = "):
                anongid = int(lines[index][24:-1])
                index += 1
            if lines[index].startswith("        # " + NOOP_MARK):
                options.update(lines[index][10 + len(NOOP_MARK):].split(" (")[0].split())
                index += 1
            index += 1  # "    }"
            rules.append(ClientRule(host, access, squash, sec, anonuid, anongid, frozenset(options)))
        export = Export(path, tuple(rules), None if pseudo == path else pseudo)
        if render_block(export, export_id) != text:
            return None
        return export_id, export
    except (ValueError, KeyError, IndexError, InvalidInput):
        return None


_EXPORT_KEYS = {"export_id", "path", "pseudo", "access_type", "squash", "protocols", "disable_acl", "security_label"}
_CLIENT_KEYS = {"clients", "access_type", "squash", "sectype", "privilegedport", "anonymous_uid", "anonymous_gid"}


def _one(param: Param) -> Token:
    if len(param.values) != 1:
        raise _ParseError(f"{param.name} takes one value", param.line)
    return param.values[0]


def _int(param: Param, low: int, high: int) -> int:
    token = _one(param)
    if token.kind != "word" or not re.fullmatch(r"-?[0-9]+", token.text):
        raise _ParseError(f"{param.name} must be a number, got {token.text!r}", param.line)
    number = int(token.text)
    if not low <= number <= high:
        raise _ParseError(f"{param.name} = {number} is out of range", param.line)
    return number


def _bool(param: Param) -> bool:
    text = _one(param).text.lower()
    if text not in _BOOL_IN:
        raise _ParseError(f"{param.name} must be true or false, got {text!r}", param.line)
    return _BOOL_IN[text]


def _path(param: Param) -> str:
    token = _one(param)
    if not token.text.startswith("/"):
        raise _ParseError(f"{param.name} must be an absolute path, got {token.text!r}", param.line)
    return token.text


def _export_from_block(block: Block) -> Tuple[int, Export]:
    params = block.params()
    unknown = set(params) - _EXPORT_KEYS
    if unknown:
        name = params[sorted(unknown)[0]]
        raise _ParseError(f"parameter {name.name} is not one nfskit writes", name.line)
    for other in block.items:
        if isinstance(other, Block) and other.name.lower() not in ("fsal", "client"):
            raise _ParseError(f"block {other.name} is not one nfskit writes", other.line)
    for required in ("export_id", "path"):
        if required not in params:
            raise _ParseError(f"EXPORT has no {required.title()}", block.line)
    export_id = _int(params["export_id"], 0, MAX_EXPORT_ID)
    path = _path(params["path"])
    pseudo = _path(params["pseudo"]) if "pseudo" in params else path
    fsals = block.blocks("fsal")
    if len(fsals) != 1:
        raise _ParseError("EXPORT needs exactly one FSAL block", block.line)
    fsal = fsals[0].params()
    if "name" not in fsal or _one(fsal["name"]).text.upper() != "VFS" or len(fsal) != 1:
        raise _ParseError("only FSAL { Name = VFS; } is supported", fsals[0].line)
    access = _one(params["access_type"]).text.lower() if "access_type" in params else "none"
    if access != "none":
        raise _ParseError("export-level Access_Type must be None (deny unless a CLIENT block matches)", params["access_type"].line)
    default_squash = "root"
    if "squash" in params:
        default_squash = _squash(params["squash"])
    if "protocols" in params:
        protocols = {t.text.lower().lstrip("nfsv").lstrip("v") for t in params["protocols"].values}
        if protocols != {"3", "4"}:
            raise _ParseError("Protocols must be 3, 4", params["protocols"].line)
    wide = set()
    for word, key in EXPORT_WIDE.items():
        if key.lower() in params and _bool(params[key.lower()]):
            wide.add(word)
    rules: list[ClientRule] = []
    for client in block.blocks("client"):
        rules += _rules_from_client(client, default_squash, frozenset(wide))
    return export_id, Export(path=path, rules=tuple(rules), pseudo=None if pseudo == path else pseudo)


def _squash(param: Param) -> str:
    raw = _one(param).text
    text = raw.lower()
    if text not in _SQUASH_IN:
        raise _ParseError(f"Squash = {raw} cannot be represented (root_squash, all_squash or no_root_squash)", param.line)
    return _SQUASH_IN[text]


def _rules_from_client(block: Block, default_squash: str, wide: frozenset[str]) -> list[ClientRule]:
    for item in block.items:
        if isinstance(item, Block):
            raise _ParseError(f"block {item.name} is not allowed in CLIENT", item.line)
    params = block.params()
    unknown = set(params) - _CLIENT_KEYS
    if unknown:
        name = params[sorted(unknown)[0]]
        raise _ParseError(f"parameter {name.name} is not one nfskit writes", name.line)
    if "clients" not in params:
        raise _ParseError("CLIENT block has no Clients", block.line)
    hosts = []
    for token in params["clients"].values:
        if token.kind != "word" or not _SAFE_HOST.fullmatch(token.text):
            raise _ParseError(f"client {token.text!r} is not a bare host spec", params["clients"].line)
        hosts.append(token.text)
    if "access_type" not in params:
        raise _ParseError("CLIENT block has no Access_Type", block.line)
    raw_access = _one(params["access_type"]).text
    access = raw_access.lower()
    if access not in ("rw", "ro"):
        raise _ParseError(f"CLIENT Access_Type = {raw_access} cannot be represented (RW or RO)", params["access_type"].line)
    squash = _squash(params["squash"]) if "squash" in params else default_squash
    sec: tuple[str, ...] = ("none", "sys")  # ganesha's default
    if "sectype" in params:
        sec = tuple(t.text.lower() for t in params["sectype"].values)
        if any(flavor not in SEC_FLAVORS for flavor in sec) or len(set(sec)) != len(sec):
            raise _ParseError(f"SecType {', '.join(sec)} is not a list of distinct known flavors", params["sectype"].line)
    privileged = _bool(params["privilegedport"]) if "privilegedport" in params else False
    anonuid = _int(params["anonymous_uid"], -(2**31), 2**32 - 1) if "anonymous_uid" in params else None
    anongid = _int(params["anonymous_gid"], -(2**31), 2**32 - 1) if "anonymous_gid" in params else None
    options = set(wide)
    if not privileged:
        options.add("insecure")
    for comment in block.comments:
        if comment.text.startswith(NOOP_MARK):
            words = comment.text[len(NOOP_MARK):].split("(")[0].split()
            unknown_noops = set(words) - NOOP_OPTIONS
            if unknown_noops:
                raise _ParseError(f"{NOOP_MARK} lists {sorted(unknown_noops)[0]!r}, which is not a no-op option", comment.line)
            options.update(words)
    return [
        ClientRule(host=host, access=access, squash=squash, sec=sec, anonuid=anonuid, anongid=anongid, options=frozenset(options))
        for host in hosts
    ]
