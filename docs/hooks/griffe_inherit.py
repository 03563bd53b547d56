"""A Griffe extension for the API reference: a method without a docstring that overrides a
documented one shows the docstring it overrides, as Python's ``help()`` does (``Conv2D.get_config``
shows ``Layer.get_config``'s). tests/test_site.py holds the code to the same rule."""

from __future__ import annotations

from typing import Any

import griffe


def _classes(obj: griffe.Object) -> list[griffe.Class]:
    found = []
    for member in obj.members.values():
        if member.is_alias:
            continue
        if member.is_class:
            found.append(member)
        if member.is_module or member.is_class:
            found.extend(_classes(member))
    return found


class InheritDocstrings(griffe.Extension):
    """Give undocumented overrides the docstring of the member they override."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        for cls in _classes(pkg):
            try:
                bases = cls.mro()
            except Exception:  # a base outside the package (object, NamedTuple, ...)
                continue
            for name, member in cls.members.items():
                if member.is_alias or member.docstring or name.startswith("_"):
                    continue
                for base in bases:
                    inherited = base.members.get(name)
                    if inherited is not None and not inherited.is_alias and inherited.docstring:
                        member.docstring = griffe.Docstring(
                            inherited.docstring.value, parent=member
                        )
                        break
