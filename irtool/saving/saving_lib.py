"""``.keras`` files: Keras 3's zip archive of ``metadata.json``, ``config.json`` and ``model.weights.h5``.

``save_model(model, "m.keras")`` writes what Keras 3 writes: the model's config
(``serialize_keras_object(model)`` plus ``compile_config`` when compiled), the weights and the
optimizer's state in Keras' HDF5 layout (:mod:`irtool.saving.h5_weights`), and metadata, as stored
(uncompressed) members; the archive is written to a temporary file in the target folder and then
renamed, so an interrupted save never leaves a truncated model behind. ``load_model`` reads files
Keras wrote as well as its own. Keras' variants are read and written too: ``zipped=False`` (the
archive's members as files in a folder) and sharded weights (``save_weights("w.weights.json",
max_shard_size=GB)``: an index naming ``w_00000.weights.h5``, ...; loading merges the shards in
memory). Keras' mixed-precision policies load as float32, with one warning per file.

Loading runs no code from the file: classes are looked up by name among irtool's layers and
``custom_objects`` (a ``Lambda`` needs ``safe_mode=False``), and the archive is checked before use:
member names that could escape a folder, members declaring more than :data:`MAX_JSON_BYTES` /
:data:`MAX_WEIGHTS_BYTES` or compressed suspiciously well, JSON nested deeper than
:data:`~irtool.serialization.config_limits.MAX_CONFIG_DEPTH`, missing members, malformed JSON and
malformed or link-bearing HDF5 are refused with a one-line ``ValueError`` naming the file; in a
folder or a shard index, files must be plain names in the folder, regular files (not links) and
within the same size limits.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import posixpath
import warnings
import zipfile
import zlib

import h5py
import numpy as np

from irtool.layers.layer import one_mixed_precision_warning
from irtool.memory import MemoryLimitError
from irtool.saving import h5_weights, legacy_h5
from irtool.saving.h5_weights import open_h5, read_weights, weight_entries, write_atomically, write_weights
from irtool.serialization import config_limits
from irtool.serialization.config_limits import check_json_text
from irtool.serialization.keras_objects import deserialize_keras_object, model_class, serialize_keras_object

__all__ = ["KERAS_FORMAT_VERSION", "load_model", "load_weights", "save_model", "save_weights"]

#: The ``keras_version`` written to ``metadata.json``: the Keras release whose format irtool writes.
KERAS_FORMAT_VERSION = "3.15.1"
CONFIG_FILENAME = "config.json"
METADATA_FILENAME = "metadata.json"
WEIGHTS_FILENAME = "model.weights.h5"
#: Largest ``config.json`` / ``metadata.json`` accepted (uncompressed bytes).
MAX_JSON_BYTES = config_limits.MAX_JSON_BYTES
#: Largest ``model.weights.h5`` accepted (uncompressed bytes).
MAX_WEIGHTS_BYTES = 64 * 2**30
#: A compressed member above 1 MiB may expand at most this much (Keras stores members uncompressed).
MAX_EXPANSION = 100


class ArchiveError(ValueError):
    """A ``.keras`` file that cannot be loaded safely (one line, naming the file and the member)."""


# -- saving -----------------------------------------------------------------------------------------
def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable: {value!r}")


def model_config_json(model) -> str:
    """``config.json``: the serialized model with its ``compile_config`` (``{}`` when not compiled)."""

    config = serialize_keras_object(model)
    if "compile_config" not in config and hasattr(model, "get_compile_config"):
        config["compile_config"] = model.get_compile_config()
    return json.dumps(config, default=_json_default)


def save_model(model, filepath, overwrite: bool = True, zipped=None, **kwargs) -> None:
    """Save ``model`` as a Keras 3 ``.keras`` archive (what ``model.save(filepath)`` does).

    >>> model.save("mnist.keras")                                     # doctest: +SKIP
    >>> restored = irtool.models.load_model("mnist.keras")            # doctest: +SKIP
    """
    kwargs.pop("include_optimizer", None)  # Keras ignores it for .keras files too
    if kwargs.pop("save_format", None) not in (None, "keras"):
        raise ValueError("The `save_format` argument is not supported: pass a file path with a `.keras` extension.")
    if kwargs:
        raise ValueError(f"The following argument(s) are not supported: {list(kwargs)}")
    filepath = os.fspath(filepath)
    if zipped is False:
        if filepath.endswith(".keras"):
            raise ValueError(
                f"When using `zipped=False`, the `filepath` argument should not end in `.keras`. Received: "
                f"filepath={filepath}"
            )
        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(f"{filepath} already exists and overwrite=False.")
        _save_model_to_dir(model, filepath)
        return
    if filepath.endswith((".h5", ".hdf5")):
        raise ValueError(
            "irtool does not write the legacy HDF5 model format (`.h5`). Save with a `.keras` extension (the Keras 3 "
            f"format), or use `model.save_weights('<name>.weights.h5')` for weights only. Received: filepath={filepath}"
        )
    if not filepath.endswith(".keras"):
        raise ValueError(
            "Invalid filepath extension for saving. Please add a `.keras` extension for the native Keras format. Use "
            f"`model.export(filepath)` to export an ONNX file. Received: filepath={filepath}."
        )
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath} already exists and overwrite=False.")
    config_json, metadata_json, weights = _model_files(model)

    def write(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(METADATA_FILENAME, metadata_json)
            archive.writestr(CONFIG_FILENAME, config_json)
            archive.writestr(WEIGHTS_FILENAME, weights.getvalue())
            for name, data in asset_members(model).items():
                archive.writestr(name, data)

    write_atomically(filepath, write)


# Keras' `save_assets`/`load_assets` write and read files in a folder per saveable
# (``assets/layers/string_lookup/vocabulary.txt``); irtool's layers hand over the same files as
# ``{name: bytes}`` (``asset_files``/``load_asset_files``), so nothing touches a temporary folder.
ASSETS_FOLDER = "assets"
MAX_ASSET_BYTES = 1 << 30


def asset_members(model) -> dict:
    """``{archive member name: bytes}`` of every saveable's assets, under its attribute path."""
    members = {}
    for path, obj in weight_entries(model):
        if hasattr(obj, "asset_files"):
            for name, data in obj.asset_files().items():
                members[f"{ASSETS_FOLDER}/{path}/{name}" if path else f"{ASSETS_FOLDER}/{name}"] = data
    return members


