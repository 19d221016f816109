"""Looking inside a model: attention maps (arrays and PNG heatmaps) and training curves.

`attention_maps` works on any model and params (notebooks); `attention_from_workdir` does
the same for a trained run's text; `heatmaps` and `curves` write PNGs with matplotlib.
"""
