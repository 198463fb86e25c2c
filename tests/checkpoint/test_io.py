import builtins
import codecs
import collections
import io
import os
import pickle
import pickletools
import re
import struct
import subprocess

import numpy as np
import pytest
import torch

from gn_detection.checkpoint.io import (
    atomic_save,
    load_pickle_file,
    load_torch_file,
    load_weights_file,
)

PROTOCOLS = (0, 2, 5)
DTYPES = (np.float32, np.float64, np.float16, np.int64, np.int32, np.uint8, np.bool_, np.complex64)


def _detectron_blobs():
    """Caffe2 blob names and shapes of a GN ResNet stem, as in Detectron's .pkl files."""
    rng = np.random.default_rng(0)
    return {
        "conv1_w": rng.standard_normal((64, 3, 7, 7)).astype(np.float32),
        "conv1_gn_s": rng.standard_normal(64).astype(np.float32),
        "conv1_gn_b": rng.standard_normal(64).astype(np.float32),
        "res2_0_branch2a_w": np.asfortranarray(rng.standard_normal((64, 64, 1, 1))),  # float64
        "fc1000_b": np.arange(10, dtype=np.int64),
        "mask": np.array([True, False, True]),
    }


def _assert_same_arrays(loaded, expected):
    assert loaded.keys() == expected.keys()
    for name, array in expected.items():
        assert isinstance(loaded[name], np.ndarray), name
        assert loaded[name].dtype == array.dtype, name
        np.testing.assert_array_equal(loaded[name], array)


