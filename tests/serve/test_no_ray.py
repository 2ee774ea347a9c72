"""Without the ray extra: the runtime and the non-Ray parts of t2vrt.serve never import ray, and --ray says what
to install."""

import json
import subprocess
import sys
import textwrap

BLOCK_RAY = """
import importlib.abc, sys
class NoRay(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray' (blocked by the test)")
sys.meta_path.insert(0, NoRay())
"""


def run_without_ray(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_RAY + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, check=False)


def test_runtime_and_serve_import_without_ray():
    res = run_without_ray("""
        import t2vrt, t2vrt.cli
        import t2vrt.serve.api, t2vrt.serve.app, t2vrt.serve.batch, t2vrt.serve.service, t2vrt.serve.jobs
        import t2vrt.cli.batch, t2vrt.cli.serve
        import t2vrt.serve.render, t2vrt.serve.request
        t2vrt.cli.build_parser()
        loaded = [m for m in sys.modules if m == "ray" or m.startswith("ray.")]
        assert not loaded, loaded
        print("clean")
    """)
    assert res.returncode == 0 and "clean" in res.stdout, res.stderr


def test_ray_option_without_the_extra_says_what_to_install(tiny_engines, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "a cat", "num_frames": 2, "height": 32, "width": 32,
                                   "num_inference_steps": 1}) + "\n")
    res = run_without_ray(f"""
        from t2vrt.cli import main
        sys.exit(main(["batch", {str(tiny_engines)!r}, {str(prompts)!r}, "-o", {str(tmp_path / "out")!r}, "--ray"]))
    """)
    assert res.returncode == 2 and "pip install 't2vrt[ray]'" in res.stderr and "Traceback" not in res.stderr
