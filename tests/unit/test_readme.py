"""The README documents every setting, generated from the Settings class."""

from __future__ import annotations

from pathlib import Path

from guestgate.config import GENERATED_SECRETS, Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def settings_table() -> str:
    """The markdown rows for every GUESTGATE_* setting."""
    rows = []
    for name, field in Settings.model_fields.items():
        shown = field.default
        if name in GENERATED_SECRETS:
            shown = "(generated in development)"
        elif shown is None or shown == "":
            shown = "-"
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `GUESTGATE_{name.upper()}` | `{shown}` | {description} |")
    return "\n".join(rows)


def test_readme_lists_every_setting_with_its_current_description() -> None:
    text = README.read_text()
    start = text.index("| variable | default | meaning |\n|---|---|---|\n") + len(
        "| variable | default | meaning |\n|---|---|---|\n"
    )
    end = text.index("\n<!-- end settings-table -->")
    assert text[start:end] == settings_table(), "regenerate with: python -m tests.unit.test_readme"


if __name__ == "__main__":
    body = README.read_text()
    head = "| variable | default | meaning |\n|---|---|---|\n"
    start = body.index(head) + len(head)
    end = body.index("\n<!-- end settings-table -->")
    README.write_text(body[:start] + settings_table() + body[end:])
