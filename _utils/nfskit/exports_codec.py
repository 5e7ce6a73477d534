"""exports(5): a parser that keeps the document, so an edit changes only the bytes it must.

The tokenizer follows nfs-utils' own reader (``support/nfs/xio.c`` and ``getexportent`` in
``support/nfs/exports.c``, checked against ``exportfs`` 2.6.2), including its corner cases:

- an entry is a path followed by client tokens up to the end of the line; ``\\`` right before a
  newline continues the line (the newline and the next line's leading blanks become one space);
- ``#`` starts a comment only where a token could start (``/srv/a#b`` is a path, ``h(rw)#x`` a
  syntax error); a comment ends the entry, ``\\`` at its end does not continue it;
- double quotes group whitespace into a token anywhere in it (``"/srv/my dir"``, ``/srv/"a b"``)
  and are removed; ``\\ooo`` (three octal digits) stands for one character (``\\040``);
- the first token after the path is the line's default options when it starts with ``-``;
- ``host(opts)`` is a client with options, ``host`` a client with the defaults only, ``(opts)`` a
  client with no host, which ``exportfs`` turns into ``*`` (the ``host (rw)`` mistake); a path
  with no client at all is exported to every host;
- a carriage return, vertical tab or form feed where a path should start, or an empty quoted
  token there, makes ``exportfs`` stop reading the file, silently (a CRLF blank line does this).

:func:`parse` gives an :class:`ExportsDocument` whose :meth:`~ExportsDocument.render` returns the
text unchanged; :meth:`~ExportsDocument.add_client` and :meth:`~ExportsDocument.remove_path`
splice the text and leave every other byte alone. :func:`parse_exports_model` is the strict
typed view (anything ``exportfs`` would refuse, warn about in a way that changes meaning, or
that our model does not accept raises :class:`~nfskit.errors.InvalidInput` naming the line).
"""
from __future__ import annotations

import bisect
import functools
import os
import re
from dataclasses import dataclass
from typing import Iterable, Optional

from nfskit.errors import Conflict, InvalidInput
from nfskit.model import ClientRule, Export, merge_options, rule_from_options
from nfskit.validation import check_host, check_path

# C isspace() in the C locale.
_SPACE = " \t\n\r\x0b\x0c"
# Blanks, NULs (strchr() finds the terminator), continuations and comments where a path may start.
_SKIP_PATH = re.compile(r"(?:[ \t\n\x00]+|\\\n[ \t]*|#[^\n]*\n?)*")
# The same between clients: a newline ends the entry, so a comment stops right before it.
_SKIP_CLIENT = re.compile(r"(?:[ \t\x00]+|\\\n[ \t]*)*(?:#[^\n]*)?")
_RUN_PLAIN = re.compile(r'[^ \t\n\r\x0b\x0c"\\]+')
_RUN_QUOTED = re.compile(r'[^"\\]+')
_BLANKS = re.compile(r"[ \t]*")
_REST_OF_LINE = re.compile(r"[ \t]*\n")
_OCTAL = re.compile(r"\\([0-7]{3})")
_NEEDS_QUOTES = re.compile(r"[\s#]")
_COMPLEX = re.compile(r'["\\\r\x0b\x0c\x00]')
_FAST_TOKENS = re.compile(r"#.*|[^ \t]+")
_SIMPLE_TOKEN = re.compile(r"#[^\n]*|[^ \t\n]+|\n")
# Paths that need no closer look: components not starting with '.', no '//', no trailing '/'.
_PLAIN_PATH = re.compile(r"(?:/[A-Za-z0-9_+@%:,~=-][A-Za-z0-9_.+@%:,~=-]*)+")


class _Record:
    """Small slotted records (many are made per file); equality and repr by fields."""

    __slots__: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"


class Token(_Record):
    """One token: its value (quotes removed, escapes decoded) and its raw span in the text."""

    __slots__ = ("value", "start", "end", "unterminated")

    def __init__(self, value: str, start: int, end: int, unterminated: bool = False):
        self.value = value
        self.start = start
        self.end = end
        self.unterminated = unterminated


