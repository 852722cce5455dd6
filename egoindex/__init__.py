"""egoindex: turn a folder of egocentric video into a searchable, benchmarkable feature store."""

__version__ = "0.1.0"
