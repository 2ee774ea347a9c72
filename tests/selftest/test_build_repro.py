"""A failed engine build names its reproduction: a `polygraphy convert` line with the same file, shapes and flags,
and that line, run, fails the same way (while the same line on a graph TensorRT-RTX can parse builds a plan)."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from t2vrt.engines.tensorrt.repro import convert_command

SHAPES = {"x": [[1, 2, 6], [2, 2, 6], [4, 2, 6]]}


def _graph(path: Path, op: str, domain: str = "") -> Path:
    """y = op(x), x [n, 2, 6]; ``domain`` set: an operator no ONNX parser knows."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    node = helper.make_node(op, ["x"], ["y"], domain=domain)
    io = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n", 2, 6])  # noqa: E731
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    onnx.save(helper.make_model(helper.make_graph([node], "g", [io("x")], [io("y")]), opset_imports=opsets), str(path))
    return path


def _run(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """The command as a user pastes it, with this interpreter's polygraphy script."""
    env_part, rest = command.split(" polygraphy ", 1) if command.startswith("POLYGRAPHY_") else ("", command[11:])
    env = {**os.environ, **dict(kv.split("=", 1) for kv in env_part.split())}
    script = str(Path(sys.executable).parent / "polygraphy")
    return subprocess.run([script, *shlex.split(rest)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_command_for_profiles_flags_and_targets():
    two = [SHAPES, {"x": [[1, 2, 6], [1, 2, 6], [1, 2, 6]]}]
    line = convert_command("d/onnx/unet/model fp16.onnx", two, "tensorrt", ["current"], 5, True, 512, out="unet.plan")
    assert line == ("polygraphy convert 'd/onnx/unet/model fp16.onnx' -o unet.plan "
                    "--trt-min-shapes 'x:[1,2,6]' --trt-opt-shapes 'x:[2,2,6]' --trt-max-shapes 'x:[4,2,6]' "
                    "--trt-min-shapes 'x:[1,2,6]' --trt-opt-shapes 'x:[1,2,6]' --trt-max-shapes 'x:[1,2,6]' "
                    "--strongly-typed --builder-optimization-level 5 --pool-limit workspace:536870912")
    rtx = convert_command("m.onnx", SHAPES, "tensorrt-rtx", ["sm89", "sm120"], 3, False)
    assert rtx.startswith("POLYGRAPHY_USE_TENSORRT_RTX=1 polygraphy convert m.onnx -o engine.plan ")
    assert rtx.endswith("--builder-optimization-level 3 --compute-capabilities 8.9 12.0")
    assert convert_command("m.onnx", SHAPES, "tensorrt-rtx", ["current"], 3).endswith("--use-gpu")


def test_failed_build_names_a_command_that_reproduces_it(tmp_path):
    trt = pytest.importorskip("tensorrt_rtx", reason="tensorrt_rtx is not installed (t2vrt[tensorrt-rtx])")
    from t2vrt.engines.tensorrt import build as tb
    from t2vrt.engines.tensorrt import builder as bb
    from t2vrt.errors import EngineError

    bad = _graph(tmp_path / "bad.onnx", "NoSuchOp", "com.example")
    options = tb.BuildOptions(flavour="tensorrt-rtx", compute_capability=("sm89",))
    with pytest.raises(EngineError) as e:
        bb._build_plan(trt, "tensorrt-rtx", bad, options, ("sm89",), [SHAPES], tmp_path, "unet for size bucket 64x64")
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"{bad}: the ONNX parser reported")
    command = message.split("; reproduce with `", 1)[1].rstrip("`")
    assert command.startswith(f"POLYGRAPHY_USE_TENSORRT_RTX=1 polygraphy convert {bad} -o unet.plan ")
    assert "--trt-max-shapes 'x:[4,2,6]'" in command and command.endswith("--compute-capabilities 8.9")

    failed = _run(command, tmp_path)
    assert failed.returncode != 0 and "NoSuchOp" in failed.stdout + failed.stderr
    good = _graph(tmp_path / "good.onnx", "Relu")
    built = _run(command.replace(str(bad), str(good)), tmp_path)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    assert (tmp_path / "unet.plan").stat().st_size > 0
