"""Many prompts: `t2vrt batch` (a prompt list to videos, locally or on Ray Data) and `t2vrt serve` (OpenAI's
/v1/videos protocol and a page, on uvicorn or Ray Serve).

Only ``ray_batch`` and ``ray_serve`` import Ray (the ``ray`` extra); everything else runs on the plain runtime.
"""
