"""Every public function and class has a docstring, and so has every public method of a public
class: the public names are those of the API reference (tests/test_site.py's ``public_names``:
``deltanet.__all__`` and the public names of optim, schedules, data, zoo, binary, distributed,
init, losses, ops, train and io). A method that overrides a documented one may leave its
docstring out: it inherits that one, in ``help()`` and in the site (docs/hooks/griffe_inherit.py).

The style is the package's own: a summary line that says what the object computes or is, then
what it takes (with shapes), what it returns and what it raises, in sentences, with names and
code in double backticks."""

from __future__ import annotations

import inspect

import pytest

from tests.public_api import public_names  # the same names as the API reference

PUBLIC = public_names()


def _own_doc(obj: object) -> str:
    doc = vars(obj).get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    doc = (doc or "").strip()
    if inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("):
        return ""  # the signature that dataclasses and NamedTuple write in place of a docstring
    return doc


def _function(member: object) -> object | None:
    """The function behind a class attribute (method, static/class method, property)."""
    if isinstance(member, property):
        return member.fget
    if isinstance(member, (staticmethod, classmethod)):
        return member.__func__
    return member if inspect.isfunction(member) else None


def _inherits_doc(cls: type, name: str) -> bool:
    """Whether a base class, nearest first, documents ``name`` (as ``inspect.getdoc`` looks)."""
    for base in cls.__mro__[1:]:
        fn = _function(vars(base).get(name))
        if fn is not None and (fn.__doc__ or "").strip():
            return True
    return False


def undocumented_methods(cls: type) -> list[str]:
    """The public methods and properties ``cls`` defines without a docstring of their own or of
    a method they override."""
    missing = []
    for name, member in vars(cls).items():
        fn = _function(member)
        if name.startswith("_") or fn is None or (fn.__doc__ or "").strip():
            continue
        if not _inherits_doc(cls, name):
            missing.append(name)
    return missing


def test_public_names_are_found():
    assert len(PUBLIC) > 200
    assert {
        "deltanet.fit",
        "deltanet.Conv2D",
        "deltanet.optim.Adam",
        "deltanet.init.he_normal",
    } <= set(PUBLIC)


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_name_has_a_docstring(name):
    obj = PUBLIC[name]
    assert _own_doc(obj), f"{name} ({obj.__module__}) has no docstring"
    if inspect.isclass(obj):
        missing = undocumented_methods(obj)
        assert not missing, f"{name}: public methods without a docstring: {missing}"


def test_the_check_sees_what_is_missing():
    class Base:
        def documented(self):
            """Something."""

        def bare(self):
            pass

    class Child(Base):
        def documented(self):  # inherits the docstring: fine
            pass

        @property
        def size(self):
            return 1

    assert undocumented_methods(Base) == ["bare"]
    assert undocumented_methods(Child) == ["size"]
    assert _own_doc(Child) == ""
