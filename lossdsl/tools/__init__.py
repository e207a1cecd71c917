"""Tools over the pipeline: gradient check, plots, the exporter and the command line."""
