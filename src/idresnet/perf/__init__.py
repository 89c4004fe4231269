"""Measuring tools: the training-throughput benchmark (runner and report), execution
modes, FLOP counting, memory measurement, profiler grouping.

The model features these tools measure, activation checkpointing and per-unit
compilation, live beside the networks: :mod:`idresnet.networks.checkpointing`,
:mod:`idresnet.networks.compiling`.
"""