def _write(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


class _Py2Pickler(pickle._Pickler):
    """Writes ``bytes`` as Python 2's ``str`` (SHORT_BINSTRING/BINSTRING), like cPickle did."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def _py2_dumps(obj) -> bytes:
    """A protocol-2 pickle as Python 2 with numpy 1.x wrote it: str opcodes, numpy.core names."""
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"cnumpy._core.", b"cnumpy.core.")


# ---- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_detectron_blobs_round_trip(tmp_path, protocol):
    blobs = _detectron_blobs()
    path = _write(tmp_path / "R-50-GN.pkl", pickle.dumps({"blobs": blobs}, protocol=protocol))
    for load in (load_pickle_file, load_weights_file):
        loaded = load(path)
        assert list(loaded) == ["blobs"]
        _assert_same_arrays(loaded["blobs"], blobs)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_detectron2_model_round_trip(tmp_path, protocol):
    model = {"stem.conv1.weight": np.ones((4, 3, 3, 3), np.float32), "stem.conv1.norm.bias": np.zeros(4)}
    obj = {"model": model, "__author__": "Detectron2 Model Zoo", "matching_heuristics": True}
    path = _write(tmp_path / "model_final.pkl", pickle.dumps(obj, protocol=protocol))
    loaded = load_weights_file(path)
    assert loaded["__author__"] == "Detectron2 Model Zoo"
    assert loaded["matching_heuristics"] is True
    _assert_same_arrays(loaded["model"], model)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_plain_dtype_round_trips(tmp_path, protocol, dtype):
    array = (np.arange(24).reshape(2, 3, 4) % 3).astype(dtype)
    native = {"array": array, "transposed": array.T, "structured": np.zeros(2, dtype=[("a", "<f4"), ("b", "i8")])}
    big_endian = array.astype(array.dtype.newbyteorder(">"))
    data = pickle.dumps({**native, "big_endian": big_endian}, protocol=protocol)
    loaded = load_pickle_file(_write(tmp_path / "w.pkl", data))
    # numpy itself unpickles non-native arrays as native at protocols < 5: plain pickle is the reference
    _assert_same_arrays(loaded, pickle.loads(data))
    _assert_same_arrays({k: loaded[k] for k in native}, native)
    np.testing.assert_array_equal(loaded["big_endian"], big_endian)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_ordered_dict_scalars_and_containers_round_trip(tmp_path, protocol):
    obj = collections.OrderedDict(
        [
            ("b_first", np.float32(1.5)),
            ("a_second", np.int64(-7)),
            ("flag", np.bool_(True)),
            ("zero_d", np.array(3.25, dtype=np.float64)),
            ("raw", b"\x00\xffcaffe2"),
            ("empty_bytes", b""),
            ("containers", [(1, 2.5), {"x", "y"}, frozenset({3}), bytearray(b"ab"), 1 + 2j, None]),
        ]
    )
    loaded = load_pickle_file(_write(tmp_path / "w.pkl", pickle.dumps(obj, protocol=protocol)))
    assert type(loaded) is collections.OrderedDict
    assert list(loaded) == list(obj)  # order kept
    for name in ("b_first", "a_second", "flag", "zero_d"):
        assert type(loaded[name]) is type(obj[name]), name
        assert loaded[name].dtype == obj[name].dtype, name
        assert loaded[name] == obj[name], name
    assert loaded["raw"] == b"\x00\xffcaffe2" and type(loaded["raw"]) is bytes
    assert loaded["empty_bytes"] == b""
    assert loaded["containers"] == obj["containers"]


def test_python2_pickle_decodes_with_latin1(tmp_path):
    blobs = _detectron_blobs()
    blobs["cls_score_w"] = np.linspace(-1, 1, 300, dtype=np.float32)  # > 255 bytes: BINSTRING
    obj = {"blobs": blobs, "cfg": b"MODEL:\n  TYPE: generalized_rcnn\n", "scale": np.float32(0.5)}
    data = _py2_dumps(obj)
    opcodes = {op.name for op, _, _ in pickletools.genops(data)}
    assert {"SHORT_BINSTRING", "BINSTRING"} <= opcodes and b"numpy._core" not in data
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in data
    # what Python 3's plain default (ASCII) makes of it: array bytes do not decode
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(data)
    loaded = load_weights_file(_write(tmp_path / "py2.pkl", data))
    _assert_same_arrays(loaded["blobs"], blobs)
    assert loaded["cfg"] == "MODEL:\n  TYPE: generalized_rcnn\n"  # Python 2 str -> str
    assert loaded["scale"].dtype == np.float32 and loaded["scale"] == np.float32(0.5)


# ---- malicious pickles ---------------------------------------------------------------------


class _Payload:
    """An object whose unpickling calls ``func(*args)``."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker):
    return {
        "os.system": (_Payload(os.system, (f"touch {marker}",)), rf"{os.system.__module__}\.system"),
        "builtins.exec": (
            _Payload(builtins.exec, (f"open({str(marker)!r}, 'w').write('pwned')",)),
            r"(builtins|__builtin__)\.exec",
        ),
        "subprocess.call": (_Payload(subprocess.call, (["touch", str(marker)],)), r"(subprocess|commands)\.call"),  # protocols < 3 write Python 2's name
    }


PAYLOADS = ("os.system", "builtins.exec", "subprocess.call")


@pytest.mark.parametrize("kind", PAYLOADS)
def test_payloads_are_live_under_plain_pickle(tmp_path, kind):
    """Control: the payloads below really do create the marker when unpickled unsafely."""
    marker = tmp_path / "pwned"
    payload, _ = _payloads(marker)[kind]
    pickle.loads(pickle.dumps(payload))
    assert marker.exists()


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("kind", PAYLOADS)
@pytest.mark.parametrize("load", (load_pickle_file, load_weights_file))
def test_malicious_pickle_is_refused_and_does_not_run(tmp_path, protocol, kind, load):
    marker = tmp_path / "pwned"
    payload, refused = _payloads(marker)[kind]
    obj = {"blobs": {"conv1_w": np.ones(3, np.float32), "evil": payload}}
    path = _write(tmp_path / "evil.pkl", pickle.dumps(obj, protocol=protocol))
    with pytest.raises(ValueError, match=re.escape(path) + r": refused to load global '" + refused + "'"):
        load(path)
    assert not marker.exists()


@pytest.mark.parametrize("kind", PAYLOADS)
@pytest.mark.parametrize("legacy", (False, True))
def test_malicious_torch_file_is_refused_and_does_not_run(tmp_path, kind, legacy):
    marker = tmp_path / "pwned"
    payload, _ = _payloads(marker)[kind]
    path = str(tmp_path / "evil.pth")
    torch.save({"weight": torch.ones(2), "evil": payload}, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(ValueError, match=re.escape(path)):
        load_weights_file(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # control: the file is live when loaded unsafely
    assert marker.exists()


@pytest.mark.parametrize(
    "module, name",
    [
        ("os", "system"),
        ("builtins", "eval"),
        ("__builtin__", "eval"),
        ("builtins", "getattr"),
        ("subprocess", "Popen"),
        ("functools", "partial"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch.nn.modules.conv", "Conv2d"),
        ("numpy", "load"),
        ("numpy.core.multiarray", "_does_not_exist"),
        ("copyreg", "_reconstructor"),
        ("collections", "namedtuple"),
    ],
)
def test_every_other_global_is_refused(tmp_path, module, name):
    path = _write(tmp_path / "w.pkl", f"c{module}\n{name}\n(tR.".encode())  # GLOBAL, call, STOP
    with pytest.raises(ValueError, match=re.escape(f"{path}: refused to load global '{module}.{name}'")):
        load_pickle_file(path)


def test_codecs_encode_admits_only_latin1(tmp_path):
    path = _write(tmp_path / "w.pkl", pickle.dumps(_Payload(codecs.encode, ("abc", "rot13")), protocol=2))
    with pytest.raises(ValueError, match=re.escape(path) + ".*only latin1"):
        load_pickle_file(path)


# ---- broken and missing files --------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_truncated_pickle_names_the_file(tmp_path, protocol):
    data = pickle.dumps({"blobs": _detectron_blobs()}, protocol=protocol)
    path = _write(tmp_path / "cut.pkl", data[: len(data) // 2])
    for load in (load_pickle_file, load_weights_file):
        with pytest.raises(ValueError, match=re.escape(path) + ": not a weights pickle"):
            load(path)


def test_garbage_after_pickle_opcode_names_the_file(tmp_path):
    path = _write(tmp_path / "junk.pkl", b"\x80\x05" + bytes(range(200, 256)))
    with pytest.raises(ValueError, match=re.escape(path)):
        load_weights_file(path)


@pytest.mark.parametrize("load", (load_pickle_file, load_weights_file, load_torch_file))
def test_missing_file_names_it(tmp_path, load):
    path = str(tmp_path / "nowhere" / "model_final.pkl")
    with pytest.raises(FileNotFoundError, match=re.escape(path)):
        load(path)


# ---- format detection by content -----------------------------------------------------------


@pytest.mark.parametrize("legacy", (False, True))
def test_torch_file_named_pkl_loads_as_torch(tmp_path, legacy):
    state = {"conv1.weight": torch.arange(6.0).reshape(2, 3), "conv1.norm.bias": torch.zeros(2)}
    path = str(tmp_path / "weights.pkl")
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    loaded = load_weights_file(path)
    assert loaded.keys() == state.keys()
    for name, tensor in state.items():
        assert isinstance(loaded[name], torch.Tensor), name
        torch.testing.assert_close(loaded[name], tensor, rtol=0, atol=0)
    # by its name it would have gone to the pickle loader, which cannot read it
    if legacy:  # the legacy format starts with a pickle of torch's magic number
        assert load_pickle_file(path) == torch.serialization.MAGIC_NUMBER
    else:
        with pytest.raises(ValueError, match=re.escape(path)):
            load_pickle_file(path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 5")  # torch.load's, on the control
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pickle_named_pth_loads_as_pickle(tmp_path, protocol):
    blobs = _detectron_blobs()
    path = _write(tmp_path / "weights.pth", pickle.dumps({"blobs": blobs}, protocol=protocol))
    _assert_same_arrays(load_weights_file(path)["blobs"], blobs)
    with pytest.raises(ValueError, match=re.escape(path)):  # by its name it would have gone to torch.load
        load_torch_file(path)


@pytest.mark.parametrize("content", (b"weights: none\n", b"", b"\x89PNG\r\n\x1a\n"))
def test_other_files_are_neither(tmp_path, content):
    path = _write(tmp_path / "weights.pkl", content)
    with pytest.raises(ValueError, match=re.escape(path) + ": neither a torch file .* nor a pickle"):
        load_weights_file(path)


# ---- atomic_save ---------------------------------------------------------------------------


def test_atomic_save_overwrites_and_leaves_no_temp_file(tmp_path):
    path = str(tmp_path / "model_final.pth")
    atomic_save({"w": torch.zeros(3)}, path)
    atomic_save({"w": torch.ones(3)}, path)
    torch.testing.assert_close(load_torch_file(path)["w"], torch.ones(3), rtol=0, atol=0)
    assert os.listdir(tmp_path) == ["model_final.pth"]


def test_atomic_save_failure_keeps_the_old_file(tmp_path):
    path = str(tmp_path / "model_final.pth")
    atomic_save({"w": torch.zeros(3)}, path)
    with pytest.raises(Exception):
        atomic_save({"w": torch.ones(3), "unpicklable": lambda: None}, path)
    torch.testing.assert_close(load_torch_file(path)["w"], torch.zeros(3), rtol=0, atol=0)
    assert os.listdir(tmp_path) == ["model_final.pth"]


def test_a_checkpoint_that_cannot_be_written_says_why_and_keeps_the_last(tmp_path, monkeypatch):
    import errno

    from gn_detection.checkpoint import Checkpointer
    from gn_detection.utils.errors import UserError

    checkpointer = Checkpointer(str(tmp_path), model=torch.nn.Linear(2, 2))
    checkpointer.save("model_0000001", iteration=1)

    def disk_full(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(UserError) as error:
        checkpointer.save("model_0000002", iteration=2)
    message = str(error.value)
    assert message.startswith(f"{tmp_path}/model_0000002.pth: cannot write the checkpoint (No space left on device)")
    assert f"last_checkpoint still names {tmp_path}/model_0000001.pth" in message
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000001.pth"]