class Client(_Record):
    """A client token: ``host(opts)``, bare ``host`` (options ``None``) or ``(opts)`` (host ``""``)."""

    __slots__ = ("host", "options", "token", "bad_syntax")

    def __init__(self, host: str, options: Optional[list[str]], token: Token, bad_syntax: bool = False):
        self.host = host
        self.options = options
        self.token = token
        self.bad_syntax = bad_syntax


class Entry(_Record):
    """One logical line: a path, its ``-defaults`` and clients, and the span it covers.

    ``start``..``end`` runs from the start of the physical line holding the path to the end of the
    newline that ends the entry (continuation lines and an inline comment included).
    """

    __slots__ = ("path", "path_token", "start", "end", "defaults", "defaults_token", "clients")

    def __init__(self, path: str, path_token: Token, start: int, end: int):
        self.path = path
        self.path_token = path_token
        self.start = start
        self.end = end
        self.defaults: list[str] = []
        self.defaults_token: Optional[Token] = None
        self.clients: list[Client] = []

    @property
    def last_token(self) -> Token:
        if self.clients:
            return self.clients[-1].token
        return self.defaults_token or self.path_token


@dataclass(frozen=True)
class Issue:
    """Something ``exportfs`` would refuse or silently stop at."""

    offset: int
    value: str
    problem: str


class ExportsDocument:
    """A parsed exports(5) text that renders back to the same bytes until it is edited."""

    def __init__(self, text: str):
        self._load(text)

    def _load(self, text: str) -> None:
        self.text = text
        self.entries, self.issues = _scan(text)
        self._newlines: Optional[list[int]] = None

    # -- reading -----------------------------------------------------------------------------
    def render(self) -> str:
        return self.text

    def __str__(self) -> str:  # pragma: no cover - convenience
        return self.text

    def line_of(self, offset: int) -> int:
        """1-based physical line number of a text offset."""
        if self._newlines is None:
            self._newlines = [m.start() for m in re.finditer("\n", self.text)]
        return bisect.bisect_left(self._newlines, offset) + 1

    def paths(self) -> list[str]:
        """Exported paths in file order, each once."""
        return list(dict.fromkeys(entry.path for entry in self.entries))

    def list_exports(self) -> dict[str, list[dict]]:
        """The shape of Salt's ``nfs3.list_exports``: ``{path: [{"hosts": str, "options": [str]}]}``.

        ``options`` is what the line says for the client merged with the line's ``-defaults``
        (the client winning); a bare host gets the defaults. A client written as ``(opts)`` and a
        path with no client at all (both exported to every host) appear with ``hosts: ""``.
        """
        result: dict[str, list[dict]] = {}
        for entry in self.entries:
            clients = result.setdefault(entry.path, [])
            if not entry.clients:
                clients.append({"hosts": "", "options": list(entry.defaults)})
            for client in entry.clients:
                if client.options is None:
                    options = list(entry.defaults)
                else:
                    options = merge_options(entry.defaults, client.options)
                clients.append({"hosts": client.host, "options": options})
        return result

    # -- editing -----------------------------------------------------------------------------
    def add_client(self, path: str, host: str, options: object) -> None:
        """Give ``host`` these options on ``path``.

        If the host is already a client of the path, its token is replaced in place (every
        occurrence); else ``" host(opts)"`` is appended to the path's last entry, or a new line
        ``path host(opts)`` is added at the end. Raises :class:`InvalidInput` (document unchanged)
        for a bad path, host or option.
        """
        check_path(path, "path")
        rule_from_options(host, options, "options", "hosts")
        words = _option_words(options)
        new_token = f"{host}({','.join(words)})"
        matches = [c.token for e in self.entries if e.path == path for c in e.clients if c.host == host]
        entries = [e for e in self.entries if e.path == path]
        text = self.text
        if matches:
            for token in sorted(matches, key=lambda t: t.start, reverse=True):
                text = text[: token.start] + new_token + text[token.end :]
        elif entries:
            at = entries[-1].last_token.end
            text = text[:at] + " " + new_token + text[at:]
        else:
            if text and not text.endswith("\n"):
                text += "\n"
            if text.endswith("\\\n"):
                text += "\n"  # a trailing continuation would pull the new line into the last entry
            text += f"{quote_path(path)} {new_token}\n"
        self._commit(text, path, host, words)

    def remove_path(self, path: str) -> bool:
        """Remove every entry exporting ``path`` (its continuation lines and inline comment too).

        Returns whether anything was removed; all other bytes stay as they were.
        """
        spans = [(e.start, e.end) for e in self.entries if e.path == path]
        if not spans:
            return False
        pieces, last = [], 0
        for start, end in spans:
            pieces.append(self.text[last:start])
            last = end
        pieces.append(self.text[last:])
        self._load("".join(pieces))
        return True

    def _commit(self, text: str, path: str, host: str, words: list[str]) -> None:
        """Accept ``text`` only if it reads back with the client where we put it."""
        entries, issues = _scan(text)
        found = [
            c.options
            for e in entries
            if e.path == path
            for c in e.clients
            if c.host == host and not c.bad_syntax
        ]
        if not found or any(options != words for options in found) or len(issues) > len(self.issues):
            raise Conflict(
                f"cannot add {host} to {path} safely: the file's syntax around the insertion point "
                "(an unterminated quote or a broken line) would change its meaning; fix the file first"
            )
        self.text = text
        self.entries, self.issues = entries, issues
        self._newlines = None


