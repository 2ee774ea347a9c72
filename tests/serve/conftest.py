"""One local Ray cluster for the Ray tests of this folder (2 CPUs, no dashboard), started on first use."""

import pytest


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 2**20, log_to_driver=False,
             _temp_dir=str(tmp_path_factory.mktemp("ray")))
    yield ray
    try:
        from ray import serve

        serve.shutdown()
    finally:
        ray.shutdown()
