"""symnet: crystal system and space group from a full powder pattern (Zaloga et al. 2019, part 1).

Layout: :mod:`~symnet.labels` (space-group numbers, symbols, crystal systems), :mod:`~symnet.grid` (the model's
2θ grid, pooling, resampling through d-spacing), :mod:`~symnet.peaks` (peak lists from structures through the
gasolve engine), :mod:`~symnet.render` (peak list -> profile, Numba), :mod:`~symnet.augment` (random instruments),
:mod:`~symnet.sources` (Materials Project and PyXtal structures), :mod:`~symnet.dataset` (compact shards),
:mod:`~symnet.build` (parallel shard builder), :mod:`~symnet.pipeline` (batches rendered ahead),
:mod:`~symnet.splits`, :mod:`~symnet.models`, :mod:`~symnet.configs`, :mod:`~symnet.train`,
:mod:`~symnet.calibration`, :mod:`~symnet.checkpoint`, :mod:`~symnet.classify`.
"""