def parse(text: str) -> ExportsDocument:
    """Parse exports(5) text; ``parse(text).render() == text``."""
    if not isinstance(text, str):
        raise TypeError("exports text must be str")
    return ExportsDocument(text)


# -- tokenizer ---------------------------------------------------------------------------------
def _gettok(text: str, pos: int) -> tuple[Token, int]:
    """Read one token at ``pos`` like nfs-utils' ``xgettok``; return it and the next position.

    The whitespace that ends a token is consumed, except a newline.
    """
    n = len(text)
    start = pos
    buf: list[str] = []
    quoted = False
    raw_end = n
    while True:
        match = (_RUN_QUOTED if quoted else _RUN_PLAIN).match(text, pos)
        if match:
            buf.append(match.group())
            pos = match.end()
        if pos >= n:
            raw_end = n
            break
        char = text[pos]
        if char == '"':
            quoted = not quoted
            pos += 1
            continue
        if char == "\\":
            if pos + 1 < n and text[pos + 1] == "\n":
                raw_end = pos
                pos = _BLANKS.match(text, pos + 2).end()
                if quoted:
                    buf.append(" ")
                    continue
                break
            buf.append("\\")
            pos += 1
            continue
        # whitespace outside quotes
        raw_end = pos
        if char != "\n":
            pos += 1
        break
    value = "".join(buf)
    if "\\" in value:
        value = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), value)
    return Token(value, start, raw_end, unterminated=quoted), pos


def _split_opts(text: str) -> list[str]:
    """Split an option list the way ``parseopts`` does (blanks skipped before each word)."""
    if not text.strip(" \t"):
        return []
    words = [word.lstrip(" \t") for word in text.lstrip(" \t").split(",")]
    if words and words[-1] == "":
        words.pop()
    return words


def _client(token: Token) -> Client:
    value = token.value
    paren = value.find("(")
    if paren < 0:
        return Client(value, None, token)
    host, inner = value[:paren], value[paren + 1 :]
    close = inner.find(")")
    bad = close != len(inner) - 1
    if close >= 0:
        inner = inner[:close]
    return Client(host, _split_opts(inner), token, bad_syntax=bad)


def _scan(text: str) -> tuple[list[Entry], list[Issue]]:
    """Entries and issues of ``text``; texts without quotes, backslashes, CR/VT/FF or NUL (almost
    all real files) take a line-by-line path that gives the same result faster."""
    if _COMPLEX.search(text) is None:
        entries = _scan_simple(text)
        issues = [
            Issue(client.token.start, client.token.value, _BAD_OPTIONS)
            for entry in entries
            for client in entry.clients
            if client.bad_syntax
        ]
        return entries, issues
    return _scan_general(text)


