"""Calibration: fit the market model to one account's daily report, and forecast it.

- :mod:`.account`: a report (read by :mod:`agents.serving.report`) as the arrays a fit uses;
- :mod:`.prior`: the fitted parameters, their units, priors and where each enters the model;
- :mod:`.replay`: the simulator's own day (:func:`envs.market.simulate_day`) replayed on the
  report's settings and states, noise off, for many parameter candidates at once;
- :mod:`.likelihood`: the report's likelihood around that replay;
- :mod:`.refunds`: refund rate and landing kernel from refunds against past GMV;
- :mod:`.fit`: the optimiser, intervals and identifiability;
- :mod:`.forecast`: days ahead simulated by :class:`envs.market.MarketModel` from the fit;
- :mod:`.outputs`: ``fit.json``, ``scenario.yaml``, ``validation.json`` and its plot;
- :mod:`.pipeline`: one report calibrated into its folder (``calibrate``, and each account
  of a batch);
- :mod:`.fit_io`: ``fit.json`` read back as a fit, without refitting;
- :mod:`.recommend_fit`: ``recommend --fit``, the fitted account's recommendation and a
  week's forecast of it beside the current settings and ``static``'s;
- :mod:`.batch`, :mod:`.batch_queue`: ``recommend --batch REPORTS --fit FITS``, many
  accounts calibrated and recommended for, in this process or over the shared trial queue.
"""
