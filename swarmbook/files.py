"""Pure planners for file content: given what is there, return what should be there.

Each returns the new content; callers compare with the current content and write only on a
difference (see :func:`swarmbook.ops.put_file`). No I/O here.
"""

from __future__ import annotations

import json
import re
from typing import Any


def with_line(content: str, line: str, *, regexp: str | None = None) -> str:
    """Ensure ``line`` is present; replace the last line matching ``regexp`` if given."""
    lines = content.splitlines()
    if regexp:
        pattern = re.compile(regexp)
        hits = [i for i, existing in enumerate(lines) if pattern.search(existing)]
        if hits:
            lines[hits[-1]] = line
            return "\n".join(lines) + "\n"
    if line in lines:
        return content
    if content and not content.endswith("\n"):
        content += "\n"
    return content + line + "\n"


def without_line(content: str, regexp: str) -> str:
    """Remove every line matching ``regexp``."""
    pattern = re.compile(regexp)
    kept = [ln for ln in content.splitlines() if not pattern.search(ln)]
    return "\n".join(kept) + ("\n" if kept else "")


def with_key_value(content: str, key: str, value: str, *, sep: str = "=", comment: str = "#") -> str:
    """Ensure ``key<sep>value`` (e.g. ``concurrent = 5``); replaces the active or commented key."""
    sep_re = re.escape(sep.strip()) or r"\s"
    active = rf"^\s*{re.escape(key)}\s*{sep_re}"
    commented = rf"^\s*{re.escape(comment)}\s*{re.escape(key)}\s*{sep_re}"
    new_line = f"{key}{sep}{value}"
    lines = content.splitlines()
    if any(re.search(active, ln) for ln in lines):
        return with_line(content, new_line, regexp=active)
    if any(re.search(commented, ln) for ln in lines):
        return with_line(content, new_line, regexp=commented)
    return with_line(content, new_line)


class BadJSON(ValueError):
    pass


def merged_json(content: str, updates: dict[str, Any], drop: tuple[str, ...] = ()) -> str:
    """Merge top-level keys into a JSON object, keeping every other key; stable formatting.

    Keys in ``drop`` are removed. Empty or whitespace content counts as ``{}``; anything that is not a JSON object raises
    BadJSON (the caller refuses: never overwrite a file we cannot read).
    """
    if content.strip():
        try:
            data = json.loads(content)
        except json.JSONDecodeError as exc:
            raise BadJSON(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, dict):
            raise BadJSON("not a JSON object")
    else:
        data = {}
    merged = {k: v for k, v in {**data, **updates}.items() if k not in drop or k in updates}
    if merged == data and content.strip():
        return content
    return json.dumps(merged, indent=2, sort_keys=True) + "\n"