def _scan_simple(text: str) -> list[Entry]:
    """:func:`_scan_general` for texts without ``"``, ``\\``, CR, VT, FF or NUL: no continuations
    or quotes, so an entry is one physical line of blank-separated tokens, and a token starting
    with '#' comments out the rest of its line."""
    entries: list[Entry] = []
    entry: Optional[Entry] = None
    line_start = 0
    leading = False
    for match in _SIMPLE_TOKEN.finditer(text):
        value = match.group()
        first = value[0]
        if first == "\n":
            if entry is not None:
                entry.end = match.end()
                entries.append(entry)
                entry = None
            line_start = match.end()
            continue
        if first == "#":
            continue
        start, end = match.span()
        if entry is None:
            entry = Entry(value, Token(value, start, end), line_start, len(text))
            leading = True
            continue
        token = Token(value, start, end)
        if leading and first == "-":
            entry.defaults = _split_opts(value[1:])
            entry.defaults_token = token
        else:
            entry.clients.append(_client(token))
        leading = False
    if entry is not None:
        entries.append(entry)
    return entries


def _scan_general(text: str) -> tuple[list[Entry], list[Issue]]:
    entries: list[Entry] = []
    issues: list[Issue] = []
    n = len(text)
    pos = 0
    prev_end = 0
    while True:
        pos = _SKIP_PATH.match(text, pos).end()
        if pos >= n:
            break
        path_token, pos = _gettok(text, pos)
        if path_token.value == "":
            what = text[path_token.start]
            if what in "\r\x0b\x0c":
                problem = (
                    f"is a {_char_name(what)} where a path should start; exportfs silently stops "
                    "reading the file there (CRLF line endings do this on a blank line)"
                )
            else:
                problem = "is an empty quoted path; exportfs silently stops reading the file there"
            issues.append(Issue(path_token.start, text[path_token.start : max(pos, path_token.start + 1)], problem))
            pos = max(pos, path_token.start + 1)
            continue
        line_start = text.rfind("\n", 0, path_token.start) + 1
        entry = Entry(path_token.value, path_token, start=max(line_start, prev_end), end=n)
        if path_token.unterminated:
            issues.append(Issue(path_token.start, path_token.value, "has an unterminated double quote"))
        first = True
        while True:
            pos = _SKIP_CLIENT.match(text, pos).end()
            if pos >= n:
                entry.end = n
                break
            if text[pos] == "\n":
                entry.end = pos + 1
                pos += 1
                break
            token, pos = _gettok(text, pos)
            if token.value == "":
                # a lone CR/VT/FF or "" ends the entry where it stands
                rest = _REST_OF_LINE.match(text, pos)
                entry.end = pos = rest.end() if rest else pos
                break
            if token.unterminated:
                issues.append(Issue(token.start, token.value, "has an unterminated double quote"))
            if first and token.value.startswith("-"):
                entry.defaults = _split_opts(token.value[1:])
                entry.defaults_token = token
            else:
                client = _client(token)
                if client.bad_syntax:
                    issues.append(Issue(token.start, token.value, _BAD_OPTIONS))
                entry.clients.append(client)
            first = False
        entries.append(entry)
        prev_end = entry.end
    return entries, issues


_BAD_OPTIONS = "is a syntax error: bad option list (a client is host(options) with nothing after ')')"


def _char_name(char: str) -> str:
    return {"\r": "carriage return", "\x0b": "vertical tab", "\x0c": "form feed"}.get(char, repr(char))


# -- writing -----------------------------------------------------------------------------------
def quote_path(path: str) -> str:
    """A path as an exports(5) token: double-quoted when it holds whitespace or '#'.

    Quotes, backslashes and newlines cannot be written safely and raise :class:`InvalidInput`
    (validated paths never hold them).
    """
    if '"' in path or "\\" in path or "\n" in path:
        raise InvalidInput("path", path, "cannot be written to an exports file (it holds a quote, backslash or newline)")
    if _NEEDS_QUOTES.search(path):
        return f'"{path}"'
    return path


def render_export_line(export: Export) -> str:
    """One exports(5) line for ``export``: ``path host(opts) host(opts)...\\n``."""
    if not export.rules:
        raise InvalidInput("clients", export.path, "is empty; an exports line without clients exports to every host")
    parts = [quote_path(export.path)]
    for rule in export.rules:
        parts.append(f"{rule.host}({','.join(rule.to_options())})")
    return " ".join(parts) + "\n"


