"""The public import surface is exactly what ``__all__`` says (as httpx's test_exported_members)."""

from __future__ import annotations

import inspect

import pytest

import facade
import facade.aio

EXTRA_PUBLIC = {"__version__"}


def public_names(module) -> set[str]:
    # Submodules (facade.errors, facade.keys, ...) are reachable, but the surface is what they export.
    return {
        name
        for name, value in vars(module).items()
        if (not name.startswith("_") or name in EXTRA_PUBLIC) and not inspect.ismodule(value)
    }


@pytest.mark.parametrize("module", [facade, facade.aio], ids=lambda m: m.__name__)
def test_all_is_exactly_the_public_names(module):
    assert len(module.__all__) == len(set(module.__all__)), "duplicates in __all__"
    exported_modules = {name for name in module.__all__ if inspect.ismodule(getattr(module, name, None))}
    assert set(module.__all__) == public_names(module) | exported_modules


def test_public_modules_say_what_they_export():
    for name in ("acl", "benchmark", "exporter", "local", "tracing"):
        module = getattr(facade, name)
        assert name in facade.__all__ and module.__name__ == f"facade.{name}"
        assert (module.__doc__ or "").strip() and module.__all__
        for member in module.__all__:
            assert hasattr(module, member), f"facade.{name}.{member}"


@pytest.mark.parametrize("module", [facade, facade.aio], ids=lambda m: m.__name__)
def test_every_exported_name_has_a_docstring(module):
    for name in module.__all__:
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert (value.__doc__ or "").strip(), f"{module.__name__}.{name} has no docstring"


def test_aio_twins_have_the_same_names_and_are_async():
    for name in facade.aio.__all__:
        sync, aio = getattr(facade, name), getattr(facade.aio, name)
        assert sync is not aio
        assert sync.__name__ == aio.__name__ == name
        assert aio.__module__.startswith("facade._async.")
        assert sync.__module__.startswith("facade._sync.")
    assert inspect.iscoroutinefunction(facade.aio.Producer.send) or inspect.iscoroutinefunction(
        facade.aio.Producer.flush
    )


def test_errors_are_all_exported():
    import facade.errors

    exported = set(facade.__all__)
    for name in facade.errors.__all__:
        if name != "from_redis":
            assert name in exported, f"facade.errors.{name} is missing from facade.__all__"


def test_version_matches_the_distribution():
    from importlib.metadata import version

    assert facade.__version__ == version("facade")
