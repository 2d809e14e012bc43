"""Serving a frozen policy: read an account's daily report, recommend tomorrow's settings.

The serving path imports only NumPy, onnxruntime, the standard library (openpyxl lazily,
for ``.xlsx``) and the light parts of ``envs`` (``envs.history``, ``envs.actions``,
``envs.calendar``, ``envs.config``, ``envs.anchored``): never torch, stable-baselines3,
Numba, SciPy, Gymnasium or the simulator, and it never unpickles. PyYAML loads only when a
scenario preset is read by name (a rule-based policy, or ``--scenario`` naming another
scenario than an ONNX policy's). ``tests/test_serving_hardening.py`` checks it. Modules:

- :mod:`agents.serving.report`: the report reader (header aliases, encodings, number formats).
- :mod:`agents.serving.inputs`: report -> the env's history table and decision context.
- :mod:`agents.serving.manifest`: the exported policy's manifest and its verification.
- :mod:`agents.serving.onnx_policy`: the ONNX policy behind ``predict()``.
- :mod:`agents.serving.loading`: the policy to serve (an ONNX file or a rule's name).
- :mod:`agents.serving.guards`: serving's guards and the env's platform limits on an answer.
- :mod:`agents.serving.recommend`: one or many accounts -> recommendations.
- :mod:`agents.serving.output`: a recommendation as the text table, the batch CSV or JSON.
"""