def _option_words(options: object) -> list[str]:
    if options is None:
        return []
    if isinstance(options, str):
        words = options.split(",")
    else:
        words = list(options)  # type: ignore[call-overload]
    return [w.strip() for w in words if isinstance(w, str) and w.strip()]


# -- typed view --------------------------------------------------------------------------------
@functools.lru_cache(maxsize=65536)
def _words_rule(words: tuple[str, ...]) -> ClientRule:
    """The rule for these option words (the host plays no part in parsing options)."""
    return rule_from_options("localhost", list(words), "options", "hosts")


@functools.lru_cache(maxsize=65536)
def _checked_host(host: str) -> str:
    return check_host(host, "host")


def _rule_for(host: str, words: tuple[str, ...]) -> ClientRule:
    """``rule_from_options(host, words)``, cached by parts: files repeat option lists a lot."""
    _checked_host(host)
    rule = _words_rule(words)
    return ClientRule(host, rule.access, rule.squash, rule.sec, rule.anonuid, rule.anongid, rule.options)


def parse_exports_model(text: str, field: str = "exports") -> dict[str, Export]:
    """The typed view of an exports text: ``{path: Export}`` (a path on several lines merges).

    Strict: syntax errors, spots where ``exportfs`` stops reading, clients without a host (the
    ``host (rw)`` mistake) or paths without clients (both export to every host), options the
    model refuses, and a host given twice for one path raise :class:`InvalidInput` whose field
    names the line, e.g. ``exports line 3 options[1]``.
    """
    fast = _model_fast(text)
    if fast is not None:
        return fast
    return _model_general(text, field)


def _model_fast(text: str) -> Optional[dict[str, Export]]:
    """:func:`_model_general` for the common shape (what our backend writes): simple text, every
    client ``host(options)``, no ``-defaults``. Returns None whenever anything else is seen, or
    anything is wrong, so the general path decides (and words the error)."""
    if _COMPLEX.search(text) is not None:
        return None
    result: dict[str, list[ClientRule]] = {}
    seen: dict[str, set[str]] = {}
    for line in text.split("\n"):
        tokens = _FAST_TOKENS.findall(line)
        if not tokens or tokens[0][0] == "#":
            continue
        path = tokens[0]
        clients = []
        for token in tokens[1:]:
            if token[0] == "#":
                break
            paren = token.find("(")
            if paren <= 0 or token.find(")") != len(token) - 1 or token[0] == "-":
                return None
            inner = token[paren + 1 : -1]
            words = inner.split(",") if inner else []
            if words and words[-1] == "":
                words.pop()
            clients.append((token[:paren], tuple(words)))
        if not clients:
            return None
        if path not in result:
            if not (len(path) <= 4096 and _PLAIN_PATH.fullmatch(path)):
                try:
                    check_path(path, "path")
                except InvalidInput:
                    return None
            result[path] = []
            seen[path] = set()
        rules, hosts = result[path], seen[path]
        for host, words in clients:
            if host in hosts:
                return None
            hosts.add(host)
            try:
                rules.append(_rule_for(host, words))
            except InvalidInput:
                return None
    return {path: Export(path=path, rules=tuple(rules)) for path, rules in result.items()}


