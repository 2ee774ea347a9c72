"""TensorRT and TensorRT-RTX: build engines (build, plans, records), find them (env, records) and run them (runner)."""
