"""Hypothesis strategies for exports(5): hosts, option words, structured exports, and whole files
generated from a grammar together with the listing they mean. Shared by the unit round-trip tests
and the functional tests that compare with the real exportfs."""
import string

from hypothesis import strategies as st

from nfskit.model import Export, merge_options, rule_from_options

# -- hosts and options -------------------------------------------------------------------------
octet = st.integers(0, 255)
ipv4 = st.tuples(octet, octet, octet, octet).map(lambda t: ".".join(map(str, t)))
ipv4_cidr = st.tuples(ipv4, st.integers(0, 32)).map(lambda t: f"{t[0]}/{t[1]}")
ipv4_mask = st.tuples(ipv4, st.integers(0, 32)).map(
    lambda t: f"{t[0]}/" + ".".join(str((((1 << 32) - 1) << (32 - t[1]) & 0xFFFFFFFF) >> s & 255) for s in (24, 16, 8, 0))
)
hextet = st.integers(0, 0xFFFF).map(lambda n: format(n, "x"))
ipv6_full = st.lists(hextet, min_size=8, max_size=8).map(":".join)
ipv6_short = st.tuples(st.lists(hextet, max_size=3), st.lists(hextet, max_size=3)).map(
    lambda t: ":".join(t[0]) + "::" + ":".join(t[1])
)
ipv6_prefix = st.tuples(st.one_of(ipv6_full, ipv6_short), st.integers(0, 128)).map(lambda t: f"{t[0]}/{t[1]}")
label = st.tuples(st.sampled_from(string.ascii_lowercase), st.text(string.ascii_lowercase + string.digits + "-", max_size=7)).map(
    lambda t: (t[0] + t[1]).rstrip("-")
)
hostname = st.lists(label, min_size=1, max_size=4).map(".".join)
wildcard = st.one_of(
    st.just("*"),
    label.map(lambda l: f"*.{l}.example.com"),
    label.map(lambda l: f"{l}[0-9].lab.example"),
    label.map(lambda l: f"{l}?.example.org"),
)
netgroup = label.map(lambda l: "@" + l)
HOSTS = st.one_of(ipv4, ipv4_cidr, ipv4_mask, ipv6_full, ipv6_short, ipv6_prefix, hostname, wildcard, netgroup)

GROUPS = [
    ["rw", "ro"],
    ["sync", "async"],
    ["secure", "insecure"],
    ["root_squash", "no_root_squash"],
    ["all_squash", "no_all_squash"],
    ["wdelay", "no_wdelay"],
    ["hide", "nohide"],
    ["subtree_check", "no_subtree_check"],
    ["secure_locks", "insecure_locks", "auth_nlm", "no_auth_nlm"],
    ["acl", "no_acl"],
    ["pnfs", "no_pnfs"],
    ["crossmnt", "nocrossmnt"],
    ["security_label"],
    ["rdirplus", "nordirplus"],
]
VALUES = st.one_of(
    st.lists(st.sampled_from(["sys", "krb5", "krb5i", "krb5p"]), min_size=1, max_size=4, unique=True).map(
        lambda f: "sec=" + ":".join(f)
    ),
    st.integers(-(2**31), 2**32 - 1).map(lambda n: f"anonuid={n}"),
    st.integers(0, 2**32 - 1).map(lambda n: f"anongid={n}"),
    st.one_of(st.just("root"), st.integers(0, 99999).map(str)).map(lambda v: f"fsid={v}"),
)


@st.composite
def option_words(draw):
    words = [draw(st.sampled_from(group)) for group in GROUPS if draw(st.booleans())]
    seen = set()
    for word in draw(st.lists(VALUES, max_size=3)):
        key = word.split("=")[0]
        if key not in seen:
            seen.add(key)
            words.append(word)
    return draw(st.permutations(words))


@st.composite
def exports(draw, spaces=True):
    """``{path: Export}`` built through the model (so rules are canonical)."""
    alphabet = string.ascii_letters + string.digits + "_-+" + (" " if spaces else "")
    component = st.text(alphabet, min_size=1, max_size=10).filter(
        lambda c: c not in (".", "..")
    )
    paths = draw(st.lists(st.lists(component, min_size=1, max_size=4).map(lambda c: "/" + "/".join(c)), min_size=1, max_size=5, unique=True))
    result = {}
    for path in paths:
        hosts = draw(st.lists(HOSTS, min_size=1, max_size=4, unique=True))
        rules = tuple(rule_from_options(host, draw(option_words())) for host in hosts)
        result[path] = Export(path=path, rules=rules)
    return result


