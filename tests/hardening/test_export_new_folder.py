"""``irtool export model.py -o newdir/``: a trailing slash names a folder, created when missing,
and the export lands in it under the model file's stem."""

from __future__ import annotations

import onnx

from irtool.cli import main

MODEL_PY = "import irtool\ninputs = irtool.Input((3,))\nmodel = irtool.Model(inputs, irtool.layers.Dense(2)(inputs))\n"


def test_output_folder_that_does_not_exist_yet(tmp_path, capsys):
    (tmp_path / "net.py").write_text(MODEL_PY)
    folder = tmp_path / "new" / "dir"
    assert main(["export", str(tmp_path / "net.py"), "-o", f"{folder}/"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["net.onnx"]
    onnx.checker.check_model(onnx.load(str(folder / "net.onnx")), full_check=True)
    assert "net.onnx" in capsys.readouterr().out
