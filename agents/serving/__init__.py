"""Serving a frozen policy: read an account's daily report, recommend tomorrow's settings.

The serving path imports only NumPy, onnxruntime, the standard library (openpyxl lazily,
for ``.xlsx``) and the light parts of ``envs`` (``envs.history``, ``envs.actions``,
``envs.config``, ``envs.anchored``): never torch, stable-baselines3, pickle or the
simulator. Modules:

- :mod:`agents.serving.report`: the report reader (header aliases, encodings, number formats).
- :mod:`agents.serving.inputs`: report -> the env's history table and decision context.
- :mod:`agents.serving.manifest`: the exported policy's manifest and its verification.
- :mod:`agents.serving.onnx_policy`: the ONNX policy behind ``predict()``.
- :mod:`agents.serving.guards`: the platform's rules applied to an answer.
- :mod:`agents.serving.recommend`: one or many accounts -> recommendations, table/JSON/CSV.
"""
