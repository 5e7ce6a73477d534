"""The git command line for tests: run git, fail loudly, return what it printed."""
import subprocess


def git(*args: str, cwd) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout
