"""Two touches to Typer's help so it reads like the rest of pgallery's messages.

- A flag (``--json``, ``--exact``, ``--help``) takes no value, so its help row shows no
  ``<bool>`` placeholder: Typer 0.2x prints one for every boolean flag.
- Usage lines name arguments as their metavar says (``IMAGE_FILE``, ``PROMPT``), with
  ``[...]`` for optional ones only, instead of Typer's ``{image_file}`` braces.

Both are small overrides of Typer's own parameter classes, applied once on import; on a
Typer without these methods (before 0.2x) there is nothing to change.
"""

from __future__ import annotations

from typer import core

_option_type = getattr(core.TyperOption, "display_type_rich", None)
_argument_usage = getattr(core.TyperArgument, "_usage_display_name", None)


def _flag_has_no_type(self, ctx):
    if getattr(self, "is_flag", False) or getattr(self, "count", False):
        return None
    return _option_type(self, ctx)


def _plain_usage_name(self) -> str:
    name = self.metavar or self.name.upper()
    if not self.required:
        name = f"[{name}]"
    return name + ("..." if self.nargs != 1 else "")


if _option_type is not None:
    core.TyperOption.display_type_rich = _flag_has_no_type
if _argument_usage is not None:
    core.TyperArgument._usage_display_name = _plain_usage_name