# -- text grammar --------------------------------------------------------------------------------
BLANKS = st.text(" \t", max_size=3)
SEP = st.one_of(
    st.text(" \t", min_size=1, max_size=3),
    st.tuples(st.text(" \t", max_size=2), st.text(" \t", max_size=4)).map(lambda t: t[0] + "\\\n" + t[1]),
)
COMMENT_TEXT = st.text(st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)), max_size=15)
PATH_CHARS = string.ascii_letters + string.digits + "_-.#"


@st.composite
def path_and_spelling(draw, root=""):
    """(path, how the file spells it): plain, quoted, with \\040 escapes, or quoted in part."""
    part = st.text(PATH_CHARS + " ", min_size=1, max_size=8).filter(lambda p: p.strip(".") != "")
    parts = draw(st.lists(part, min_size=1, max_size=3))
    path = root + "/" + "/".join(parts)
    style = draw(st.sampled_from(["plain", "quoted", "octal", "partial"]))
    if " " in path and style == "plain":
        style = "quoted"
    if style == "quoted":
        return path, f'"{path}"'
    if style == "octal":
        return path, path.replace(" ", "\\040")
    if style == "partial" and " " in path:
        head, _, tail = path.partition(" ")
        return path, f'{head}" {tail}"'
    return path, path


@st.composite
def option_text(draw):
    words = draw(st.lists(st.sampled_from(["rw", "ro", "sync", "async", "no_subtree_check", "all_squash", "anonuid=7", "sec=krb5p"]), max_size=4))
    return words


NO_DNS_HOSTS = st.one_of(ipv4_cidr, ipv6_prefix, wildcard, netgroup)
GRAMMAR_HOSTS = st.one_of(ipv4, ipv4_cidr, ipv6_prefix, hostname, wildcard, netgroup)


@st.composite
def client(draw, hosts=GRAMMAR_HOSTS):
    host = draw(hosts)
    if draw(st.booleans()):
        return host, None, host
    words = draw(option_text())
    spelled = ",".join(words)
    return host, words, f"{host}({spelled})"


@st.composite
def document(draw, root="", hosts=GRAMMAR_HOSTS, unique_hosts=False):
    """(text, expected listing) from a grammar of exports(5) files.

    ``root`` prefixes every path; ``unique_hosts`` keeps a host to one client per path.
    """
    crlf = draw(st.booleans())
    lines, expected = [], {}
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["blank", "comment", "entry", "entry", "entry"]))
        if kind == "blank":
            lines.append(("blank", draw(BLANKS)))
        elif kind == "comment":
            lines.append(("comment", draw(BLANKS) + "#" + draw(COMMENT_TEXT)))
        else:
            path, spelled = draw(path_and_spelling(root))
            text = draw(BLANKS) + spelled
            defaults = []
            if draw(st.booleans()):
                defaults = draw(option_text())
                text += draw(SEP) + "-" + ",".join(defaults)
            clients = draw(st.lists(client(hosts), min_size=1, max_size=4))
            if unique_hosts:
                taken = {c["hosts"] for c in expected.get(path, [])}
                clients = [c for c in clients if c[0] not in taken and not taken.add(c[0])]
                if not clients:
                    continue
            for host, words, token in clients:
                text += draw(SEP) + token
            text += draw(BLANKS)
            if draw(st.booleans()):
                text += draw(st.sampled_from([" ", "\t"])) + "#" + draw(COMMENT_TEXT)
            elif draw(st.booleans()):
                text += draw(SEP) + "#" + draw(COMMENT_TEXT)
            lines.append(("entry", text))
            listing = expected.setdefault(path, [])
            for host, words, _ in clients:
                options = list(defaults) if words is None else merge_options(defaults, words)
                listing.append({"hosts": host, "options": options})
    eol = "\r\n" if crlf else "\n"
    out = []
    for index, (kind, text) in enumerate(lines):
        if crlf and "\\\n" in text:
            text = text.replace("\\\n", " ")  # a continuation needs a bare LF
        end = eol if kind != "blank" else "\n"
        if index == len(lines) - 1 and draw(st.booleans()):
            end = ""
        out.append(text + end)
    return "".join(out), expected