def _model_general(text: str, field: str) -> dict[str, Export]:
    doc = parse(text)
    if doc.issues:
        issue = doc.issues[0]
        raise InvalidInput(f"{field} line {doc.line_of(issue.offset)}", issue.value, issue.problem)
    result: dict[str, list[ClientRule]] = {}
    seen: dict[str, dict[str, Client]] = {}
    for entry in doc.entries:
        if entry.path not in result and not (len(entry.path) <= 4096 and _PLAIN_PATH.fullmatch(entry.path)):
            try:
                check_path(entry.path, "path")
            except InvalidInput as exc:
                raise InvalidInput(f"{field} line {doc.line_of(entry.path_token.start)} path", exc.value, exc.problem) from None
        rules = result.setdefault(entry.path, [])
        hosts = seen.setdefault(entry.path, {})
        if not entry.clients:
            raise InvalidInput(
                f"{field} line {doc.line_of(entry.path_token.start)} clients",
                entry.path,
                "has no client, so exportfs exports it to every host; give host(options)",
            )
        for client in entry.clients:
            if client.options is None:
                words = entry.defaults
            elif entry.defaults:
                words = merge_options(entry.defaults, client.options)
            else:
                words = client.options
            try:
                rule = _rule_for(client.host, tuple(words))
            except InvalidInput:
                _explain(entry, client, f"{field} line", doc)
                raise
            if client.host in hosts:
                first = doc.line_of(hosts[client.host].token.start)
                raise InvalidInput(
                    f"{field} line {doc.line_of(client.token.start)} host",
                    client.host,
                    f"is given twice for {entry.path} (first on line {first})",
                )
            hosts[client.host] = client
            rules.append(rule)
    return {path: Export(path=path, rules=tuple(rules)) for path, rules in result.items()}


def _explain(entry: Entry, client: Client, prefix: str, doc: ExportsDocument) -> None:
    """Re-run the checks part by part so the error names the token that is wrong."""
    line = doc.line_of(client.token.start)
    if client.host == "":
        raise InvalidInput(
            f"{prefix} {line} host",
            client.token.value,
            "has no host before '(' (is there a space in 'host (options)'?); exportfs exports it to every host",
        )
    check_host(client.host, f"{prefix} {line} host")
    if entry.defaults_token is not None:
        where = f"{prefix} {doc.line_of(entry.defaults_token.start)} -defaults"
        _check_words(entry.defaults, where)
        rule_from_options(client.host, entry.defaults, where)
    if client.options:
        _check_words(client.options, f"{prefix} {line} options")
        rule_from_options(client.host, client.options, f"{prefix} {line} options")
    words = list(entry.defaults) if client.options is None else merge_options(entry.defaults, client.options)
    rule_from_options(client.host, words, f"{prefix} {line} options")


def _check_words(words: Iterable[str], where: str) -> None:
    for index, word in enumerate(words):
        if word == "" or word != word.strip():
            raise InvalidInput(f"{where}[{index}]", word, "is not an exports(5) option (empty, or blanks around it)")


# -- files -------------------------------------------------------------------------------------
def _version_key(name: str) -> list:
    """Sort key close to glibc's versionsort(), which exportfs uses for exports.d."""
    parts = re.split(r"(\d+)", name)
    return [int(part) if index % 2 else part for index, part in enumerate(parts)]


def exports_d_files(exports_d: str) -> list[str]:
    """The files ``exportfs`` reads from ``exports_d``, in its order: ``*.exports`` names that
    do not start with '.', regular files or links, sorted like versionsort()."""
    try:
        with os.scandir(exports_d) as listing:
            names = []
            for item in listing:
                name = item.name
                if name.startswith(".") or len(name) <= len(".exports") or not name.endswith(".exports"):
                    continue
                if not (item.is_file(follow_symlinks=False) or item.is_symlink()):
                    continue
                names.append(name)
    except FileNotFoundError:
        return []
    return [os.path.join(exports_d, name) for name in sorted(names, key=_version_key)]


def read_text(path: str) -> str:
    """Read an exports file as text, keeping undecodable bytes (surrogateescape)."""
    with open(path, "rb") as handle:
        return handle.read().decode("utf-8", "surrogateescape")


def read_exports_files(exports_file: Optional[str] = "/etc/exports", exports_d: Optional[str] = "/etc/exports.d") -> dict[str, list[dict]]:
    """``list_exports`` over ``exports_file`` then ``exports_d/*.exports`` (exportfs' order).

    A missing file or directory counts as empty; ``None`` skips it.
    """
    files = []
    if exports_file:
        files.append(exports_file)
    if exports_d:
        files.extend(exports_d_files(exports_d))
    result: dict[str, list[dict]] = {}
    for name in files:
        try:
            text = read_text(name)
        except FileNotFoundError:
            continue
        for path, clients in parse(text).list_exports().items():
            result.setdefault(path, []).extend(clients)
    return result
