"""No module over ~400 lines unless it says why it is one thing (issue 11).

Every .py under firmware/ and host/samband longer than LIMIT lines must say,
in its first HEAD lines (its header comment or docstring), a paragraph that
starts with "One module:" and says what would be lost by splitting it. A long
module that does not is either two things to split at their seam or one
thing that has not said why.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = (ROOT / "firmware", ROOT / "host" / "samband")
LIMIT = 420  # lines; "about 400", with room for a module that grows by a few
HEAD = 60  # the lines the reason must be in: where a reader starts
MARK = "One module:"


def scan(roots: tuple[Path, ...]) -> tuple[list[Path], list[tuple[Path, int]]]:
    """(every module looked at, the long ones without a reason as (path, lines))."""
    seen, unexplained = [], []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            seen.append(path)
            lines = path.read_text(encoding="utf-8").splitlines()
            if len(lines) > LIMIT and not any(MARK in line for line in lines[:HEAD]):
                unexplained.append((path, len(lines)))
    return seen, unexplained


def message(unexplained: list[tuple[Path, int]], base: Path) -> str:
    return "\n".join(
        f"{path.relative_to(base)}: {n} lines (over {LIMIT}) and no {MARK!r} in its first {HEAD} lines: "
        f"split it at its seam, or say in its header why it is one thing" for path, n in unexplained)


def test_every_long_module_says_why_it_is_one_thing() -> None:
    seen, unexplained = scan(SCANNED)
    # the scan looked where the code is (a wrong root would find nothing and pass)
    assert ROOT / "firmware" / "hub" / "journal.py" in seen
    assert ROOT / "host" / "samband" / "cli" / "__init__.py" in seen
    assert len(seen) > 100, f"only {len(seen)} modules found under {[str(r) for r in SCANNED]}"
    assert not unexplained, "\n" + message(unexplained, ROOT)


def test_the_scan_finds_a_planted_long_module(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg" / "sub"
    pkg.mkdir(parents=True)
    body = ["x = %d" % i for i in range(LIMIT + 1)]
    (pkg / "long.py").write_text("\n".join(["# a long module that does not say why"] + body) + "\n")
    (pkg / "said.py").write_text("\n".join(["# header"] * (HEAD - 1) + ["# " + MARK + " because."] + body) + "\n")
    (pkg / "said_too_late.py").write_text("\n".join(["# header"] * HEAD + ["# " + MARK + " because."] + body) + "\n")
    (pkg / "short.py").write_text("\n".join(body[:LIMIT]) + "\n")
    seen, unexplained = scan((tmp_path,))
    assert len(seen) == 4
    found = {p.name: n for p, n in unexplained}
    assert found == {"long.py": LIMIT + 2, "said_too_late.py": HEAD + 1 + LIMIT + 1}
    text = message(unexplained, tmp_path)
    assert "pkg/sub/long.py: 422 lines" in text and "pkg/sub/said_too_late.py" in text
