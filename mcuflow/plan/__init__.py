"""``mcuflow plan``: a budget-aware designer that chooses the split, the sparsity and the exits of a model
for a board (MLP heads; the search space is one class, :class:`~mcuflow.plan.space.MlpSpace`, so a CNN
space can sit beside it).

``budget`` (what must fit), ``energy`` (the per-board energy model), ``space`` (what is searched, one
candidate), ``complexity`` (PA/FA/MA shares and where the sparsity goes), ``estimate`` (cost before
training), ``cache`` (trained candidates by hash), ``evaluate`` (train and score on the validation
split), ``study`` (the Optuna study: storage, samplers, resumption), ``pareto`` (non-dominated sets),
``measure`` (export, build and selftest of front candidates), ``outputs`` (CSV, JSON, plot),
``driver`` (the whole run).
"""
