"""Debian's ``puppet apply`` over a data repo checkout, with the ``hiera.yaml`` of docs/nfs_runner.md
and the stand-in for treydock/puppet-nfs in tests/fixtures/puppet (its README says what it is).

Everything Puppet writes (its own state, the fstab, mount point directories, ``etc/exports``)
stays below ``root``.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Mapping, Optional

import yaml

REPO = Path(__file__).resolve().parents[2]
MODULES = REPO / "tests" / "fixtures" / "puppet" / "modules"
# the site level's data, as docs/nfs_runner.md says: a host gets its node and hostgroup mounts
SITE_DATA = {"lookup_options": {"nfs::nfs_mounts": {"merge": "hash"}}}


def documented_hiera_yaml() -> dict:
    """The ``hiera.yaml`` block of docs/nfs_runner.md."""
    text = (REPO / "docs" / "nfs_runner.md").read_text()
    blocks = re.findall(r"```yaml\n(version: 5\n.*?)```", text, re.S)
    if len(blocks) != 1:
        raise AssertionError(f"docs/nfs_runner.md should show one hiera.yaml, not {len(blocks)}")
    return yaml.safe_load(blocks[0])


def apply(root: Path, datadir: Path, node: str, facts: Optional[Mapping[str, str]] = None) -> subprocess.CompletedProcess:
    """``puppet apply`` of class nfs for ``node`` (its certname), hiera data from ``datadir``."""
    for sub in ("etc", "puppet/data"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    fstab = root / "etc" / "fstab"
    if not fstab.exists():
        fstab.write_text("")
    conf = root / "puppet"
    hiera = documented_hiera_yaml()
    hiera["hierarchy"][0]["datadir"] = str(datadir)
    (conf / "hiera.yaml").write_text(yaml.safe_dump(hiera))
    (conf / "data" / hiera["hierarchy"][1]["path"]).write_text(yaml.safe_dump(SITE_DATA))
    dirs = [f"--{name}dir={conf / name}" for name in ("conf", "var", "code", "log", "run")]
    env = dict(os.environ, **{f"FACTER_{name}": value for name, value in (facts or {}).items()})
    manifest = f"class {{ 'nfs': root => '{root}', fstab => '{fstab}' }}"
    return subprocess.run(
        ["puppet", "apply", "--color=false", "--detailed-exitcodes", *dirs, f"--certname={node}",
         f"--hiera_config={conf / 'hiera.yaml'}", f"--modulepath={MODULES}:/usr/share/puppet/modules", "-e", manifest],
        capture_output=True, text=True, env=env, timeout=180,
    )


def errors(proc: subprocess.CompletedProcess) -> list[str]:
    """What went wrong in a run: ``[]`` when Puppet applied the catalog.

    ``--detailed-exitcodes``: 0 no changes, 2 changes, 4 and 6 failures. Facter's complaints about
    /proc/1/environ (unreadable in a container) are not Puppet's verdict.
    """
    lines = [line for line in proc.stderr.splitlines() if "Error" in line and "/proc/1/environ" not in line]
    if proc.returncode not in (0, 2) and not lines:
        lines = [f"puppet apply exited {proc.returncode}"]
    return lines
