"""Where custom classes and functions are found when a config is deserialized.

Three places are searched, most local first: the active ``custom_object_scope``\\s, the
``custom_objects`` passed to the loading call, and the global registry filled by
``@register_keras_serializable``. A registered object is stored under
``"package>name"`` (Keras' ``registered_name``) and also remembers that name, so its
serialized form names it and it loads back in irtool or Keras with the same registration.

>>> @register_keras_serializable(package="MyLayers")
... class Scale:
...     def get_config(self):
...         return {}
>>> get_registered_name(Scale)
'MyLayers>Scale'
>>> get_registered_object("MyLayers>Scale") is Scale
True
"""

from __future__ import annotations

import inspect
import threading

_GLOBAL_CUSTOM_OBJECTS: dict = {}
_GLOBAL_CUSTOM_NAMES: dict = {}


class _ScopeStack(threading.local):
    def __init__(self):
        self.scopes: list = []


_scopes = _ScopeStack()


class CustomObjectScope:
    """Make custom classes and functions visible to deserialization inside a ``with`` block.

    >>> class MyLayer: ...
    >>> with CustomObjectScope({"MyLayer": MyLayer}):
    ...     get_registered_object("MyLayer") is MyLayer
    True
    """

    def __init__(self, custom_objects=None, *more):
        merged: dict = {}
        for objects in (custom_objects, *more):
            if objects is None:
                continue
            if not isinstance(objects, dict):
                raise TypeError(f"`custom_objects` must be a dict. Received: {objects!r} of type {type(objects)}")
            merged.update(objects)
        self.custom_objects = merged

    def __enter__(self):
        _scopes.scopes.append(self.custom_objects)
        return self

    def __exit__(self, *exc_info):
        _scopes.scopes.pop()


custom_object_scope = CustomObjectScope


def scoped_custom_objects() -> dict:
    """The objects of every active ``custom_object_scope`` (inner scopes win)."""
    merged: dict = {}
    for objects in _scopes.scopes:
        merged.update(objects)
    return merged


def get_custom_objects() -> dict:
    """The global registry (``{"package>name": object}``); editing it registers objects."""
    return _GLOBAL_CUSTOM_OBJECTS


def register_keras_serializable(package: str = "Custom", name: str | None = None):
    """Class or function decorator: register the object as ``"package>name"`` for loading.

    The object must be a function or a class with a ``get_config`` method.
    """
    if not isinstance(package, str) or ">" in package:
        raise ValueError(f"`package` must be a string without '>'. Received: package={package!r}")

    def decorator(obj):
        serializable_name = name if name is not None else obj.__name__
        registered_name = f"{package}>{serializable_name}"
        if inspect.isclass(obj) and not hasattr(obj, "get_config"):
            raise ValueError(
                f"Cannot register a class that does not have a get_config() method. Received: {obj.__name__}"
            )
        _GLOBAL_CUSTOM_OBJECTS[registered_name] = obj
        _GLOBAL_CUSTOM_NAMES[obj] = registered_name
        return obj

    return decorator


def get_registered_name(obj) -> str:
    """The name ``obj`` is registered under, or its ``__name__`` when it is not registered."""
    try:
        registered = _GLOBAL_CUSTOM_NAMES.get(obj)
    except TypeError:  # an unhashable object
        registered = None
    return registered if registered is not None else obj.__name__


def get_registered_object(name, custom_objects=None, module_objects=None):
    """The object registered or passed under ``name``: scopes, then the global registry,
    then ``custom_objects``, then ``module_objects``; ``None`` when nowhere."""
    if name is None:
        return None
    for objects in (scoped_custom_objects(), _GLOBAL_CUSTOM_OBJECTS, custom_objects or {}, module_objects or {}):
        if name in objects:
            return objects[name]
    return None