def load_assets(model, names: list, read) -> None:
    """Hand each saveable the asset files stored under its path (``read(member) -> bytes``)."""
    for path, obj in weight_entries(model):
        if not hasattr(obj, "load_asset_files"):
            continue
        prefix = f"{ASSETS_FOLDER}/{path}/" if path else f"{ASSETS_FOLDER}/"
        own = [n for n in names if n.startswith(prefix) and "/" not in n[len(prefix) :]]
        if own:
            obj.load_asset_files({n[len(prefix) :]: read(n) for n in own})


def _model_files(model) -> tuple[str, str, io.BytesIO]:
    config_json = model_config_json(model)
    metadata_json = json.dumps(
        {"keras_version": KERAS_FORMAT_VERSION, "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    )
    weights = io.BytesIO()
    with h5py.File(weights, "w") as h5file:
        write_weights(model, h5file)
    return config_json, metadata_json, weights


def _save_model_to_dir(model, folder: str) -> None:
    """``model.save(folder, zipped=False)``: Keras' unzipped layout (the archive's members as files, and
    an empty ``assets`` folder), each file written atomically."""
    config_json, metadata_json, weights = _model_files(model)
    os.makedirs(os.path.join(folder, "assets"), exist_ok=True)
    for name, data in (
        (METADATA_FILENAME, metadata_json.encode()),
        (CONFIG_FILENAME, config_json.encode()),
        (WEIGHTS_FILENAME, weights.getvalue()),
        *asset_members(model).items(),
    ):
        os.makedirs(os.path.dirname(os.path.join(folder, name)), exist_ok=True)
        _write_bytes(os.path.join(folder, name), data)


def _write_bytes(path: str, data: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as file:
            file.write(data)

    write_atomically(path, write)


# -- loading ----------------------------------------------------------------------------------------
def _check_member_names(archive: zipfile.ZipFile, source: str) -> None:
    for info in archive.infolist():
        name = info.filename
        normalized = posixpath.normpath(name.replace("\\", "/"))
        if (
            name.startswith(("/", "\\"))
            or (len(name) > 1 and name[1] == ":")
            or normalized == ".."
            or normalized.startswith("../")
            or "\x00" in name
        ):
            raise ArchiveError(f"{source}: archive member {name!r} has a path that escapes the archive; refusing it")


def _member(archive: zipfile.ZipFile, name: str, limit: int, source: str) -> zipfile.ZipInfo:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ArchiveError(
            f"{source}: the archive has no {name} (members: {archive.namelist()}); is it a Keras 3 `.keras` file?"
        ) from None
    if info.file_size > limit:
        raise ArchiveError(f"{source}: {name} declares {info.file_size:,} bytes, more than the limit of {limit:,}")
    if info.file_size > 2**20 and info.file_size > MAX_EXPANSION * max(info.compress_size, 1):
        raise ArchiveError(
            f"{source}: {name} declares {info.file_size:,} bytes but stores {info.compress_size:,}; refusing a "
            "possible decompression bomb"
        )
    return info


def _read_json(archive: zipfile.ZipFile, name: str, source: str) -> dict:
    info = _member(archive, name, MAX_JSON_BYTES, source)
    try:
        with archive.open(info) as member:
            data = member.read(MAX_JSON_BYTES + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise ArchiveError(f"{source}: {name} is damaged: {error}") from None
    return _parse_json(data, name, source)


def _parse_json(data: bytes, name: str, source: str) -> dict:
    if len(data) > MAX_JSON_BYTES:
        raise ArchiveError(f"{source}: {name} is larger than the limit of {MAX_JSON_BYTES:,} bytes")
    check_json_text(data, f"{source}: {name}", max_bytes=MAX_JSON_BYTES)  # before json.loads recurses into it
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ArchiveError(f"{source}: {name} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ArchiveError(f"{source}: {name} should hold a JSON object, found {type(value).__name__}")
    return value


def _open_archive(filepath: str) -> zipfile.ZipFile:
    if not os.path.exists(filepath):
        raise ValueError(
            f"File not found: filepath={filepath}. Please ensure the file is an accessible `.keras` zip file."
        )
    try:
        archive = zipfile.ZipFile(filepath, "r")
    except zipfile.BadZipFile as error:
        raise ArchiveError(f"{filepath}: not a `.keras` archive (not a valid zip file: {error})") from None
    try:
        _check_member_names(archive, filepath)
        if "model.weights.npz" in archive.namelist() and WEIGHTS_FILENAME not in archive.namelist():
            raise ArchiveError(f"{filepath}: weights stored as model.weights.npz are not supported; save them as HDF5")
    except BaseException:
        archive.close()
        raise
    return archive


def _weights_file(archive: zipfile.ZipFile, source: str):
    """The weights member as a seekable file for h5py (read in place when stored uncompressed)."""
    info = _member(archive, WEIGHTS_FILENAME, MAX_WEIGHTS_BYTES, source)
    if info.compress_type == zipfile.ZIP_STORED:
        return archive.open(info)
    with archive.open(info) as member:  # seeking backwards in a deflated member re-reads it from the start
        return io.BytesIO(member.read(MAX_WEIGHTS_BYTES + 1))


def _load_weights_member(model, archive: zipfile.ZipFile, source: str, skip_mismatch: bool = False) -> None:
    where = f"{source}: {WEIGHTS_FILENAME}"
    try:
        with _weights_file(archive, source) as member, open_h5(member, where) as h5file:
            read_weights(model, h5file, where, skip_mismatch=skip_mismatch)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise ArchiveError(f"{where} is damaged: {error}") from None


def _reraise_with_source(error: Exception, filepath: str, member: str):
    """Raise ``error`` again naming the file and member first. A ``KeyError``/``IndexError``/
    ``AttributeError`` means a config of the wrong shape, so it becomes a ``ValueError``; other
    subclasses (whose constructors may differ) are raised unchanged."""
    if str(error).startswith(filepath):
        raise error
    if type(error) in (ValueError, TypeError, MemoryLimitError):
        raise type(error)(f"{filepath}: {member}: {error}") from error
    if isinstance(error, (KeyError, IndexError, AttributeError)):
        raise ValueError(f"{filepath}: {member}: malformed config ({type(error).__name__}: {error})") from error
    raise error


def load_model(filepath, custom_objects=None, compile: bool = True, safe_mode: bool = True):
    """Load a model saved as a ``.keras`` archive, by irtool or by Keras 3 (``keras.saving.load_model``),
    or the unzipped folder ``model.save(path, zipped=False)`` writes in Keras.

    ``custom_objects`` maps class names to custom layers, losses or metrics; ``compile=False`` skips
    the training configuration; ``safe_mode=False`` allows ``Lambda`` layers, whose code would run.
    Layers with Keras' mixed-precision policies (``mixed_float16``, ``mixed_bfloat16``) load as
    float32, with one warning for the file.
    """
    filepath = os.fspath(filepath)
    if filepath.endswith((".h5", ".hdf5")):
        raise ValueError(
            f"File format not supported: filepath={filepath}. irtool loads Keras 3 `.keras` files; the legacy HDF5 "
            "model format (`.h5`) is not supported (load the model in Keras and save it as `.keras`)."
        )
    if not filepath.endswith(".keras"):
        if os.path.isdir(filepath) and os.path.isfile(os.path.join(filepath, CONFIG_FILENAME)):
            return _load_model_from_dir(filepath, custom_objects, compile, safe_mode)
        raise ValueError(
            f"File format not supported: filepath={filepath}. irtool loads Keras 3 `.keras` files and the folders "
            "Keras writes with `zipped=False`."
        )
    with _open_archive(filepath) as archive:
        if METADATA_FILENAME in archive.namelist():
            _read_json(archive, METADATA_FILENAME, filepath)
        config = _read_json(archive, CONFIG_FILENAME, filepath)
        _member(archive, WEIGHTS_FILENAME, MAX_WEIGHTS_BYTES, filepath)
        model = _model_from_config(config, filepath, custom_objects, compile, safe_mode)
        _load_weights_member(model, archive, filepath)
        names = archive.namelist()
        load_assets(model, names, lambda n: archive.read(_member(archive, n, MAX_ASSET_BYTES, filepath)))
    return model


def _model_from_config(config: dict, filepath: str, custom_objects, compile: bool, safe_mode: bool):
    compile_config = config.pop("compile_config", None)
    with one_mixed_precision_warning(filepath):
        try:
            model = deserialize_keras_object(config, custom_objects=custom_objects, safe_mode=safe_mode)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
            _reraise_with_source(error, filepath, CONFIG_FILENAME)
    if not isinstance(model, model_class("Model")):
        raise ArchiveError(f"{filepath}: {CONFIG_FILENAME} describes a {type(model).__name__}, not a model")
    if compile and compile_config:
        try:
            model.compile_from_config(compile_config, custom_objects=custom_objects)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
            _reraise_with_source(error, filepath, "compile_config")
    return model


def _folder_file(folder: str, name: str, limit: int, required: bool = True) -> str | None:
    """``folder/name`` as a regular file (not a link) of at most ``limit`` bytes, or ``None`` when
    it is absent and not ``required``. ``name`` is a plain file name: never a path leaving ``folder``."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise ArchiveError(f"{folder}: refusing the file name {name!r}, which is not a plain name in the folder")
    path = os.path.join(folder, name)
    if not os.path.lexists(path):
        if required:
            raise ArchiveError(f"{folder}: the folder has no {name}; is it a Keras 3 model or weights folder?")
        return None
    if os.path.islink(path) or not os.path.isfile(path):
        raise ArchiveError(f"{folder}: {name} is a link or not a regular file; refusing it")
    size = os.path.getsize(path)
    if size > limit:
        raise ArchiveError(f"{folder}: {name} has {size:,} bytes, more than the limit of {limit:,}")
    return path


def _read_folder_json(folder: str, name: str) -> dict:
    path = _folder_file(folder, name, MAX_JSON_BYTES)
    with open(path, "rb") as file:
        return _parse_json(file.read(MAX_JSON_BYTES + 1), name, folder)


def _load_model_from_dir(folder: str, custom_objects, compile: bool, safe_mode: bool):
    if os.path.islink(folder.rstrip("/\\")):
        raise ArchiveError(f"{folder}: the model folder is a link; refusing it")
    if os.path.lexists(os.path.join(folder, METADATA_FILENAME)):
        _read_folder_json(folder, METADATA_FILENAME)
    config = _read_folder_json(folder, CONFIG_FILENAME)
    weights = _folder_file(folder, WEIGHTS_FILENAME, MAX_WEIGHTS_BYTES, required=False)
    if weights is None:
        extra = (
            " (weights stored as model.weights.npz are not supported)"
            if os.path.lexists(os.path.join(folder, "model.weights.npz"))
            else ""
        )
        raise ArchiveError(f"{folder}: the folder has no {WEIGHTS_FILENAME}{extra}")
    model = _model_from_config(config, folder, custom_objects, compile, safe_mode)
    where = os.path.join(folder, WEIGHTS_FILENAME)
    with open_h5(weights, where) as h5file:
        read_weights(model, h5file, where)
    names = []
    for root, _, files in os.walk(os.path.join(folder, ASSETS_FOLDER)):
        names += [os.path.relpath(os.path.join(root, f), folder).replace(os.sep, "/") for f in files]
    load_assets(model, names, lambda n: _read_folder_asset(folder, n))
    return model


def _read_folder_asset(folder: str, name: str) -> bytes:
    where, base = os.path.split(os.path.join(folder, *name.split("/")))
    with open(_folder_file(where, base, MAX_ASSET_BYTES), "rb") as file:
        return file.read()


# -- weights only -----------------------------------------------------------------------------------
def save_weights(model, filepath, overwrite: bool = True, max_shard_size=None) -> None:
    """``model.save_weights(filepath)``: Keras 3's ``.weights.h5`` file (the only suffix Keras 3 accepts)."""
    if max_shard_size is None:
        h5_weights.save_weights(model, filepath, overwrite=overwrite)
    else:
        _save_sharded_weights(model, os.fspath(filepath), max_shard_size, overwrite)


def _save_sharded_weights(model, filepath: str, max_shard_size, overwrite: bool) -> None:
    """Keras' sharded weights: ``<base>.weights.json`` (``{"metadata": {"total_size": bytes},
    "weight_map": {"/<path>/vars": [files]}}``) beside ``<base>_00000.weights.h5``, ... ;
    a new shard starts when the next variable would take the current one past ``max_shard_size`` GB."""
    if not filepath.endswith(("weights.h5", "weights.json")):
        raise ValueError(
            f"The filename must end in `.weights.json` when `max_shard_size` is specified. Received: "
            f"filepath={filepath}"
        )
    if not getattr(model, "built", True):
        raise ValueError(
            "You are saving a model that has not yet been built. Try building the model first by calling it on "
            "some data or by using `build()`."
        )
    if not filepath.endswith(".json"):
        new_path = os.path.splitext(filepath)[0] + ".json"
        warnings.warn(
            f"Saving sharded weights requires `*.json` as the extension. The original path: {filepath} will be "
            f"renamed to {new_path}.",
            stacklevel=3,
        )
        filepath = new_path
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath} already exists and overwrite=False.")
    limit = float(max_shard_size) * 1024**3
    base = os.path.basename(filepath)[: -len(".json")].replace(".weights", "")
    full = io.BytesIO()
    with h5py.File(full, "w") as h5file:
        write_weights(model, h5file)
    shards: list = []  # (file name, BytesIO, h5py.File)
    weight_map: dict = {}
    total = current = 0.0

    def new_shard():
        name = f"{base}_{len(shards):05}.weights.h5"
        buffer = io.BytesIO()
        shards.append((name, buffer, h5py.File(buffer, "w")))

    new_shard()
    try:
        with h5py.File(full, "r") as source:
            groups: list = []
            source.visititems(lambda name, item: groups.append(name) if name.split("/")[-1] == "vars" else None)
            order = [h5_weights._vars_path(path) for path, _ in h5_weights.weight_entries(model)]
            for name in order + sorted(set(groups) - set(order)):
                if name not in source:
                    continue
                group = source[name]
                if not len(group):  # Keras writes a group only with its metadata (the layer's name)
                    shards[-1][2].require_group(name).attrs.update(group.attrs)
                for key in group:
                    value = group[key][()]
                    size = float(np.asarray(value).nbytes)
                    total += size
                    if size > limit:
                        raise ValueError(
                            f"The size of {key} is {size:,.0f} bytes which exceeds the maximum shard size "
                            f"{limit:,.0f} bytes. You can increase the `max_shard_size` parameter to accommodate the size."
                        )
                    current += size
                    if current > limit:
                        new_shard()
                        current = size
                    shard_name, _, shard = shards[-1]
                    target = shard.require_group(name)
                    if target.name not in weight_map:  # Keras writes the metadata in the first shard only
                        target.attrs.update(group.attrs)
                    target.create_dataset(key, data=value)
                    files = weight_map.setdefault(target.name, [])
                    if shard_name not in files:
                        files.append(shard_name)
    finally:
        for _, _, shard in shards:
            shard.close()
    folder = os.path.dirname(os.path.abspath(filepath))
    for shard_name, buffer, _ in shards:
        _write_bytes(os.path.join(folder, shard_name), buffer.getvalue())
    index = json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=4)
    _write_bytes(filepath, index.encode())


def load_weights(model, filepath, skip_mismatch: bool = False, **kwargs) -> None:
    """``model.load_weights(filepath)``: from a ``.weights.h5`` file, the weights of a ``.keras``
    archive, or Keras' legacy ``.h5``/``.hdf5`` weights (``by_name=True`` matches those by layer name)."""
    by_name = kwargs.pop("by_name", None)
    if kwargs:
        raise ValueError(f"Invalid keyword arguments: {kwargs}")
    if by_name is not None and not legacy_h5.is_legacy_h5(os.fspath(filepath)):
        raise ValueError(f"`by_name` only supports loading legacy '.h5' or '.hdf5' files. Received: {filepath}")
    if not getattr(model, "built", True):
        raise ValueError(
            "You are loading weights into a model that has not yet been built. Try building the model first by "
            "calling it on some data or by using `build()`."
        )
    filepath = os.fspath(filepath)
    if filepath.endswith(".keras"):
        with _open_archive(filepath) as archive:
            _load_weights_member(model, archive, filepath, skip_mismatch=skip_mismatch)
    elif filepath.endswith(".weights.json"):
        where = f"{filepath} (sharded weights)"
        with _merged_shards(filepath) as h5file:
            read_weights(model, h5file, where, skip_mismatch=skip_mismatch)
    elif filepath.endswith(".weights.h5"):
        h5_weights.load_weights(model, filepath, skip_mismatch=skip_mismatch)
    elif legacy_h5.is_legacy_h5(filepath):
        legacy_h5.load_weights(model, filepath, skip_mismatch=skip_mismatch, by_name=bool(by_name))
    else:
        raise ValueError(
            f"File format not supported: filepath={filepath}. irtool loads Keras 3 `.keras`, `.weights.h5` and "
            "sharded `.weights.json` files, and Keras' legacy `.h5`/`.hdf5` weights."
        )


def _copy_group(source, target, where: str) -> None:
    """Copy the groups, datasets and attributes of ``source`` into ``target`` (hard links only)."""
    for key, value in source.attrs.items():
        target.attrs[key] = value
    for key in source.keys():
        if not isinstance(source.get(key, getlink=True), h5py.HardLink):
            raise ArchiveError(f"{where}: {source.name}/{key} is a soft or external link; refusing it")
        item = source[key]
        if isinstance(item, h5py.Group):
            _copy_group(item, target.require_group(key), where)
        elif key in target:
            raise ArchiveError(f"{where}: {item.name} appears in more than one shard")
        else:
            target.create_dataset(key, data=item[()])
            for name, value in item.attrs.items():
                target[key].attrs[name] = value


def _merged_shards(filepath: str) -> h5py.File:
    """The shards a Keras ``.weights.json`` index names (``save_weights(..., max_shard_size=...)``),
    merged into one in-memory HDF5 file. Shards must be plain ``*.weights.h5`` files beside the index."""
    if not os.path.isfile(filepath):
        raise FileNotFoundError(f"No such file: {filepath}")
    folder, name = os.path.split(os.path.abspath(filepath))
    index = _read_folder_json(folder, name)
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict):
        raise ArchiveError(f"{filepath}: a sharded weights index needs a 'weight_map' object")
    shards: list = []
    for files in weight_map.values():
        for shard in files if isinstance(files, list) else [files]:
            if not isinstance(shard, str) or not shard.endswith(".weights.h5"):
                raise ArchiveError(f"{filepath}: the weight_map names {shard!r}, which is not a `.weights.h5` file")
            if shard not in shards:
                shards.append(shard)
    paths = [_folder_file(folder, shard, MAX_WEIGHTS_BYTES) for shard in shards]
    total = sum(os.path.getsize(path) for path in paths)
    if total > MAX_WEIGHTS_BYTES:
        raise ArchiveError(f"{filepath}: the shards hold {total:,} bytes, more than the limit of {MAX_WEIGHTS_BYTES:,}")
    merged = h5py.File(io.BytesIO(), "w")
    try:
        for shard, path in zip(shards, paths):
            with open_h5(path, os.path.join(folder, shard)) as h5file:
                _copy_group(h5file, merged, os.path.join(folder, shard))
    except BaseException:
        merged.close()
        raise
    return merged
