"""`guestgate ... --help` at 80 columns: classic metavars, usage lines, no cut words, paragraphs that flow."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import pytest
import typer
from typer.testing import CliRunner

from guestgate.cli import app
from guestgate.durations import DurationError, format_duration, parse_duration

WIDTH = 80


def command_paths() -> Iterator[list[str]]:
    """Every group and command of the `guestgate` app, as argument lists."""
    root = typer.main.get_command(app)

    def walk(command: object, path: list[str]) -> Iterator[list[str]]:
        yield path
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, [*path, name])

    yield from walk(root, [])


def render(path: list[str], width: int = WIDTH) -> str:
    result = CliRunner().invoke(
        app, [*path, "--help"], prog_name="guestgate", env={"COLUMNS": str(width), "TERMINAL_WIDTH": str(width)}
    )
    assert result.exit_code == 0, result.output
    return result.output


PATHS = list(command_paths())


def test_every_command_is_covered() -> None:
    names = {" ".join(p) for p in PATHS}
    assert {"serve", "token create", "token inspect", "org list", "gateway entry-url", "agent"} <= names


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) or "guestgate" for p in PATHS])
def test_help_fits_80_columns_without_type_tags_or_cut_words(path: list[str]) -> None:
    text = render(path)
    for line in text.splitlines():
        assert len(line) <= WIDTH, line
    assert not re.search(r"<(bool|str|int|float|path|list|int range|float range)[^>]*>", text), text
    assert "\u2026" not in text, text  # rich's ellipsis: a word cut off
    assert "[x>=" not in text and "<=x<=" not in text, text
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert "{" not in usage and "}" not in usage, usage


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) or "guestgate" for p in PATHS])
def test_description_paragraphs_wrap_only_where_the_width_ends(path: list[str]) -> None:
    lines = render(path).splitlines()
    start = next(i for i, line in enumerate(lines) if "Usage:" in line) + 1
    end = next((i for i, line in enumerate(lines) if line.startswith("╭")), len(lines))
    paragraph: list[str] = []
    for line in [*lines[start:end], ""]:
        if line.strip():
            paragraph.append(line.strip())
            continue
        for current, following in itertools.pairwise(paragraph):
            # A line may end early only if the next word would not have fitted (78 = 80 - padding).
            assert len(current) + 1 + len(following.split()[0]) > WIDTH - 2, (current, following)
        paragraph = []


def test_usage_lines_name_arguments_by_metavar() -> None:
    assert "Usage: guestgate gateway apply [OPTIONS] SITE_ID" in render(["gateway", "apply"])
    assert "Usage: guestgate token inspect [OPTIONS] TOKEN" in render(["token", "inspect"])


def test_options_show_their_metavars_and_flags_none() -> None:
    create = render(["token", "create"])
    assert re.search(r"--org\s+ORG\s", create) and re.search(r"--ttl\s+DURATION\s", create)
    assert re.search(r"--create-org\s+Create the org", create)
    assert "default 30d" in " ".join(create.split())
    serve = render(["serve"])
    assert re.search(r"--banner\s+--no-banner\s+Print", serve)
    assert re.search(r"--data-dir\s+DIR\s", serve)
    agent = render(["agent"])
    assert "GUESTGATE_PUBLIC_URL" in agent and re.search(r"--portal-port\s+PORT\s", agent)
    assert "(1..65535)" in agent


def test_serve_help_keeps_the_shutdown_sentence_whole() -> None:
    flowing = " ".join(render(["serve"]).split())
    assert "lets the requests in flight finish (up to GUESTGATE_SHUTDOWN_TIMEOUT_SECONDS), finishes" in flowing


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("3600", 3600), ("90m", 5400), ("12h", 43200), ("30d", 2592000), ("1h30m", 5400), ("2w", 1209600), (" 1D ", 86400)],
)
def test_durations_parse(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30x", "h", "1.5h", "-5", "12 h", "1h 30m", "99999999999999"])
def test_malformed_durations_say_what_is_accepted(text: str) -> None:
    with pytest.raises(DurationError, match=r"give seconds|longer than the maximum"):
        parse_duration(text)


def test_durations_have_bounds() -> None:
    with pytest.raises(DurationError, match="shorter than the minimum of 1m"):
        parse_duration("59", minimum=60)
    with pytest.raises(DurationError, match="longer than the maximum of 3650d"):
        parse_duration("3651d")
    assert (format_duration(2592000), format_duration(5400), format_duration(59)) == ("30d", "1h 30m", "59s")


def test_ttl_option_takes_durations() -> None:
    bad = CliRunner().invoke(app, ["token", "create", "--org", "a", "--ttl", "30x"])
    assert bad.exit_code == 2 and "'30x' is not a duration" in bad.output
